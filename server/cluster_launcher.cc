#include "server/cluster_launcher.h"

#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "server/child_process.h"
#include "server/redis_bus.h"
#include "server/redis_client.h"

namespace loom::server {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using std::chrono::milliseconds;

constexpr milliseconds kSlurmCommandTimeout{60000};

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  return out + "'";
}

std::string state_file(const ClusterCommandOptions& o) { return (fs::path(o.state_dir) / "state.json").string(); }
std::string models_file(const ClusterCommandOptions& o, const WorkerGroupConfig& g) {
  return (fs::absolute(o.state_dir) / (g.name + ".models.json")).string();
}
std::string logs_dir(const ClusterCommandOptions& o) { return (fs::absolute(o.state_dir) / "logs").string(); }

// The loom-worker command line of a group; `name` may be a shell word that
// expands on the node (Slurm's task script).
std::vector<std::string> worker_argv(const ClusterConfig& c, const WorkerGroupConfig& g,
                                     const ClusterCommandOptions& o, const std::string& name) {
  std::vector<std::string> argv = {(fs::path(o.bin_dir) / "loom-worker").string(),
                                   "--redis", c.redis, "--models", models_file(o, g), "--blob-dir", c.blob_dir,
                                   "--name", name, "--lease", std::to_string(g.lease_s),
                                   "--blas-threads", std::to_string(g.cpus_per_task)};
  if (!g.device_memory.empty()) argv.insert(argv.end(), {"--device-memory", g.device_memory});
  if (!g.host_memory.empty()) argv.insert(argv.end(), {"--host-memory", g.host_memory});
  return argv;
}

Status write_file(const std::string& path, const std::string& text, bool executable = false) {
  std::ofstream out(path, std::ios::trunc);
  out << text;
  out.close();
  if (!out) return Status(StatusCode::kUnavailable, "cannot write " + path);
  if (executable) {
    std::error_code ec;
    fs::permissions(path, fs::perms::owner_exec | fs::perms::group_exec | fs::perms::others_exec,
                    fs::perm_options::add, ec);
  }
  return Status();
}

Result<json> read_state(const ClusterCommandOptions& o) {
  std::ifstream in(state_file(o));
  if (!in) return not_found("no cluster is up from " + o.state_dir + " (no " + state_file(o) + ")");
  std::stringstream ss;
  ss << in.rdbuf();
  json state = json::parse(ss.str(), nullptr, false);
  if (!state.is_object() || !state["servers"].is_array() || !state["groups"].is_array() ||
      !state["redis"].is_string()) {
    return invalid_argument(state_file(o) + " is not a cluster state file");
  }
  return state;
}

ProcessId process_of(const json& entry) {
  ProcessId id;
  if (entry.contains("pid") && entry["pid"].is_number_integer()) id.pid = entry["pid"].get<pid_t>();
  if (entry.contains("start") && entry["start"].is_number_unsigned()) id.start_ticks = entry["start"].get<uint64_t>();
  return id;
}

json process_json(const ProcessId& id) { return {{"pid", id.pid}, {"start", id.start_ticks}}; }

std::vector<std::string> slurm_jobs(const json& state) {
  std::vector<std::string> ids;
  for (const json& g : state["groups"]) {
    if (g.contains("slurm_job") && g["slurm_job"].is_string()) ids.push_back(g["slurm_job"].get<std::string>());
  }
  return ids;
}

std::string join(const std::vector<std::string>& items, const std::string& sep) {
  std::string out;
  for (const std::string& s : items) out += (out.empty() ? "" : sep) + s;
  return out;
}

// squeue's lines for `ids` (jobs that left the queue are not listed).
Result<std::string> squeue(const std::vector<std::string>& ids) {
  if (ids.empty()) return std::string();
  auto r = run_command({"squeue", "-h", "-j", join(ids, ","), "-o", "%i %j %T %M %R"}, kSlurmCommandTimeout);
  if (!r.ok()) return r.status();
  // squeue fails with "Invalid job id" once every listed job has ended.
  if (r->exit_code != 0 && r->output.find("Invalid job id") != std::string::npos) return std::string();
  if (r->exit_code == 127) return Status(StatusCode::kFailedPrecondition, "squeue is not on PATH");
  if (r->exit_code != 0) return Status(StatusCode::kUnavailable, "squeue failed: " + r->output);
  return r->output;
}

std::string tail_of(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string s = ss.str();
  return s.size() > 2000 ? s.substr(s.size() - 2000) : s;
}

