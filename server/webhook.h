// Delivers webhooks: one POST per terminal job state, signed with HMAC over
// timestamp and body (PROTOCOL.md), retried with exponential backoff a
// bounded number of times, redirects never followed. Plain http:// only, to
// the addresses CallbackPolicy allows (checked again at each attempt).
// Thread safety: enqueue() from any thread; delivery on its own thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "graph/status.h"
#include "server/callback_policy.h"

namespace loom::server {

struct WebhookOptions {
  std::string secret;
  int attempts = 5;
  std::chrono::milliseconds first_backoff{500};
  std::chrono::milliseconds timeout{5000};
  CallbackPolicy policy;  // checked again at each delivery, against the address then resolved
  // After each attempt (on the delivery thread): the attempts made so far,
  // and whether the delivery is over (delivered, or abandoned). JobService
  // records this so a restart resumes what is left.
  std::function<void(const std::string& event_id, int attempts, bool finished)> on_attempt;
};

class WebhookSender {
 public:
  explicit WebhookSender(WebhookOptions options);
  ~WebhookSender();
  // `attempts`: made before (by a previous process); the backoff goes on from there.
  void enqueue(std::string event_id, std::string url, std::string body, int attempts = 0);
  void stop();  // gives up on what is not delivered yet

  // One delivery attempt; OK on a 2xx answer. Exposed for tests.
  static Status post_once(const std::string& url, const std::string& body, const std::string& secret,
                          std::chrono::milliseconds timeout, const CallbackPolicy& policy);

 private:
  struct Delivery {
    std::string event_id, url, body;
    int attempt = 0;
    std::chrono::steady_clock::time_point due;
  };
  void loop();
  WebhookOptions options_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Delivery> queue_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace loom::server
