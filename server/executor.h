// One thread per device runs jobs from a bounded FIFO queue, so model work
// never happens on an I/O thread and a device runs one job at a time.
// Thread safety: push/position/size from any thread; `run` runs on the
// executor's own thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace loom::server {

class Executor {
 public:
  using RunJob = std::function<void(const std::string& job_id)>;
  Executor(std::string device, size_t capacity, RunJob run);
  ~Executor();

  void start();
  // Finishes the job in hand, leaves the queue as it is (the store keeps
  // those jobs QUEUED for the next start), joins the thread.
  void stop();

  // False when the queue is full (the caller answers 429).
  bool try_push(const std::string& job_id);
  void push_unbounded(const std::string& job_id);  // restart recovery
  bool remove(const std::string& job_id);          // cancel of a queued job
  // 0-based place in the queue, -1 if not queued.
  int position(const std::string& job_id) const;
  size_t size() const;
  size_t load() const;  // queued plus the job in hand
  // Waits until load() < n or `timeout` passes; true when it is.
  bool wait_load_below(size_t n, std::chrono::milliseconds timeout) const;
  // Takes every queued job off the queue (the one in hand runs on).
  std::vector<std::string> take_queued();
  std::vector<std::string> queued() const;  // the queue, front first
  const std::string& device() const { return device_; }

 private:
  void loop();
  const std::string device_;
  const size_t capacity_;
  RunJob run_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  mutable std::condition_variable idle_cv_;  // load() fell
  std::deque<std::string> queue_;
  bool stopping_ = false;
  bool running_ = false;  // a job is in hand
  std::thread thread_;
};

}  // namespace loom::server
