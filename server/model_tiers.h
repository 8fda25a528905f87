// Where each model a process serves sits (an embedded server or a
// loom-worker), within its memory budgets:
//   HOT      on its device, ready to run; counted against that device's
//            budget (--device-memory, per device);
//   WARM     in host memory, moved off its device; promoted with a copy;
//            counted against --host-memory;
//   COLD     on disk only; promoting reads the checkpoint again;
//   LOADING  on its way to HOT for a job.
// Every model is loaded once at start (its module tree, revision and size
// are learnt then) and placed in config order: HOT while the device budget
// allows, else WARM while the host budget allows, else COLD. A job for a
// model that is not HOT makes it HOT on its executor's thread (acquire),
// first demoting the least recently used HOT models of that device to WARM
// and then the least recently used WARM models to COLD until everything
// fits. A budget of 0 is unlimited (every model stays HOT).
// On a "cpu" device the device is the host: HOT and WARM hold the same
// memory, and the budgets only bound how many models stay loaded.
// Thread safety: acquire() of one device's models is called by that
// device's executor only (so a HOT model in use is never demoted under
// it); the rest may be called from any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "graph/status.h"
#include "server/models_config.h"

namespace loom::runtime {
class Model;
}  // namespace loom::runtime

namespace loom::server {

enum class Tier { kHot, kWarm, kCold, kLoading };
const char* tier_name(Tier tier);  // "HOT", "WARM", "COLD", "LOADING"

struct TierBudgets {
  uint64_t device_bytes = 0;  // per device; 0 = unlimited
  uint64_t host_bytes = 0;    // WARM models in all; 0 = unlimited
};

class ModelTiers {
 public:
  // Hears every change of a model's tier (after it happened), on the thread
  // that made it.
  using OnChange = std::function<void(const std::string& key, Tier tier)>;

  explicit ModelTiers(TierBudgets budgets, OnChange on_change = {});
  ~ModelTiers();

  // Takes a model just loaded on spec.device and places it (see above).
  Status add(const ModelSpec& spec, std::unique_ptr<runtime::Model> model);
  // The model, HOT: promoted or loaded first when it is not (`progress`
  // hears 0..1 then). RESOURCE_EXHAUSTED when it alone exceeds the device
  // budget; the loader's error when its checkpoint no longer loads.
  Result<runtime::Model*> acquire(const std::string& key, const std::function<void(double)>& progress);
  Tier tier(const std::string& key) const;
  // The bytes of its parameters and buffers (learnt at start).
  int64_t bytes(const std::string& key) const;

 private:
  struct Slot {
    ModelSpec spec;
    std::unique_ptr<runtime::Model> model;  // null when COLD
    Tier tier = Tier::kCold;
    int64_t bytes = 0;
    std::vector<std::string> module_paths;  // at start: a reload must find the same tree
    uint64_t last_used = 0;  // a tick of use_clock_; the least is demoted first
  };
  uint64_t device_used(const std::string& device) const;  // HOT and LOADING bytes there
  uint64_t host_used() const;                             // WARM bytes
  // One step down, for room: HOT -> WARM (or COLD when the host has no room), WARM -> COLD.
  void demote(const std::string& key, Slot& slot);
  // Frees room for `bytes` more on `device` (HOT models of that device) or
  // in host memory (WARM models), never touching `keep`.
  void make_room_on_device(const std::string& device, int64_t bytes, const std::string& keep);
  void make_room_on_host(int64_t bytes, const std::string& keep);
  void set_tier(const std::string& key, Slot& slot, Tier tier);

  const TierBudgets budgets_;
  const OnChange on_change_;
  // Serialises promotions and demotions (the slow path) across executors.
  std::mutex place_mu_;
  mutable std::mutex mu_;  // guards slots_' tiers and use_clock_ for readers
  std::map<std::string, Slot> slots_;
  uint64_t use_clock_ = 0;
};

}  // namespace loom::server
