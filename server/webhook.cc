#include "server/webhook.h"

#include <iostream>

#include "transport/http_client.h"
#include "transport/internal/printable.h"
#include "transport/presign.h"

namespace loom::server {

WebhookSender::WebhookSender(WebhookOptions options) : options_(std::move(options)) {
  thread_ = std::thread([this] { loop(); });
}

WebhookSender::~WebhookSender() { stop(); }

void WebhookSender::stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void WebhookSender::enqueue(std::string event_id, std::string url, std::string body, int attempts) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    queue_.push_back({std::move(event_id), std::move(url), std::move(body), attempts, std::chrono::steady_clock::now()});
  }
  cv_.notify_one();
}

Status WebhookSender::post_once(const std::string& url, const std::string& body, const std::string& secret,
                                std::chrono::milliseconds timeout, const CallbackPolicy& policy) {
  // Resolved now and connected to by address: a name that has come to
  // point inside since the submit is refused here.
  auto target = policy.check(url);
  if (!target.ok()) return Status(StatusCode::kPermissionDenied, target.status().message());
  // The client's timeouts are asynchronous: connect, each write and each
  // read end after `timeout` even against a receiver that never answers.
  transport::HttpClientOptions ho;
  ho.connect_timeout = timeout;
  ho.io_timeout = timeout;
  ho.max_body_bytes = 1 << 16;
  transport::HttpClient client(transport::HttpEndpoint{target->address, target->port}, ho);
  transport::HttpRequest req;
  req.method = "POST";
  req.target = target->target;
  const std::string ts = std::to_string(
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count());
  const bool v6 = target->host.find(':') != std::string::npos;
  req.headers = {{"Host", (v6 ? "[" + target->host + "]" : target->host) + ":" + std::to_string(target->port)},
                 {"Content-Type", "application/json"},
                 {"User-Agent", "loom-server webhook"},
                 {"X-Loom-Timestamp", ts},
                 {"X-Loom-Signature", transport::webhook_signature(secret, ts, body)},
                 {"Connection", "close"}};
  req.body = body;
  transport::HttpResponse res;
  try {
    res = client.request(req);
  } catch (const transport::HttpError& e) {
    return Status(StatusCode::kUnavailable, "webhook delivery failed: " + e.status().message());
  }
  if (res.ok()) return Status();
  if (res.status >= 300 && res.status < 400) {
    return Status(StatusCode::kFailedPrecondition,
                  "webhook answered a redirect (" + std::to_string(res.status) + "); redirects are not followed");
  }
  return Status(StatusCode::kUnavailable, "webhook answered HTTP " + std::to_string(res.status));
}

void WebhookSender::loop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stopping_) {
    if (queue_.empty()) {
      cv_.wait(lock);
      continue;
    }
    auto next = std::min_element(queue_.begin(), queue_.end(),
                                 [](const Delivery& a, const Delivery& b) { return a.due < b.due; });
    if (next->due > std::chrono::steady_clock::now()) {
      cv_.wait_until(lock, next->due);
      continue;
    }
    Delivery d = std::move(*next);
    queue_.erase(next);
    lock.unlock();
    Status s = post_once(d.url, d.body, options_.secret, options_.timeout, options_.policy);
    ++d.attempt;
    const bool finished = s.ok() || d.attempt >= options_.attempts;
    if (options_.on_attempt) options_.on_attempt(d.event_id, d.attempt, finished);
    lock.lock();
    if (s.ok()) continue;
    if (finished) {
      std::cerr << "loom-server: webhook to " << d.url << " abandoned after " << d.attempt
                << " attempts: " << s.message() << "\n";
      continue;
    }
    d.due = std::chrono::steady_clock::now() + options_.first_backoff * (1 << (d.attempt - 1));
    queue_.push_back(std::move(d));
  }
}

}  // namespace loom::server
