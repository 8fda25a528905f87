// What a blocking remote run shows while it waits: one live status line
// (spinner, job, state, queue position, elapsed time in the current state
// and in each earlier one) and a download progress bar.
//
// Three forms, chosen by where the output goes:
//   terminal (isatty)   one line rewritten in place with "\r" + erase-line;
//                       the spinner and clock move on tick();
//   terminal, verbose   each state keeps its own finished line
//                       ("✓ QUEUED (2 ahead) 0.4s"), the current one live;
//   not a terminal      plain lines, one per state or queue-position change,
//                       no control characters (log files, CI); verbose adds
//                       how long each state took.
// quiet prints nothing. LOG events always get their own line.
//
// Durations come from this process's clock (injectable for tests), corrected
// by the server's per-state elapsed times when an event carries them (a
// client that reattaches to an old job still shows the true times).
// Thread safety: one thread (the one running the blocking call).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace loom::client {

struct StatusDisplayOptions {
  std::ostream* out = nullptr;  // nullptr: std::cerr (stdout stays for results and job IDs)
  // Whether `out` is a terminal; unset: isatty() of stderr/stdout when out
  // is std::cerr/std::cout (and TERM is not "dumb"), false for any other stream.
  std::optional<bool> tty;
  bool verbose = false;
  bool quiet = false;
  // The clock; tests inject a fake one.
  std::function<std::chrono::steady_clock::time_point()> now;
};

class StatusDisplay {
 public:
  explicit StatusDisplay(StatusDisplayOptions options = {});

  void set_job(const std::string& job_id);
  // A state reached (from a STATUS event or a polled snapshot). queue_position:
  // jobs waiting ahead (0: next in line), < 0: none. server_elapsed_ms: the event's "elapsed_ms" ({state: ms}), if any.
  // progress: while LOADING, the fraction of the model loaded (0..1); < 0: none.
  void on_state(const std::string& state, int64_t queue_position = -1,
                const std::map<std::string, int64_t>& server_elapsed_ms = {}, double progress = -1);
  void on_log(const std::string& text, const std::string& value);
  // A generation step ran (0-based), `elapsed_ms` after the run started:
  // the line shows the tokens so far and tokens/s.
  void on_token(int64_t step, int64_t elapsed_ms);
  // Terminal only: moves the spinner and the clock. Call every ~100 ms.
  void tick();
  // The job reached a terminal state; `detail` is an error message, if any.
  // Ends the live line.
  void finish(const std::string& final_state, const std::string& detail = "");

  // total_bytes 0: unknown.
  void download_started(uint64_t total_bytes);
  void download_progress(uint64_t done_bytes);
  void download_finished();

  bool tty() const { return tty_; }
  // Time spent in `state` so far (ms); -1 if never entered.
  int64_t elapsed_ms(const std::string& state) const;

 private:
  using Clock = std::chrono::steady_clock;
  int64_t ms_since(Clock::time_point t) const;
  std::string spinner() const;
  std::string state_label() const;    // "QUEUED (2 ahead)", "LOADING (model 40%)"
  std::string history(bool include_current) const;  // "received 0.0s, queued 0.4s"
  void draw_live();                   // terminal: rewrite the live line
  void clear_live();                  // terminal: erase the live line
  void draw_download(bool force);

  std::ostream* out_;
  bool tty_;
  bool verbose_;
  bool quiet_;
  std::function<Clock::time_point()> now_;
  Clock::time_point start_;
  std::string job_;
  std::string state_;
  int64_t queue_position_ = -1;
  double progress_ = -1;          // LOADING's fraction, < 0: none
  int64_t tokens_ = 0;            // generation steps seen
  int64_t token_elapsed_ms_ = 0;  // the last one's server time
  Clock::time_point state_started_;
  std::vector<std::pair<std::string, int64_t>> finished_;  // earlier states, in order, with ms
  bool live_ = false;  // a live line is on screen (terminal)
  // Download.
  bool downloading_ = false;
  uint64_t total_ = 0;
  uint64_t done_ = 0;
  Clock::time_point download_started_;
  Clock::time_point last_draw_;
};

// "1.2 MiB", "834 B"
std::string format_bytes(uint64_t bytes);
// "0.4s", "12.3s", "2m05s", "1h02m"
std::string format_duration_ms(int64_t ms);

}  // namespace loom::client