// Waits for loom-server's "listening on URL" line in its log.
Result<std::string> wait_listening(const ProcessId& id, const std::string& log) {
  for (int i = 0; i < 600; ++i) {
    std::ifstream in(log);
    std::string line;
    while (std::getline(in, line)) {
      if (line.rfind("listening on ", 0) == 0) return line.substr(13);
    }
    if (!process_alive(id)) return Status(StatusCode::kUnavailable, "loom-server exited:\n" + tail_of(log));
    std::this_thread::sleep_for(milliseconds(100));
  }
  return Status(StatusCode::kDeadlineExceeded, "loom-server did not listen within 60 s; see " + log);
}

// The live worker names among `names` (their heartbeat keys exist).
std::vector<std::string> alive_workers(Redis& redis, const std::vector<std::string>& names) {
  RedisNames keys;
  std::vector<std::string> alive;
  for (const std::string& n : names) {
    auto r = redis.run({"EXISTS", keys.alive(n)});
    if (r.ok() && r->integer == 1) alive.push_back(n);
  }
  return alive;
}

std::vector<std::string> expected_workers(const json& state) {
  std::vector<std::string> names;
  for (const json& g : state["groups"]) {
    if (!g.contains("workers") || !g["workers"].is_array()) continue;
    for (const json& w : g["workers"]) {
      if (w.contains("name") && w["name"].is_string()) names.push_back(w["name"].get<std::string>());
    }
  }
  return names;
}

}  // namespace

std::string render_sbatch(const ClusterConfig& c, const WorkerGroupConfig& g, const ClusterCommandOptions& o) {
  std::ostringstream s;
  s << "#!/bin/bash\n"
    << "# loom worker group \"" << g.name << "\" of cluster \"" << c.name << "\" (written by `loom cluster up`)\n"
    << "#SBATCH --job-name=loom-" << c.name << "-" << g.name << "\n"
    << "#SBATCH --nodes=" << g.nodes << "\n"
    << "#SBATCH --ntasks-per-node=1\n"
    << "#SBATCH --cpus-per-task=" << g.cpus_per_task << "\n";
  if (g.gpus_per_node > 0) s << "#SBATCH --gpus-per-node=" << g.gpus_per_node << "\n";
  if (!g.memory.empty()) s << "#SBATCH --mem=" << g.memory << "\n";
  if (!g.time.empty()) s << "#SBATCH --time=" << g.time << "\n";
  if (!g.partition.empty()) s << "#SBATCH --partition=" << g.partition << "\n";
  s << "#SBATCH --output=" << logs_dir(o) << "/" << g.name << "-%j.out\n"
    << "set -eu\n";
  for (const std::string& m : g.modules) s << "module load " << shell_quote(m) << "\n";
  for (const auto& [name, value] : g.env) s << "export " << name << "=" << shell_quote(value) << "\n";
  // One task per node; each names its worker after the job and its rank.
  std::vector<std::string> argv = worker_argv(c, g, o, "NAME");
  std::string line;
  for (size_t i = 0; i < argv.size(); ++i) {
    if (argv[i] == "--name") {
      line += " --name \"" + g.name + "-${SLURM_JOB_ID}-${SLURM_PROCID}\"";
      ++i;
      continue;
    }
    line += (line.empty() ? "" : " ") + shell_quote(argv[i]);
  }
  s << "exec srun --kill-on-bad-exit=0 /bin/sh -c " << shell_quote("exec " + line) << "\n";
  return s.str();
}

