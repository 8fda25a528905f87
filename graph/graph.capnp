# The intervention graph on the wire. Its canonical encoding
# (capnp::canonicalize) is the graph's identity: SHA-256 over it names a
# request for deduplication and caching. Field meanings: graph/ir.h.
@0xebc970242ec30732;

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("loom::schema");

enum DType {
  float32 @0; float64 @1; float16 @2; bfloat16 @3; int64 @4;
  int32 @5; int16 @6; int8 @7; uint8 @8; bool @9;
}

enum Io { output @0; input @1; }

struct Point {
  module @0 :Text;
  io @1 :Io;
  index @2 :Int32 = -1;
  call @3 :UInt32;
  invoke @4 :Int32 = -1;
  callEnd @5 :UInt32;  # 0: only `call`; else calls [call, callEnd), 0xFFFFFFFF = every call from `call`
  trace @6 :UInt32;    # sessions: which trace (forward pass) of the job
  stage @7 :UInt32;    # edits: points of stage s see the sets of stages < s at the same hook
}

struct TensorData {
  dtype @0 :DType;
  shape @1 :List(Int64);
  bytes @2 :Data;
}

struct Arg {
  union {
    none @0 :Void;
    node @1 :UInt32;
    int @2 :Int64;
    float @3 :Float64;
    bool @4 :Bool;
    ints @5 :List(Int64);
    floats @6 :List(Float64);
    dtype @7 :DType;
    str @8 :Text;
    nodes @9 :List(UInt32);
  }
}

struct Node {
  union {
    read @0 :Point;
    set :group { point @1 :Point; value @2 :UInt32; }
    op :group { schema @3 :Text; args @4 :List(Arg); }
    constant @5 :TensorData;
    constantRef @6 :Text;   # SHA-256 (hex) of content uploaded earlier
    # elements: a tuple value saves each tensor element K as "name.K" (cache).
    save :group { value @7 :UInt32; name @8 :Text; elements @21 :Bool; }
    # anyShape: the reply may differ from the value sent in shape and dtype
    # (by default it must match both).
    stream :group { value @9 :UInt32; callback @10 :Text; anyShape @14 :Bool; }
    log :group { value @11 :UInt32; text @12 :Text; }
    stop @13 :UInt32;       # stop once this node is available
    grad @15 :Point;        # the gradient through this point's value (backward pass)
    setGrad :group { point @16 :Point; value @17 :UInt32; }
    backward @18 :UInt32;   # backward pass from this scalar node
    skip :group { point @19 :Point; value @20 :UInt32; }  # the module does not run; its output is `value`
  }
}

struct Graph {
  version @0 :UInt32 = 1;
  invokes @1 :UInt32 = 1;
  nodes @2 :List(Node);
  traceInvokes @3 :List(UInt32);  # sessions: invokes per trace, in order; empty: one trace
}
