// The live status line and progress bar as a user sees them: on a terminal
// (rendered here by interpreting "\r", erase-line and "\n"), in plain mode
// (log files: no control characters), verbose and quiet. Time is a fake
// clock, so durations are exact.
#include <gtest/gtest.h>

#include <sstream>
#include <string>
#include <vector>

#include "client/status_display.h"

namespace loom::client {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// What a terminal shows after receiving `out`: one string per line.
std::vector<std::string> render_terminal(const std::string& out) {
  std::vector<std::string> lines(1);
  size_t col = 0;
  for (size_t i = 0; i < out.size(); ++i) {
    std::string& line = lines.back();
    if (out[i] == '\r') {
      col = 0;
    } else if (out[i] == '\n') {
      lines.emplace_back();
      col = 0;
    } else if (out.compare(i, 3, "\033[K") == 0) {
      line.erase(col);
      i += 2;
    } else {
      if (col < line.size()) line[col] = out[i];
      else line.push_back(out[i]);
      ++col;
    }
  }
  return lines;
}

std::vector<std::string> split_lines(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream in(s);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

class StatusDisplayTest : public ::testing::Test {
 protected:
  StatusDisplay make(bool tty, bool verbose = false, bool quiet = false) {
    StatusDisplayOptions o;
    o.out = &out_;
    o.tty = tty;
    o.verbose = verbose;
    o.quiet = quiet;
    o.now = [this] { return now_; };
    return StatusDisplay(o);
  }
  void advance(int ms) { now_ += milliseconds(ms); }

  // QUEUED at position 2 for 1 s, position 1 for 0.5 s, RUNNING 2.3 s, COMPLETED.
  void run_job(StatusDisplay& d) {
    d.set_job("j1");
    d.on_state("QUEUED", 2);
    advance(1000);
    d.tick();
    d.on_state("QUEUED", 1);
    advance(500);
    d.on_state("RUNNING");
    for (int i = 0; i < 10; ++i) {
      advance(230);
      d.tick();
    }
    d.finish("COMPLETED");
  }

  std::ostringstream out_;
  Clock::time_point now_{};
};

TEST_F(StatusDisplayTest, PlainModeWritesOneLinePerChangeWithoutControlCharacters) {
  StatusDisplay d = make(/*tty=*/false);
  EXPECT_FALSE(d.tty());
  run_job(d);
  const std::string s = out_.str();
  EXPECT_EQ(s.find('\r'), std::string::npos);
  EXPECT_EQ(s.find('\033'), std::string::npos);
  EXPECT_EQ(split_lines(s), (std::vector<std::string>{
                                "loom: job j1 QUEUED (2 ahead)",
                                "loom: job j1 QUEUED (1 ahead)",
                                "loom: job j1 RUNNING",
                                "loom: job j1 COMPLETED in 3.8s (queued 1.5s, running 2.3s)",
                            }));
}

TEST_F(StatusDisplayTest, LoadingShowsTheModelsProgressThenRunningDropsIt) {
  StatusDisplay d = make(/*tty=*/false);
  d.set_job("j1");
  d.on_state("DISPATCHED");
  d.on_state("LOADING", -1, {}, 0.0);
  advance(300);
  d.on_state("LOADING", -1, {}, 0.55);
  d.on_state("LOADING", -1, {}, 0.55);  // no change, no line
  advance(300);
  d.on_state("LOADING", -1, {}, 1.0);
  d.on_state("RUNNING");
  advance(100);
  d.finish("COMPLETED");
  EXPECT_EQ(split_lines(out_.str()), (std::vector<std::string>{
                                         "loom: job j1 DISPATCHED",
                                         "loom: job j1 LOADING (model 0%)",
                                         "loom: job j1 LOADING (model 55%)",
                                         "loom: job j1 LOADING (model 100%)",
                                         "loom: job j1 RUNNING",
                                         "loom: job j1 COMPLETED in 0.7s (dispatched 0.0s, loading 0.6s, running 0.1s)",
                                     }));
}

TEST_F(StatusDisplayTest, PlainVerboseSaysHowLongEachStateTook) {
  StatusDisplay d = make(/*tty=*/false, /*verbose=*/true);
  run_job(d);
  auto lines = split_lines(out_.str());
  ASSERT_EQ(lines.size(), 4u);
  EXPECT_EQ(lines[2], "loom: job j1 RUNNING (queued took 1.5s)");
}

TEST_F(StatusDisplayTest, TerminalRewritesOneLineAndEndsWithTheSummary) {
  StatusDisplay d = make(/*tty=*/true);
  d.set_job("j1");
  d.on_state("QUEUED", 2);
  advance(1200);
  d.tick();
  auto screen = render_terminal(out_.str());
  ASSERT_EQ(screen.size(), 1u);  // still one live line, no newline yet
  EXPECT_NE(screen[0].find("job j1  QUEUED (2 ahead) 1.2s"), std::string::npos) << screen[0];

  d.on_state("RUNNING");
  advance(300);
  d.tick();
  screen = render_terminal(out_.str());
  ASSERT_EQ(screen.size(), 1u);
  EXPECT_NE(screen[0].find("RUNNING 0.3s  (queued 1.2s)"), std::string::npos) << screen[0];

  d.finish("COMPLETED");
  screen = render_terminal(out_.str());
  EXPECT_EQ(screen, (std::vector<std::string>{"✓ job j1 COMPLETED in 1.5s (queued 1.2s, running 0.3s)", ""}));
}

TEST_F(StatusDisplayTest, GenerationShowsTokensAndTokensPerSecond) {
  StatusDisplay tty = make(/*tty=*/true);
  tty.set_job("j1");
  tty.on_state("RUNNING");
  for (int k = 0; k < 5; ++k) tty.on_token(k, 250 * (k + 1));  // 5 tokens in 1.25 s of server time
  advance(100);
  tty.tick();
  auto screen = render_terminal(out_.str());
  ASSERT_EQ(screen.size(), 1u);
  EXPECT_NE(screen[0].find("RUNNING (5 tokens, 4.0 tok/s)"), std::string::npos) << screen[0];

  out_.str("");
  StatusDisplay plain = make(/*tty=*/false);
  plain.set_job("j2");
  plain.on_state("RUNNING");
  for (int k = 0; k < 32; ++k) plain.on_token(k, 100 * (k + 1));
  // A log gets a line every 16 tokens, not one per token.
  EXPECT_EQ(split_lines(out_.str()), (std::vector<std::string>{
                                         "loom: job j2 RUNNING",
                                         "loom: job j2 RUNNING (16 tokens, 10.0 tok/s)",
                                         "loom: job j2 RUNNING (32 tokens, 10.0 tok/s)",
                                     }));
}

TEST_F(StatusDisplayTest, TerminalSpinnerMovesWithTime) {
  StatusDisplay d = make(/*tty=*/true);
  d.on_state("RUNNING");
  std::string first = render_terminal(out_.str())[0];
  advance(100);
  d.tick();
  std::string second = render_terminal(out_.str())[0];
  EXPECT_NE(first.substr(0, 3), second.substr(0, 3));  // the spinner frame (3 UTF-8 bytes)
  EXPECT_NE(out_.str().find("\r\033[K"), std::string::npos);
}

TEST_F(StatusDisplayTest, TerminalVerboseKeepsEachStateOnItsOwnLine) {
  StatusDisplay d = make(/*tty=*/true, /*verbose=*/true);
  run_job(d);
  EXPECT_EQ(render_terminal(out_.str()), (std::vector<std::string>{
                                             "✓ QUEUED (1 ahead) 1.5s",
                                             "✓ RUNNING 2.3s",
                                             "✓ COMPLETED in 3.8s",
                                             "",
                                         }));
}

TEST_F(StatusDisplayTest, ErrorEndsWithTheMessage) {
  StatusDisplay d = make(/*tty=*/false);
  d.set_job("j2");
  d.on_state("RUNNING");
  advance(400);
  d.finish("ERROR", "node 3 (op aten::matmul): shape mismatch");
  auto lines = split_lines(out_.str());
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[1], "loom: job j2 ERROR after 0.4s (running 0.4s): node 3 (op aten::matmul): shape mismatch");
}

TEST_F(StatusDisplayTest, ServerElapsedTimesCorrectTheLocalClock) {
  // A client that reattaches late sees the whole history replayed at once;
  // the events' elapsed_ms carry the true times.
  StatusDisplay d = make(/*tty=*/false);
  d.on_state("QUEUED", 0, {{"RECEIVED", 3}, {"QUEUED", 0}});
  d.on_state("RUNNING", -1, {{"RECEIVED", 3}, {"QUEUED", 4000}, {"RUNNING", 0}});
  advance(700);
  EXPECT_EQ(d.elapsed_ms("RECEIVED"), 3);
  EXPECT_EQ(d.elapsed_ms("QUEUED"), 4000);
  EXPECT_EQ(d.elapsed_ms("RUNNING"), 700);
  EXPECT_EQ(d.elapsed_ms("DISPATCHED"), -1);
  d.finish("COMPLETED");
  EXPECT_EQ(split_lines(out_.str()).back(), "loom: COMPLETED in 4.7s (received 0.0s, queued 4.0s, running 0.7s)");
}

TEST_F(StatusDisplayTest, LogEventsGetTheirOwnLineAndTheLiveLineComesBack) {
  StatusDisplay d = make(/*tty=*/true);
  d.on_state("RUNNING");
  d.on_log("h3 norm", "Float[1, 8] [1.5, 2.5]");
  auto screen = render_terminal(out_.str());
  ASSERT_EQ(screen.size(), 2u);
  EXPECT_EQ(screen[0], "loom: log: h3 norm: Float[1, 8] [1.5, 2.5]");
  EXPECT_NE(screen[1].find("RUNNING"), std::string::npos);
}

TEST_F(StatusDisplayTest, QuietPrintsNothing) {
  StatusDisplay d = make(/*tty=*/true, /*verbose=*/true, /*quiet=*/true);
  run_job(d);
  d.on_log("x", "y");
  d.download_started(100);
  d.download_progress(100);
  d.download_finished();
  EXPECT_EQ(out_.str(), "");
}

TEST_F(StatusDisplayTest, TerminalProgressBarShowsFractionBytesAndRate) {
  StatusDisplay d = make(/*tty=*/true);
  d.download_started(4 << 20);
  advance(1000);
  d.download_progress(2 << 20);
  auto screen = render_terminal(out_.str());
  ASSERT_EQ(screen.size(), 1u);
  EXPECT_EQ(screen[0], "downloading result [############............] 50%  2.0 MiB / 4.0 MiB  2.0 MiB/s");
  // Redraws are throttled: a chunk 10 ms later changes nothing on screen.
  advance(10);
  d.download_progress(3 << 20);
  EXPECT_EQ(render_terminal(out_.str())[0], screen[0]);
  advance(990);
  d.download_progress(4 << 20);
  d.download_finished();
  EXPECT_EQ(render_terminal(out_.str()), (std::vector<std::string>{"✓ downloaded 4.0 MiB in 2.0s (2.0 MiB/s)", ""}));
}

TEST_F(StatusDisplayTest, PlainProgressIsTwoLines) {
  StatusDisplay d = make(/*tty=*/false);
  d.download_started(1536);
  for (int i = 1; i <= 3; ++i) {
    advance(500);
    d.download_progress(512 * i);
  }
  d.download_finished();
  EXPECT_EQ(split_lines(out_.str()), (std::vector<std::string>{
                                         "loom: downloading result (1.5 KiB)",
                                         "loom: downloaded 1.5 KiB in 1.5s (1.0 KiB/s)",
                                     }));
}

TEST_F(StatusDisplayTest, NonTerminalStreamIsDetectedAsPlain) {
  StatusDisplayOptions o;
  o.out = &out_;  // not std::cerr / std::cout: never a terminal
  EXPECT_FALSE(StatusDisplay(o).tty());
}

TEST(Formatting, DurationsAndBytes) {
  EXPECT_EQ(format_duration_ms(0), "0.0s");
  EXPECT_EQ(format_duration_ms(1250), "1.2s");
  EXPECT_EQ(format_duration_ms(59'949), "59.9s");
  EXPECT_EQ(format_duration_ms(125'000), "2m05s");
  EXPECT_EQ(format_duration_ms(3'720'000), "1h02m");
  EXPECT_EQ(format_bytes(834), "834 B");
  EXPECT_EQ(format_bytes(1536), "1.5 KiB");
  EXPECT_EQ(format_bytes(3u << 20), "3.0 MiB");
  EXPECT_EQ(format_bytes(5ull << 30), "5.00 GiB");
}

}  // namespace
}  // namespace loom::client