Status cluster_up(const ClusterConfig& c, const std::string& config_path, const ClusterCommandOptions& o,
                  std::ostream& out) {
  if (o.launcher != "slurm" && o.launcher != "local") {
    return invalid_argument("--launcher must be slurm or local, not \"" + o.launcher + "\"");
  }
  if (auto old = read_state(o); old.ok()) {
    return Status(StatusCode::kFailedPrecondition, "cluster \"" + (*old)["name"].get<std::string>() +
                                                  "\" is already up from " + o.state_dir +
                                                  ": run `loom cluster down` first");
  }
  auto redis = Redis::open(c.redis);
  if (!redis.ok()) return redis.status().with_context("the cluster's Redis must be running before `loom cluster up`");
  std::error_code ec;
  fs::create_directories(logs_dir(o), ec);
  if (!ec) fs::create_directories(c.blob_dir, ec);
  if (ec) return Status(StatusCode::kUnavailable, "cannot create " + o.state_dir + " or " + c.blob_dir + ": " + ec.message());

  json state = {{"name", c.name},         {"redis", c.redis},          {"launcher", o.launcher},
                {"config", config_path},  {"servers", json::array()}, {"groups", json::array()}};
  auto save = [&] { return write_file(state_file(o), state.dump(2) + "\n"); };
  LOOM_RETURN_IF_ERROR(save());

  for (uint32_t i = 0; i < c.server_count; ++i) {
    uint32_t port = c.server_port == 0 ? 0 : c.server_port + i;
    std::string log = logs_dir(o) + "/server-" + std::to_string(i) + ".log";
    std::string listen = c.server_host + ":" + std::to_string(port);
    LOOM_ASSIGN_OR_RETURN(ProcessId id, spawn_detached({(fs::path(o.bin_dir) / "loom-server").string(), "--redis",
                                                        c.redis, "--blob-dir", c.blob_dir, "--listen", listen},
                                                       log));
    json entry = process_json(id);
    state["servers"].push_back(entry);
    LOOM_RETURN_IF_ERROR(save());
    LOOM_ASSIGN_OR_RETURN(std::string url, wait_listening(id, log));
    state["servers"].back()["url"] = url;
    LOOM_RETURN_IF_ERROR(save());
    out << "server " << i << ": " << url << " (pid " << id.pid << ", log " << log << ")\n";
  }

  std::vector<std::string> expected;
  for (const WorkerGroupConfig& g : c.workers) {
    LOOM_RETURN_IF_ERROR(write_file(models_file(o, g), models_config_json(g.models)));
    json group = {{"name", g.name}, {"workers", json::array()}};
    if (o.launcher == "local") {
      if (!g.modules.empty()) out << "group " << g.name << ": modules are not loaded by the local launcher\n";
      for (uint32_t n = 0; n < g.nodes; ++n) {
        std::string name = g.name + "-" + std::to_string(n);
        std::string log = logs_dir(o) + "/" + name + ".log";
        LOOM_ASSIGN_OR_RETURN(ProcessId id, spawn_detached(worker_argv(c, g, o, name), log, g.env));
        json w = process_json(id);
        w["name"] = name;
        group["workers"].push_back(w);
        expected.push_back(name);
        out << "worker " << name << ": pid " << id.pid << " (log " << log << ")\n";
      }
    } else {
      std::string script = (fs::absolute(o.state_dir) / (g.name + ".sbatch")).string();
      LOOM_RETURN_IF_ERROR(write_file(script, render_sbatch(c, g, o), true));
      LOOM_ASSIGN_OR_RETURN(CommandOutput r, run_command({"sbatch", "--parsable", script}, kSlurmCommandTimeout));
      if (r.exit_code == 127) return Status(StatusCode::kFailedPrecondition, "sbatch is not on PATH (is Slurm installed?)");
      std::string id = r.output.substr(0, r.output.find_first_of(";\n"));
      if (r.exit_code != 0 || id.empty() || id.find_first_not_of("0123456789") != std::string::npos) {
        return Status(StatusCode::kUnavailable, "sbatch " + script + " failed: " + r.output);
      }
      group["slurm_job"] = id;
      for (uint32_t n = 0; n < g.nodes; ++n) {
        std::string name = g.name + "-" + id + "-" + std::to_string(n);
        group["workers"].push_back({{"name", name}});
        expected.push_back(name);
      }
      out << "group " << g.name << ": slurm job " << id << " (" << script << ")\n";
    }
    state["groups"].push_back(group);
    LOOM_RETURN_IF_ERROR(save());
  }

  if (o.wait.count() > 0) {
    auto deadline = std::chrono::steady_clock::now() + o.wait;
    size_t alive = 0;
    while ((alive = alive_workers(**redis, expected).size()) < expected.size()) {
      if (std::chrono::steady_clock::now() > deadline) {
        return Status(StatusCode::kDeadlineExceeded, std::to_string(alive) + " of " + std::to_string(expected.size()) +
                                                         " workers sent a heartbeat within the wait; see " +
                                                         logs_dir(o) + " and `loom cluster status`");
      }
      std::this_thread::sleep_for(milliseconds(200));
    }
    out << "all " << expected.size() << " workers are up\n";
  }
  out << "cluster \"" << c.name << "\" is up (state " << o.state_dir << ")\n";
  return Status();
}

