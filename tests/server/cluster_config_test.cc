// The cluster config (server/cluster_config.h): strict validation that names
// the path of what is wrong, and the sbatch script a worker group becomes.
// The launchers themselves run end to end in scripts/cluster_checks.sh
// (local processes and a private single-node Slurm).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "server/cluster_config.h"
#include "server/cluster_launcher.h"

namespace loom::server {
namespace {

constexpr const char* kGood = R"(
cluster:
  name: demo
  redis: redis://10.0.0.5:6379
  blob_dir: blobs
  servers: {count: 2, listen: "0.0.0.0:8080"}
  workers:
    - name: gpt2
      models: [{key: gpt2, path: ckpt/gpt2, device: "cuda:1"}]
      partition: gpu
      nodes: 3
      gpus_per_node: 2
      cpus_per_task: 8
      memory: 64G
      time: "1-00:00:00"
      env: {HF_HOME: /shared/hf, QUOTE: "it's"}
      modules: [cuda/12.2]
      lease_s: 10
      device_memory: 70G
      host_memory: 200G
    - {name: small, models: [{key: tiny, path: /abs/tiny}]}
)";

TEST(ClusterConfig, AFullConfigParsesWithPathsMadeAbsolute) {
  auto c = parse_cluster_config(kGood, "/etc/loom");
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->name, "demo");
  EXPECT_EQ(c->redis, "redis://10.0.0.5:6379");
  EXPECT_EQ(c->blob_dir, "/etc/loom/blobs");
  EXPECT_EQ(c->server_count, 2u);
  EXPECT_EQ(c->server_host, "0.0.0.0");
  EXPECT_EQ(c->server_port, 8080u);
  ASSERT_EQ(c->workers.size(), 2u);
  const WorkerGroupConfig& g = c->workers[0];
  EXPECT_EQ(g.name, "gpt2");
  ASSERT_EQ(g.models.size(), 1u);
  EXPECT_EQ(g.models[0].path, "/etc/loom/ckpt/gpt2");
  EXPECT_EQ(g.models[0].device, "cuda:1");
  EXPECT_EQ(g.nodes, 3u);
  EXPECT_EQ(g.gpus_per_node, 2u);
  EXPECT_EQ(g.cpus_per_task, 8u);
  EXPECT_EQ(g.memory, "64G");
  EXPECT_EQ(g.time, "1-00:00:00");
  EXPECT_EQ(g.env, (std::vector<std::pair<std::string, std::string>>{{"HF_HOME", "/shared/hf"}, {"QUOTE", "it's"}}));
  EXPECT_EQ(g.modules, std::vector<std::string>{"cuda/12.2"});
  EXPECT_EQ(g.lease_s, 10);
  EXPECT_EQ(g.device_memory, "70G");
  EXPECT_EQ(g.host_memory, "200G");
  EXPECT_EQ(c->workers[1].nodes, 1u);
  EXPECT_EQ(c->workers[1].models[0].path, "/abs/tiny");
}

