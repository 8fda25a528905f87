#include "server/child_process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

namespace loom::server {
namespace {

// After fork, in the child: only async-signal-safe calls until exec.
[[noreturn]] void exec_child(const std::vector<std::string>& argv, bool search_path) {
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  for (int fd = 3; fd < 1024; ++fd) ::close(fd);
  if (search_path) {
    ::execvp(args[0], args.data());
  } else {
    ::execv(args[0], args.data());
  }
  const char msg[] = "exec failed\n";
  (void)!::write(2, msg, sizeof msg - 1);
  ::_exit(127);
}

// Field 3 (state) and 22 (starttime) of /proc/PID/stat; the command name
// (field 2) may hold spaces and parentheses, so parse after the last ')'.
bool read_stat(pid_t pid, char& state, uint64_t& start_ticks) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!in || !std::getline(in, line)) return false;
  size_t close = line.rfind(')');
  if (close == std::string::npos) return false;
  std::istringstream rest(line.substr(close + 1));
  std::string field;
  rest >> state;
  for (int i = 4; i <= 22 && rest >> field; ++i) {
    if (i == 22) start_ticks = std::strtoull(field.c_str(), nullptr, 10);
  }
  return true;
}

}  // namespace

Result<ProcessId> spawn_detached(const std::vector<std::string>& argv, const std::string& log,
                                 const std::vector<std::pair<std::string, std::string>>& env) {
  if (argv.empty()) return invalid_argument("spawn: no command");
  int out = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (out < 0) return Status(StatusCode::kUnavailable, "cannot open " + log + ": " + std::strerror(errno));
  pid_t pid = ::fork();
  if (pid < 0) {
    ::close(out);
    return Status(StatusCode::kUnavailable, std::string("fork: ") + std::strerror(errno));
  }
  if (pid == 0) {
    ::setsid();
    int in = ::open("/dev/null", O_RDONLY);
    ::dup2(in, 0);
    ::dup2(out, 1);
    ::dup2(out, 2);
    for (const auto& [name, value] : env) ::setenv(name.c_str(), value.c_str(), 1);
    exec_child(argv, false);
  }
  ::close(out);
  ProcessId id{pid, 0};
  char state = 0;
  // The child is ours until it execs, so its start time is readable now.
  if (!read_stat(pid, state, id.start_ticks)) return Status(StatusCode::kInternal, "cannot read the new process");
  return id;
}

bool process_alive(const ProcessId& id) {
  if (id.pid <= 0) return false;
  // Reaps our own exited children (loom cluster up's, before it exits).
  int status = 0;
  (void)::waitpid(id.pid, &status, WNOHANG);
  char state = 0;
  uint64_t start = 0;
  if (!read_stat(id.pid, state, start)) return false;
  return state != 'Z' && state != 'X' && start == id.start_ticks;
}

bool stop_process(const ProcessId& id, std::chrono::milliseconds grace) {
  if (!process_alive(id)) return true;
  ::kill(-id.pid, SIGTERM);
  auto deadline = std::chrono::steady_clock::now() + grace;
  while (std::chrono::steady_clock::now() < deadline) {
    if (!process_alive(id)) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  if (process_alive(id)) ::kill(-id.pid, SIGKILL);
  for (int i = 0; i < 100 && process_alive(id); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  return !process_alive(id);
}

Result<CommandOutput> run_command(const std::vector<std::string>& argv, std::chrono::milliseconds timeout) {
  if (argv.empty()) return invalid_argument("run: no command");
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return Status(StatusCode::kUnavailable, std::string("pipe: ") + std::strerror(errno));
  pid_t pid = ::fork();
  if (pid < 0) {
    ::close(fds[0]);
    ::close(fds[1]);
    return Status(StatusCode::kUnavailable, std::string("fork: ") + std::strerror(errno));
  }
  if (pid == 0) {
    int in = ::open("/dev/null", O_RDONLY);
    ::dup2(in, 0);
    ::dup2(fds[1], 1);
    ::dup2(fds[1], 2);
    exec_child(argv, true);
  }
  ::close(fds[1]);
  CommandOutput result;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  char buf[4096];
  bool killed = false;
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      ::kill(pid, SIGKILL);
      killed = true;
      break;
    }
    pollfd p{fds[0], POLLIN, 0};
    int r = ::poll(&p, 1, static_cast<int>(left.count()));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) continue;
    ssize_t n = ::read(fds[0], buf, sizeof buf);
    if (n <= 0) break;
    if (result.output.size() < (1 << 20)) result.output.append(buf, static_cast<size_t>(n));
  }
  ::close(fds[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (killed) {
    result.exit_code = -1;
  } else if (WIFEXITED(status)) {
    result.exit_code = WEXITSTATUS(status);
  } else {
    result.exit_code = 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
  }
  return result;
}

}  // namespace loom::server
