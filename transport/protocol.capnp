# The body of `POST /v1/jobs` (transport/PROTOCOL.md), zstd-compressed on the
# wire. Decoded by transport/request.h, which treats it as hostile input.
@0x9c392273c97dae4e;

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("loom::wire");

using G = import "/graph/graph.capnp";

struct JobRequest {
  protocolVersion @0 :UInt32;   # must equal the server's (1); no negotiation
  modelKey @1 :Text;            # as listed by GET /v1/models
  graph @2 :G.Graph;
  invokes @3 :List(Invoke);     # one per graph invoke, in order
  options @4 :Options;
  generation @5 :Generation;    # unset: one forward pass
}

# Run the graph as a generation (graph/generation.h): step 0 is the prompt
# pass, each new token one more step.
struct Generation {
  maxNewTokens @0 :UInt32;
  temperature @1 :Float64;      # 0: greedy
  topK @2 :UInt32;              # 0: off
  topP @3 :Float64 = 1.0;       # 1: off
  seed @4 :UInt64;
  hasStopTokens @5 :Bool;       # false: the model's eos ids
  stopTokenIds @6 :List(Int64);
  padTokenId @7 :Int64 = -1;    # -1: the first stop id
}

# The positional inputs of one invoke (its rows of the batch).
struct Invoke {
  inputs @0 :List(G.TensorData);
}

struct Options {
  callbackUrl @0 :Text;         # webhook target; empty = none
  requestId @1 :Text;           # the client's own id, echoed in logs
  noCache @2 :Bool;             # run even if an identical request has a result
  streamTimeoutMs @3 :UInt32 = 60000;  # wait for a stream callback's reply
  wallTimeMs @4 :UInt32;        # run-time limit; 0 = the server's default
}
