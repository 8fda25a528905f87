#include "server/webhook.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <iostream>
#include <regex>

#include "transport/presign.h"

namespace loom::server {

namespace beast = boost::beast;
namespace http = beast::http;
using tcp = boost::asio::ip::tcp;

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
                                std::chrono::milliseconds timeout) {
  static const std::regex kUrl(R"(http://([^/:]+)(?::(\d+))?(/.*)?)");
  std::smatch m;
  if (!std::regex_match(url, m, kUrl)) return invalid_argument("webhook URL \"" + url + "\" is not http://HOST[:PORT]/PATH");
  std::string host = m[1], port = m[2].matched ? m[2].str() : "80", target = m[3].matched ? m[3].str() : "/";
  try {
    boost::asio::io_context io;
    beast::tcp_stream stream(io);
    stream.expires_after(timeout);
    tcp::resolver resolver(io);
    stream.connect(resolver.resolve(host, port));
    http::request<http::string_body> req{http::verb::post, target, 11};
    std::string ts = std::to_string(std::chrono::duration_cast<std::chrono::seconds>(
                                        std::chrono::system_clock::now().time_since_epoch())
                                        .count());
    req.set(http::field::host, host);
    req.set(http::field::content_type, "application/json");
    req.set(http::field::user_agent, "loom-server webhook");
    req.set("X-Loom-Timestamp", ts);
    req.set("X-Loom-Signature", transport::webhook_signature(secret, ts, body));
    req.body() = body;
    req.prepare_payload();
    stream.expires_after(timeout);
    http::write(stream, req);
    beast::flat_buffer buffer;
    http::response_parser<http::string_body> parser;
    parser.body_limit(1 << 16);
    http::read(stream, buffer, parser);
    beast::error_code ec;
    stream.socket().shutdown(tcp::socket::shutdown_both, ec);
    unsigned code = parser.get().result_int();
    if (code >= 200 && code < 300) return Status();
    if (code >= 300 && code < 400) return Status(StatusCode::kFailedPrecondition, "webhook answered a redirect (" + std::to_string(code) + "); redirects are not followed");
    return Status(StatusCode::kUnavailable, "webhook answered HTTP " + std::to_string(code));
  } catch (const std::exception& e) {
    return Status(StatusCode::kUnavailable, std::string("webhook delivery failed: ") + e.what());
  }
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
    Status s = post_once(d.url, d.body, options_.secret, options_.timeout);
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
