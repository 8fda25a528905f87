#include "client/status_display.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>

#include "transport/wire.h"

namespace loom::client {

namespace {

constexpr const char* kEraseLine = "\r\033[K";
constexpr const char* kSpinnerFrames[] = {"⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"};
constexpr int kSpinnerFrameMs = 100;
constexpr int kBarWidth = 24;
// A terminal redraws the bar at most this often: a fast download calls
// download_progress() per chunk, thousands of times a second.
constexpr int kBarRedrawMs = 100;

// A state's place in the lifecycle (transport/wire.h's order); unknown
// states (a newer server's) sort last.
int lifecycle_index(const std::string& state) { return static_cast<int>(transport::parse_job_state(state)); }

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

bool detect_tty(std::ostream* out) {
  const char* term = std::getenv("TERM");
  if (term != nullptr && std::strcmp(term, "dumb") == 0) return false;
  if (out == &std::cerr || out == &std::clog) return ::isatty(STDERR_FILENO) == 1;
  if (out == &std::cout) return ::isatty(STDOUT_FILENO) == 1;
  return false;
}

}  // namespace

std::string format_bytes(uint64_t bytes) {
  char buf[32];
  if (bytes < 1024) {
    std::snprintf(buf, sizeof buf, "%llu B", static_cast<unsigned long long>(bytes));
  } else if (bytes < (1ull << 20)) {
    std::snprintf(buf, sizeof buf, "%.1f KiB", bytes / 1024.0);
  } else if (bytes < (1ull << 30)) {
    std::snprintf(buf, sizeof buf, "%.1f MiB", bytes / 1048576.0);
  } else {
    std::snprintf(buf, sizeof buf, "%.2f GiB", bytes / 1073741824.0);
  }
  return buf;
}

std::string format_duration_ms(int64_t ms) {
  if (ms < 0) ms = 0;
  char buf[32];
  if (ms < 60'000) {
    std::snprintf(buf, sizeof buf, "%.1fs", ms / 1000.0);
  } else if (ms < 3'600'000) {
    std::snprintf(buf, sizeof buf, "%lldm%02llds", static_cast<long long>(ms / 60'000),
                  static_cast<long long>((ms / 1000) % 60));
  } else {
    std::snprintf(buf, sizeof buf, "%lldh%02lldm", static_cast<long long>(ms / 3'600'000),
                  static_cast<long long>((ms / 60'000) % 60));
  }
  return buf;
}

StatusDisplay::StatusDisplay(StatusDisplayOptions options)
    : out_(options.out != nullptr ? options.out : &std::cerr),
      tty_(options.tty.has_value() ? *options.tty : detect_tty(out_)),
      verbose_(options.verbose),
      quiet_(options.quiet),
      now_(options.now ? std::move(options.now) : [] { return Clock::now(); }) {
  start_ = now_();
  state_started_ = start_;
  last_draw_ = start_;
}

int64_t StatusDisplay::ms_since(Clock::time_point t) const {
  return std::chrono::duration_cast<std::chrono::milliseconds>(now_() - t).count();
}

int64_t StatusDisplay::elapsed_ms(const std::string& state) const {
  if (state == state_) return ms_since(state_started_);
  for (const auto& [s, ms] : finished_) {
    if (s == state) return ms;
  }
  return -1;
}

std::string StatusDisplay::spinner() const {
  int64_t frame = (ms_since(start_) / kSpinnerFrameMs) % 10;
  return kSpinnerFrames[frame];
}

std::string StatusDisplay::state_label() const {
  std::string s = state_;
  // The server counts the jobs waiting ahead (0: this one runs next).
  if (queue_position_ == 0) s += " (next in line)";
  if (queue_position_ > 0) s += " (" + std::to_string(queue_position_) + " ahead)";
  if (progress_ >= 0) s += " (model " + std::to_string(static_cast<int>(std::min(progress_, 1.0) * 100)) + "%)";
  if (tokens_ > 0) {
    char rate[32] = "";
    if (token_elapsed_ms_ > 0) {
      std::snprintf(rate, sizeof rate, ", %.1f tok/s", 1000.0 * static_cast<double>(tokens_) / token_elapsed_ms_);
    }
    s += " (" + std::to_string(tokens_) + (tokens_ == 1 ? " token" : " tokens") + rate + ")";
  }
  return s;
}

void StatusDisplay::on_token(int64_t step, int64_t elapsed_ms) {
  tokens_ = std::max(tokens_, step + 1);
  token_elapsed_ms_ = elapsed_ms;
  if (quiet_) return;
  // A terminal redraws at most ~10 times a second (tick); a log gets a line
  // every 16 tokens, not one per token.
  if (!tty_ && tokens_ % 16 == 0) {
    *out_ << "loom: ";
    if (!job_.empty()) *out_ << "job " << job_ << " ";
    *out_ << state_label() << "\n";
    out_->flush();
  }
}

std::string StatusDisplay::history(bool include_current) const {
  std::string h;
  for (const auto& [s, ms] : finished_) {
    if (!h.empty()) h += ", ";
    h += lower(s) + " " + format_duration_ms(ms);
  }
  if (include_current && !state_.empty()) {
    if (!h.empty()) h += ", ";
    h += lower(state_) + " " + format_duration_ms(ms_since(state_started_));
  }
  return h;
}

void StatusDisplay::set_job(const std::string& job_id) { job_ = job_id; }

void StatusDisplay::clear_live() {
  if (tty_ && live_) {
    *out_ << kEraseLine;
    live_ = false;
  }
}

void StatusDisplay::draw_live() {
  if (quiet_ || !tty_ || state_.empty()) return;
  *out_ << kEraseLine << spinner() << " ";
  if (!job_.empty()) *out_ << "job " << job_ << "  ";
  *out_ << state_label() << " " << format_duration_ms(ms_since(state_started_));
  if (!verbose_) {
    std::string h = history(false);
    if (!h.empty()) *out_ << "  (" << h << ")";
  }
  out_->flush();
  live_ = true;
}

void StatusDisplay::on_state(const std::string& state, int64_t queue_position,
                             const std::map<std::string, int64_t>& server_elapsed_ms, double progress) {
  const bool new_state = state != state_;
  const bool moved = !new_state && (queue_position != queue_position_ || progress != progress_);
  std::string previous_state, previous_label;
  int64_t previous_ms = -1;
  if (new_state && !state_.empty()) {
    previous_state = state_;
    previous_label = state_label();
    previous_ms = ms_since(state_started_);
    finished_.emplace_back(state_, previous_ms);
  }
  if (new_state) {
    state_ = state;
    state_started_ = now_();
  }
  queue_position_ = queue_position;
  progress_ = progress;

  // The server's clock knows the states this process did not watch.
  for (const auto& [s, ms] : server_elapsed_ms) {
    if (s == state_) {
      state_started_ = now_() - std::chrono::milliseconds(ms);
      continue;
    }
    auto it = std::find_if(finished_.begin(), finished_.end(), [&](const auto& p) { return p.first == s; });
    if (it != finished_.end()) {
      it->second = ms;
    } else {
      auto pos = std::find_if(finished_.begin(), finished_.end(),
                              [&](const auto& p) { return lifecycle_index(p.first) > lifecycle_index(s); });
      finished_.insert(pos, {s, ms});
    }
  }
  if (previous_ms >= 0) previous_ms = elapsed_ms(previous_state);
  if (quiet_ || (!new_state && !moved)) {
    if (tty_ && !quiet_) draw_live();
    return;
  }
  if (tty_) {
    if (verbose_ && !previous_label.empty()) {
      clear_live();
      *out_ << "✓ " << previous_label << " " << format_duration_ms(previous_ms) << "\n";
    }
    draw_live();
    return;
  }
  *out_ << "loom: ";
  if (!job_.empty()) *out_ << "job " << job_ << " ";
  *out_ << state_label();
  if (verbose_ && previous_ms >= 0) {
    *out_ << " (" << lower(previous_state) << " took " << format_duration_ms(previous_ms) << ")";
  }
  *out_ << "\n";
  out_->flush();
}

void StatusDisplay::on_log(const std::string& text, const std::string& value) {
  if (quiet_) return;
  bool was_live = live_;
  clear_live();
  *out_ << "loom: ";
  if (!tty_ && !job_.empty()) *out_ << "job " << job_ << " ";
  *out_ << "log: " << text;
  if (!value.empty()) *out_ << ": " << value;
  *out_ << "\n";
  if (was_live) draw_live();
  out_->flush();
}

void StatusDisplay::tick() {
  if (quiet_ || !tty_) return;
  if (downloading_) {
    draw_download(false);
  } else if (live_) {
    draw_live();
  }
}

void StatusDisplay::finish(const std::string& final_state, const std::string& detail) {
  std::string last_label;
  int64_t last_ms = -1;
  if (!state_.empty() && state_ != final_state) {
    last_label = state_label();
    last_ms = ms_since(state_started_);
    finished_.emplace_back(state_, last_ms);
  }
  state_ = final_state;
  queue_position_ = -1;
  state_started_ = now_();
  if (quiet_) return;
  int64_t total = 0;
  for (const auto& p : finished_) total += p.second;
  clear_live();
  if (tty_ && verbose_ && last_ms >= 0) *out_ << "✓ " << last_label << " " << format_duration_ms(last_ms) << "\n";
  const bool completed = transport::parse_job_state(final_state) == transport::JobState::kCompleted;
  if (tty_) *out_ << (completed ? "✓ " : "✗ ");
  else *out_ << "loom: ";
  if (!job_.empty() && !(tty_ && verbose_)) *out_ << "job " << job_ << " ";
  *out_ << final_state << (completed ? " in " : " after ") << format_duration_ms(total);
  std::string h = history(false);
  if (!h.empty() && !(tty_ && verbose_)) *out_ << " (" << h << ")";
  if (!detail.empty()) *out_ << ": " << detail;
  *out_ << "\n";
  out_->flush();
}

void StatusDisplay::draw_download(bool force) {
  if (quiet_ || !tty_) return;
  if (!force && ms_since(last_draw_) < kBarRedrawMs) return;
  last_draw_ = now_();
  *out_ << kEraseLine << "downloading result ";
  if (total_ > 0) {
    double frac = std::min(1.0, static_cast<double>(done_) / static_cast<double>(total_));
    int filled = static_cast<int>(frac * kBarWidth);
    *out_ << "[" << std::string(filled, '#') << std::string(kBarWidth - filled, '.') << "] "
          << static_cast<int>(frac * 100) << "%  " << format_bytes(done_) << " / " << format_bytes(total_);
  } else {
    *out_ << spinner() << " " << format_bytes(done_);
  }
  int64_t ms = ms_since(download_started_);
  if (ms > 0) *out_ << "  " << format_bytes(static_cast<uint64_t>(done_ * 1000.0 / ms)) << "/s";
  out_->flush();
  live_ = true;
}

void StatusDisplay::download_started(uint64_t total_bytes) {
  downloading_ = true;
  total_ = total_bytes;
  done_ = 0;
  download_started_ = now_();
  if (quiet_) return;
  if (tty_) {
    clear_live();
    draw_download(true);
  } else {
    *out_ << "loom: downloading result" << (total_ > 0 ? " (" + format_bytes(total_) + ")" : "") << "\n";
    out_->flush();
  }
}

void StatusDisplay::download_progress(uint64_t done_bytes) {
  done_ = done_bytes;
  draw_download(total_ > 0 && done_ >= total_);
}

void StatusDisplay::download_finished() {
  if (!downloading_) return;
  downloading_ = false;
  if (quiet_) return;
  clear_live();
  int64_t ms = ms_since(download_started_);
  *out_ << (tty_ ? "✓ " : "loom: ") << "downloaded " << format_bytes(done_) << " in " << format_duration_ms(ms);
  if (ms > 0) *out_ << " (" << format_bytes(static_cast<uint64_t>(done_ * 1000.0 / ms)) << "/s)";
  *out_ << "\n";
  out_->flush();
}

}  // namespace loom::client