Status cluster_status(const ClusterCommandOptions& o, std::ostream& out) {
  LOOM_ASSIGN_OR_RETURN(json state, read_state(o));
  bool healthy = true;
  out << "cluster \"" << state.value("name", "?") << "\" (launcher " << state.value("launcher", "?") << ", redis "
      << state["redis"].get<std::string>() << ")\n";
  for (size_t i = 0; i < state["servers"].size(); ++i) {
    const json& s = state["servers"][i];
    bool up = process_alive(process_of(s));
    healthy = healthy && up;
    out << "server " << i << "  " << s.value("url", "-") << "  pid " << process_of(s).pid << "  "
        << (up ? "running" : "NOT RUNNING") << "\n";
  }
  std::vector<std::string> jobs = slurm_jobs(state);
  if (!jobs.empty()) {
    LOOM_ASSIGN_OR_RETURN(std::string queue, squeue(jobs));
    out << "squeue (JOBID NAME STATE TIME NODELIST/REASON):\n" << (queue.empty() ? "  (no job in the queue)\n" : queue);
  }
  for (const json& g : state["groups"]) {
    for (const json& w : g["workers"]) {
      if (w.contains("pid") && !process_alive(process_of(w))) {
        healthy = false;
        out << "worker " << w.value("name", "?") << "  pid " << process_of(w).pid << "  NOT RUNNING\n";
      }
    }
  }
  auto redis = Redis::open(state["redis"].get<std::string>());
  if (!redis.ok()) return redis.status().with_context("heartbeats");
  RedisNames keys;
  for (const std::string& name : expected_workers(state)) {
    auto ttl = (*redis)->run({"PTTL", keys.alive(name)});
    if (!ttl.ok()) return ttl.status();
    if (ttl->integer < 0) {
      healthy = false;
      out << "worker " << name << "  no heartbeat\n";
      continue;
    }
    auto models = (*redis)->run({"HGET", keys.worker(name), "models"});
    std::string listed = models.ok() && !models->nil() ? models->str : "[]";
    std::string tiers;
    json keys_list = json::parse(listed, nullptr, false);
    if (keys_list.is_array()) {
      for (const json& k : keys_list) {
        if (!k.is_string()) continue;
        auto tier = (*redis)->run({"GET", keys.tier(k.get<std::string>(), name)});
        tiers += " " + k.get<std::string>() + ":" + (tier.ok() && !tier->nil() ? tier->str : "?");
      }
    }
    out << "worker " << name << "  heartbeat " << (ttl->integer / 100) / 10.0 << " s left  models" << tiers << "\n";
  }
  if (!healthy) return Status(StatusCode::kUnavailable, "part of the cluster is not running");
  return Status();
}

Status cluster_down(const ClusterCommandOptions& o, std::ostream& out) {
  LOOM_ASSIGN_OR_RETURN(json state, read_state(o));
  // Workers first: they drain their running jobs while the servers still
  // carry the events to the clients.
  std::vector<std::string> jobs = slurm_jobs(state);
  if (!jobs.empty()) {
    std::vector<std::string> argv = {"scancel"};
    argv.insert(argv.end(), jobs.begin(), jobs.end());
    LOOM_ASSIGN_OR_RETURN(CommandOutput r, run_command(argv, kSlurmCommandTimeout));
    if (r.exit_code != 0 && r.output.find("Invalid job id") == std::string::npos) {
      return Status(StatusCode::kUnavailable, "scancel failed: " + r.output);
    }
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
    for (;;) {
      LOOM_ASSIGN_OR_RETURN(std::string queue, squeue(jobs));
      if (queue.empty()) break;
      if (std::chrono::steady_clock::now() > deadline) {
        return Status(StatusCode::kDeadlineExceeded, "Slurm jobs still in the queue 120 s after scancel:\n" + queue);
      }
      std::this_thread::sleep_for(milliseconds(250));
    }
    out << "cancelled slurm jobs " << join(jobs, ", ") << "\n";
  }
  bool all_gone = true;
  for (const json& g : state["groups"]) {
    for (const json& w : g["workers"]) {
      if (!w.contains("pid")) continue;
      // The worker's own drain timeout is 30 s; past it, SIGKILL.
      bool gone = stop_process(process_of(w), milliseconds(35000));
      all_gone = all_gone && gone;
      out << "worker " << w.value("name", "?") << ": " << (gone ? "stopped" : "STILL RUNNING") << "\n";
    }
  }
  for (size_t i = 0; i < state["servers"].size(); ++i) {
    bool gone = stop_process(process_of(state["servers"][i]), milliseconds(15000));
    all_gone = all_gone && gone;
    out << "server " << i << ": " << (gone ? "stopped" : "STILL RUNNING") << "\n";
  }
  if (!all_gone) return Status(StatusCode::kUnavailable, "some processes did not stop; state kept in " + o.state_dir);
  std::error_code ec;
  fs::remove(state_file(o), ec);
  out << "cluster \"" << state.value("name", "?") << "\" is down\n";
  return Status();
}

}  // namespace loom::server
