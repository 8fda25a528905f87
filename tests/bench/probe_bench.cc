#include <ATen/ATen.h>
#include <fstream>
#include <iostream>
#include "client/client.h"
#include "client/trace.h"
#include "client/event_stream.h"
#include "runtime/gpt2_config.h"
#include "runtime/model.h"
#include "tests/bench/bench.h"
#include "tests/server/server_process.h"
namespace loom::bench {
void run_probe(Context& ctx) {
  using clock = std::chrono::steady_clock;
  loom::testing::ServerTempDir dir;
  std::string ckpt = dir.file("gpt2-tiny");
  runtime::write_random_gpt2_checkpoint(ckpt, runtime::Gpt2Config::tiny(), 99);
  std::ofstream(dir.file("models.json")) << "{\"models\": [{\"key\": \"gpt2-tiny\", \"path\": \"" << ckpt << "\"}]}";
  std::string data = dir.file("data");
  std::string key = loom::testing::create_api_key(data, "bench");
  loom::testing::ServerArgs args{dir.file("models.json"), data, dir.file("server.log"), {}};
  loom::testing::ServerProcess server(args);
  client::ClientOptions co;
  co.host = "http://127.0.0.1:" + std::to_string(server.http_port());
  co.api_key = key;
  co.quiet = true;
  client::Client c(co);
  auto model = c.model("gpt2-tiny");
  at::Tensor ids = at::arange(16, at::kLong).view({1, 16});
  std::vector<double> first, last, sub, stat, ws, full, req;
  for (int i = 0; i < 120; ++i) {
    client::Trace tr = model.trace({ids});
    tr.module("transformer.h.1").output(0).save("h1");
    tr.output().save("logits");
    auto t0 = clock::now();
    auto r = tr.request({.no_cache = true});
    req.push_back(seconds_since(t0));
    t0 = clock::now();
    std::string id = c.submit(r);
    sub.push_back(seconds_since(t0));
    t0 = clock::now();
    c.status(id);
    stat.push_back(seconds_since(t0));
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    t0 = clock::now();
    client::EventStreamOptions eo;
    eo.endpoint = {"127.0.0.1", c.env().websocket_port};
    eo.api_key = key; eo.job_id = id;
    client::EventStream es(eo); es.start(); nlohmann::json ev;
    es.next(ev, std::chrono::seconds(5));
    first.push_back(seconds_since(t0));
    while (es.next(ev, std::chrono::seconds(5)) == client::EventStream::Next::kEvent) {}
    last.push_back(seconds_since(t0));
    es.stop();
    ws.push_back(seconds_since(t0));
    t0 = clock::now();
    tr.run({.remote = true, .quiet = true, .no_cache = true});
    full.push_back(seconds_since(t0));
  }
  ctx.add("probe.request_build_us", median(req) * 1e6, "us");
  ctx.add("probe.submit_us", median(sub) * 1e6, "us");
  ctx.add("probe.status_us", median(stat) * 1e6, "us");
  ctx.add("probe.ws_replay_finished_us", median(ws) * 1e6, "us");
  ctx.add("probe.ws_first_event_us", median(first) * 1e6, "us");
  ctx.add("probe.ws_ended_us", median(last) * 1e6, "us");
  ctx.add("probe.full_run_us", median(full) * 1e6, "us");
  server.stop();
}
}
