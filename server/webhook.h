// Delivers webhooks: one POST per terminal job state, signed with HMAC over
// timestamp and body (PROTOCOL.md), retried with exponential backoff a
// bounded number of times, redirects never followed. http:// or https://
// (the receiver's certificate verified against the system store, or
// `ca_file`, and its host name), to the addresses CallbackPolicy allows
// (checked again at each attempt).
//
// Every delivery is asynchronous on the sender's own io_context, with a
// timeout on connect, write and read: a receiver that accepts and never
// answers costs one of `max_in_flight` slots for `timeout`, and delays
// neither the other deliveries nor stop(), which abandons what is in flight
// at once (it stays recorded in the store and is resumed at restart).
// Thread safety: enqueue() and stop() from any thread.
#pragma once

#include <chrono>
#include <deque>
#include <functional>
#include <memory>
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
  std::chrono::milliseconds timeout{5000};  // each of connect, write, read
  size_t max_in_flight = 64;                // concurrent deliveries; the rest wait their turn
  std::string ca_file;                      // PEM CAs for https:// receivers; empty: the system store
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
  void stop();  // gives up on what is not delivered yet, without waiting for it

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::thread thread_;
};

}  // namespace loom::server
