// Where a remote job's time goes, for perf work (`scripts/bench probe`):
// building the request, POST /v1/jobs alone, GET /v1/jobs/ID, opening an
// event stream on a finished job (connect + replay), and a whole blocking
// run. Medians of 120 rounds on the tiny GPT-2, one BLAS thread on both sides
// (as the remote suite).
#include <ATen/ATen.h>

#include <fstream>
#include <thread>

#include "client/client.h"
#include "client/event_stream.h"
#include "client/trace.h"
#include "runtime/gpt2_config.h"
#include "tests/bench/bench.h"
#include "tests/bench/bench_server.h"

namespace loom::bench {

void run_probe(Context& ctx) {
  using clock = std::chrono::steady_clock;
  BenchServer server(/*blas_threads=*/1);
  const client::ClientOptions co = server.client_options();
  client::Client c(co);
  client::RemoteModel model = c.model("gpt2-tiny");
  at::Tensor ids = at::arange(16, at::kLong).view({1, 16});
  std::vector<double> build, submit, status, first_event, stream_end, full;
  for (int i = 0; i < 120; ++i) {
    client::Trace tr = model.trace({ids});
    tr.module("transformer.h.1").output(0).save("h1");
    tr.output().save("logits");
    auto t0 = clock::now();
    transport::JobRequest request = tr.request({.no_cache = true});
    build.push_back(seconds_since(t0));
    t0 = clock::now();
    std::string id = c.submit(request);
    submit.push_back(seconds_since(t0));
    t0 = clock::now();
    c.status(id);
    status.push_back(seconds_since(t0));
    c.wait_for(id, std::chrono::milliseconds(5));
    client::EventStreamOptions eo;
    eo.endpoint = {"127.0.0.1", c.env().websocket_port};
    eo.api_key = co.api_key;
    eo.job_id = id;
    t0 = clock::now();
    client::EventStream events(eo);
    events.start();
    nlohmann::json ev;
    events.next(ev, std::chrono::seconds(5));
    first_event.push_back(seconds_since(t0));
    while (events.next(ev, std::chrono::seconds(5)) == client::EventStream::Next::kEvent) {
    }
    events.stop();
    stream_end.push_back(seconds_since(t0));
    t0 = clock::now();
    tr.run({.remote = true, .quiet = true, .no_cache = true});
    full.push_back(seconds_since(t0));
  }
  ctx.add("probe.request_build_us", median(build) * 1e6, "us");
  ctx.add("probe.submit_us", median(submit) * 1e6, "us");
  ctx.add("probe.status_us", median(status) * 1e6, "us");
  ctx.add("probe.ws_first_event_us", median(first_event) * 1e6, "us");
  ctx.add("probe.ws_replay_closed_us", median(stream_end) * 1e6, "us");
  ctx.add("probe.blocking_run_us", median(full) * 1e6, "us");
}

}  // namespace loom::bench
