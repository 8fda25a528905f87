#include "client/remote_commands.h"

#include <filesystem>
#include <iomanip>
#include <iostream>

#include "client/status_display.h"

namespace loom::client {

namespace {

// A job ID goes into a URL path: refuse anything else as a usage error.
bool usable_id(const std::string& command, const std::string& id) {
  try {
    check_job_id(id);
    return true;
  } catch (const ValidationError& e) {
    std::cerr << "loom " << command << ": " << e.what() << "\n";
    return false;
  }
}

void print_status(const JobStatus& st) {
  std::cout << st.id << " " << st.state_name;
  if (st.queue_position == 0) std::cout << " (next in line)";
  if (st.queue_position > 0) std::cout << " (" << st.queue_position << " ahead)";
  std::cout << "\n";
  if (!st.model.empty()) std::cout << "  model    " << st.model << "\n";
  if (!st.created_at.empty()) std::cout << "  created  " << st.created_at << "\n";
  if (!st.updated_at.empty()) std::cout << "  updated  " << st.updated_at << "\n";
  if (st.error_code != StatusCode::kOk || !st.error_message.empty()) {
    std::cout << "  error    " << status_code_name(st.error_code) << ": " << st.error_message << "\n";
  }
  if (st.state == JobState::kCompleted) {
    std::cout << "  result   " << format_bytes(st.result_size) << " compressed, sha256 " << st.result_sha256 << "\n";
  }
}

}  // namespace

int run_models_command(const RemoteFlags& flags, bool json) {
  return run_guarded("models", [&]() -> int {
    JobClient client(client_options(flags));
    auto models = client.models();
    if (json) {
      std::cout << "{\"models\": [";
      for (size_t i = 0; i < models.size(); ++i) {
        std::cout << (i ? ", " : "") << "{\"key\": " << std::quoted(models[i].key) << ", \"kind\": "
                  << std::quoted(models[i].kind) << ", \"device\": " << std::quoted(models[i].device) << "}";
      }
      std::cout << "]}\n";
      return kExitOk;
    }
    size_t width = 3;
    for (const auto& m : models) width = std::max(width, m.key.size());
    std::cout << std::left << std::setw(static_cast<int>(width)) << "KEY" << "  " << std::setw(12) << "KIND"
              << "  DEVICE\n";
    for (const auto& m : models) {
      std::cout << std::setw(static_cast<int>(width)) << m.key << "  " << std::setw(12) << m.kind << "  " << m.device
                << "\n";
    }
    return kExitOk;
  });
}

int run_jobs_command(const RemoteFlags& flags, bool json) {
  return run_guarded("jobs", [&]() -> int {
    JobClient client(client_options(flags));
    auto jobs = client.jobs();
    if (json) {
      std::cout << "{\"jobs\": [";
      for (size_t i = 0; i < jobs.size(); ++i) std::cout << (i ? ", " : "") << jobs[i].json;
      std::cout << "]}\n";
      return kExitOk;
    }
    std::cout << std::left << std::setw(34) << "ID" << std::setw(11) << "STATE" << std::setw(16) << "MODEL"
              << "CREATED\n";
    for (const auto& j : jobs) {
      std::cout << std::setw(34) << j.id << std::setw(11) << j.state_name << std::setw(16) << j.model
                << j.created_at << "\n";
    }
    return kExitOk;
  });
}

int run_status_command(const RemoteFlags& flags, const std::string& job_id, bool json) {
  if (!usable_id("status", job_id)) return kExitUsage;
  return run_guarded("status", [&]() -> int {
    JobClient client(client_options(flags));
    JobStatus st = client.status(job_id);
    if (json) {
      std::cout << st.json << "\n";
    } else {
      print_status(st);
    }
    return kExitOk;
  });
}

int run_wait_command(const RemoteFlags& flags, const std::string& job_id, double timeout_s) {
  if (!usable_id("wait", job_id)) return kExitUsage;
  return run_guarded("wait", [&]() -> int {
    JobClient client(client_options(flags));
    WaitOptions ro;
    ro.timeout = std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1000));
    try {
      JobStatus st = client.wait(job_id, ro);
      std::cout << job_id << " " << st.state_name << "\n";
      return kExitOk;
    } catch (const RemoteError&) {
      std::cout << job_id << " ERROR\n";
      throw;
    } catch (const CancelledError&) {
      std::cout << job_id << " CANCELLED\n";
      throw;
    }
  });
}

int run_result_command(const RemoteFlags& flags, const std::string& job_id, const std::string& output,
                       bool compressed) {
  if (!usable_id("result", job_id)) return kExitUsage;
  namespace fs = std::filesystem;
  fs::path dir = fs::path(output).parent_path();
  std::error_code ec;
  if (!dir.empty() && !fs::is_directory(dir, ec)) {
    std::cerr << "loom result: cannot write " << output << ": " << dir.string() << " is not a directory\n";
    return kExitFile;
  }
  if (fs::is_directory(output, ec)) {
    std::cerr << "loom result: cannot write " << output << ": it is a directory; give a file name\n";
    return kExitFile;
  }
  return run_guarded("result", [&]() -> int {
    JobClient client(client_options(flags));
    uint64_t n = client.download_result(job_id, output, compressed);
    std::cout << "wrote " << output << " (" << format_bytes(n) << (compressed ? ", zstd" : ", safetensors") << ")\n";
    return kExitOk;
  });
}

int run_cancel_command(const RemoteFlags& flags, const std::string& job_id) {
  if (!usable_id("cancel", job_id)) return kExitUsage;
  return run_guarded("cancel", [&]() -> int {
    JobClient client(client_options(flags));
    JobStatus st = client.cancel(job_id);
    std::cout << st.id << " " << st.state_name << "\n";
    return kExitOk;
  });
}

}  // namespace loom::client