TEST(ClusterConfig, EachMistakeIsNamedWithItsPath) {
  // {change to the good config's first group (a YAML flow mapping line), expected message}
  const std::string head = "cluster: {redis: \"redis://127.0.0.1:6379\", blob_dir: b, workers: [{name: w, ";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"models: [{key: m, path: p}], nodes: \"2\"}]}", "cluster.workers[0].nodes: must be an integer 1..10000"},
      {"models: [{key: m, path: p}], nodes: 0}]}", "cluster.workers[0].nodes: must be an integer 1..10000, got 0"},
      {"models: [{key: m, path: p}], nodes: [1]}]}", "cluster.workers[0].nodes: must be an integer"},
      {"models: [{key: m, path: p}], gpus: 1}]}", "cluster.workers[0]: unknown field \"gpus\""},
      {"models: [{key: m, path: p, device: \"cuda:0\"}]}]}",
       "cluster.workers[0].models[0].device: cuda:0 needs gpus_per_node >= 1"},
      {"models: [{key: m, path: p, device: tpu}]}]}", "cluster.workers[0].models[0].device \"tpu\" must be cpu or cuda:N"},
      {"models: []}]}", "\"cluster.workers[0].models\" must be a non-empty list"},
      {"models: [{key: m}]}]}", "cluster.workers[0].models[0].path is missing"},
      {"models: [{key: m, path: p}], memory: lots}]}", "cluster.workers[0].memory: must be a size like 16G"},
      {"models: [{key: m, path: p}], device_memory: 8 GB}]}", "cluster.workers[0].device_memory: must be a size"},
      {"models: [{key: m, path: p}], time: tomorrow}]}", "cluster.workers[0].time: must be a Slurm time limit"},
      {"models: [{key: m, path: p}], env: {1BAD: x}}]}", "cluster.workers[0].env: \"1BAD\" is not a variable name"},
      {"models: [{key: m, path: p}], env: [A]}]}", "cluster.workers[0].env: must be a mapping"},
      {"models: [{key: m, path: p}], modules: [\"a;rm -rf\"]}]}", "cluster.workers[0].modules[0]: must be a module name"},
      {"models: [{key: m, path: p}], name: \"a b\"}]}", "cluster.workers[0].name"},
      {"models: [{key: m, path: p}], lease_s: 0}]}", "cluster.workers[0].lease_s: must be an integer 1..3600"},
      {"models: [{key: m, path: p}]}, {name: w, models: [{key: m, path: p}]}]}",
       "cluster.workers[1].name: \"w\" appears twice"},
      {"models: [{key: m, path: p}], partition: \"\xff\"}]}", "cluster.workers[0].partition: is not valid UTF-8"},
  };
  for (const auto& [tail, want] : cases) {
    auto c = parse_cluster_config(head + tail, "/tmp");
    ASSERT_FALSE(c.ok()) << tail;
    EXPECT_EQ(c.status().code(), StatusCode::kInvalidArgument) << tail;
    EXPECT_NE(c.status().message().find(want), std::string::npos) << tail << "\n -> " << c.status().message();
    EXPECT_EQ(c.status().message().find("(top)"), std::string::npos) << c.status().message();
  }
  const std::vector<std::pair<std::string, std::string>> top = {
      {"cluster: {redis: \"redis://h:1\", blob_dir: b}", "cluster: \"workers\" is missing"},
      {"cluster: {redis: \"http://h:1\", blob_dir: b, workers: []}", "cluster.redis: "},
      {"cluster: {redis: \"redis://h:1\", blob_dir: b, workers: []}", "cluster.workers: must be a non-empty list"},
      {"cluster: {redis: \"redis://h:1\", blob_dir: b, servers: {listen: \"h:70000\"}, workers: [{name: w, "
       "models: [{key: m, path: p}]}]}",
       "cluster.servers.listen: port 70000 is past 65535"},
      {"cluster: {redis: \"redis://h:1\", blob_dir: b, servers: {count: 3, listen: \"h:65534\"}, workers: "
       "[{name: w, models: [{key: m, path: p}]}]}",
       "cluster.servers: 3 servers from port 65534 go past 65535"},
      {"clusters: {}", "(top): unknown field \"clusters\""},
      {"[1, 2]", "(top): must be a mapping"},
      {"cluster: {redis: [", "not valid YAML/JSON"},
      {"", "(top): must be a mapping"},
  };
  for (const auto& [text, want] : top) {
    auto c = parse_cluster_config(text, "/tmp");
    ASSERT_FALSE(c.ok()) << text;
    EXPECT_NE(c.status().message().find(want), std::string::npos) << text << "\n -> " << c.status().message();
  }
  EXPECT_FALSE(parse_cluster_config(std::string(2 << 20, ' '), "/tmp").ok());
}

TEST(ClusterConfig, TheSbatchScriptCarriesTheGroupsOptionsQuotedForTheShell) {
  auto c = parse_cluster_config(kGood, "/etc/loom");
  ASSERT_TRUE(c.ok()) << c.status().message();
  ClusterCommandOptions o;
  o.state_dir = "/var/loom/state";
  o.bin_dir = "/opt/loom/bin";
  const std::string s = render_sbatch(*c, c->workers[0], o);
  for (const char* line : {"#SBATCH --job-name=loom-demo-gpt2\n", "#SBATCH --nodes=3\n", "#SBATCH --ntasks-per-node=1\n",
                           "#SBATCH --cpus-per-task=8\n", "#SBATCH --gpus-per-node=2\n", "#SBATCH --mem=64G\n",
                           "#SBATCH --time=1-00:00:00\n", "#SBATCH --partition=gpu\n",
                           "#SBATCH --output=/var/loom/state/logs/gpt2-%j.out\n", "module load 'cuda/12.2'\n",
                           "export HF_HOME='/shared/hf'\n", "export QUOTE='it'\\''s'\n"}) {
    EXPECT_NE(s.find(line), std::string::npos) << line << "\nin:\n" << s;
  }
  // One worker per node, named after the job and its rank, with the group's budgets.
  EXPECT_NE(s.find("exec srun"), std::string::npos) << s;
  EXPECT_NE(s.find("--name \"gpt2-${SLURM_JOB_ID}-${SLURM_PROCID}\""), std::string::npos) << s;
  // (The command line is quoted twice: for srun's sh -c and inside it.)
  for (const char* word : {"/opt/loom/bin/loom-worker", "/var/loom/state/gpt2.models.json", "--device-memory",
                           "70G", "--host-memory", "200G", "--lease", "redis://10.0.0.5:6379", "/etc/loom/blobs"}) {
    EXPECT_NE(s.find(std::string("'\\''") + word), std::string::npos) << word << "\nin:\n" << s;
  }
  // The second group asks for no GPUs, memory or time: no such lines.
  const std::string small = render_sbatch(*c, c->workers[1], o);
  EXPECT_EQ(small.find("--gpus-per-node"), std::string::npos) << small;
  EXPECT_EQ(small.find("--mem="), std::string::npos) << small;
  EXPECT_EQ(small.find("--device-memory"), std::string::npos) << small;
}

}  // namespace
}  // namespace loom::server
