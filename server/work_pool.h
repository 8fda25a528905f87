// A bounded pool of threads for the blocking work an API request needs:
// decoding and hashing request bodies, SQLite statements, blob files and
// base64 STREAM replies. The I/O thread only parses, routes and writes;
// what blocks is posted here, and the answer is posted back to the
// connection's executor. A full queue refuses new work (the caller answers
// 503), so a burst cannot grow memory without bound.
// Thread safety: try_post() from any thread; stop() once, from the owner.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace loom::server {

class WorkPool {
 public:
  WorkPool(size_t threads, size_t max_queued);
  ~WorkPool();
  WorkPool(const WorkPool&) = delete;
  WorkPool& operator=(const WorkPool&) = delete;

  // False (and `work` dropped) when max_queued tasks are waiting or the
  // pool is stopping. A task that throws is logged; the thread goes on.
  bool try_post(std::function<void()> work);
  // Runs what is queued, then joins the threads.
  void stop();
  size_t queued() const;

 private:
  void loop();
  const size_t max_queued_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace loom::server
