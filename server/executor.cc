#include "server/executor.h"

#include <algorithm>
#include <iostream>

namespace loom::server {

Executor::Executor(std::string device, size_t capacity, RunJob run)
    : device_(std::move(device)), capacity_(capacity), run_(std::move(run)) {}

Executor::~Executor() { stop(); }

void Executor::start() { thread_ = std::thread([this] { loop(); }); }

void Executor::stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  idle_cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

bool Executor::try_push(const std::string& job_id) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (queue_.size() >= capacity_ || stopping_) return false;
    queue_.push_back(job_id);
  }
  cv_.notify_one();
  return true;
}

void Executor::push_unbounded(const std::string& job_id) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    queue_.push_back(job_id);
  }
  cv_.notify_one();
}

bool Executor::remove(const std::string& job_id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = std::find(queue_.begin(), queue_.end(), job_id);
  if (it == queue_.end()) return false;
  queue_.erase(it);
  idle_cv_.notify_all();
  return true;
}

int Executor::position(const std::string& job_id) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = std::find(queue_.begin(), queue_.end(), job_id);
  return it == queue_.end() ? -1 : static_cast<int>(it - queue_.begin());
}

std::vector<std::string> Executor::queued() const {
  std::lock_guard<std::mutex> lock(mu_);
  return {queue_.begin(), queue_.end()};
}

size_t Executor::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return queue_.size();
}

size_t Executor::load() const {
  std::lock_guard<std::mutex> lock(mu_);
  return queue_.size() + (running_ ? 1 : 0);
}

bool Executor::wait_load_below(size_t n, std::chrono::milliseconds timeout) const {
  std::unique_lock<std::mutex> lock(mu_);
  return idle_cv_.wait_for(lock, timeout,
                           [this, n] { return stopping_ || queue_.size() + (running_ ? 1 : 0) < n; }) &&
         !stopping_;
}

std::vector<std::string> Executor::take_queued() {
  std::vector<std::string> taken;
  {
    std::lock_guard<std::mutex> lock(mu_);
    taken.assign(queue_.begin(), queue_.end());
    queue_.clear();
  }
  idle_cv_.notify_all();
  return taken;
}

void Executor::loop() {
  while (true) {
    std::string id;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (stopping_) return;
      id = std::move(queue_.front());
      queue_.pop_front();
      running_ = true;
    }
    // run_ turns a job's failures into its ERROR state; this catch is the
    // backstop that keeps the device's thread alive whatever escapes.
    try {
      run_(id);
    } catch (const std::exception& e) {
      std::cerr << "loom-server: executor " << device_ << ": job " << id << ": " << e.what() << "\n";
    } catch (...) {
      std::cerr << "loom-server: executor " << device_ << ": job " << id << ": unknown exception\n";
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      running_ = false;
    }
    idle_cv_.notify_all();
  }
}

}  // namespace loom::server
