#include "server/model_tiers.h"

#include <filesystem>

#include "runtime/model.h"

namespace loom::server {

const char* tier_name(Tier tier) {
  switch (tier) {
    case Tier::kHot: return "HOT";
    case Tier::kWarm: return "WARM";
    case Tier::kCold: return "COLD";
    case Tier::kLoading: return "LOADING";
  }
  return "COLD";
}

namespace {

bool fits(uint64_t used, int64_t more, uint64_t budget) {
  return budget == 0 || used + static_cast<uint64_t>(more) <= budget;
}

std::string mib(int64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f MiB", static_cast<double>(bytes) / (1 << 20));
  return buf;
}

}  // namespace

ModelTiers::ModelTiers(TierBudgets budgets, OnChange on_change)
    : budgets_(budgets), on_change_(std::move(on_change)) {}

ModelTiers::~ModelTiers() = default;

void ModelTiers::set_tier(const std::string& key, Slot& slot, Tier tier) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    slot.tier = tier;
  }
  if (on_change_) on_change_(key, tier);
}

uint64_t ModelTiers::device_used(const std::string& device) const {
  uint64_t used = 0;
  for (const auto& [k, s] : slots_) {
    if ((s.tier == Tier::kHot || s.tier == Tier::kLoading) && s.spec.device == device) used += s.bytes;
  }
  return used;
}

uint64_t ModelTiers::host_used() const {
  uint64_t used = 0;
  for (const auto& [k, s] : slots_) {
    if (s.tier == Tier::kWarm) used += s.bytes;
  }
  return used;
}

Status ModelTiers::add(const ModelSpec& spec, std::unique_ptr<runtime::Model> model) {
  std::lock_guard<std::mutex> place(place_mu_);
  if (slots_.count(spec.key)) return invalid_argument("model \"" + spec.key + "\" is listed twice");
  Slot& slot = slots_[spec.key];
  slot.spec = spec;
  slot.bytes = model->parameter_bytes();
  slot.module_paths = model->module_paths();
  slot.model = std::move(model);
  {
    std::lock_guard<std::mutex> lock(mu_);
    slot.last_used = ++use_clock_;
  }
  if (fits(device_used(spec.device), slot.bytes, budgets_.device_bytes)) {
    set_tier(spec.key, slot, Tier::kHot);
  } else if (fits(host_used(), slot.bytes, budgets_.host_bytes)) {
    LOOM_RETURN_IF_ERROR(slot.model->to_device("cpu"));
    set_tier(spec.key, slot, Tier::kWarm);
  } else {
    slot.model.reset();
    set_tier(spec.key, slot, Tier::kCold);
  }
  return Status();
}

void ModelTiers::demote(const std::string& key, Slot& slot) {
  if (slot.tier == Tier::kHot && slot.bytes > 0 &&
      (budgets_.host_bytes == 0 || static_cast<uint64_t>(slot.bytes) <= budgets_.host_bytes)) {
    if (slot.model->to_device("cpu").ok()) {
      set_tier(key, slot, Tier::kWarm);
      return;
    }
  }
  slot.model.reset();
  set_tier(key, slot, Tier::kCold);
}

void ModelTiers::make_room_on_device(const std::string& device, int64_t bytes, const std::string& keep) {
  while (!fits(device_used(device), bytes, budgets_.device_bytes)) {
    Slot* victim = nullptr;
    std::string victim_key;
    for (auto& [k, s] : slots_) {
      if (k == keep || s.tier != Tier::kHot || s.spec.device != device) continue;
      if (victim == nullptr || s.last_used < victim->last_used) victim = &s, victim_key = k;
    }
    if (victim == nullptr) return;
    demote(victim_key, *victim);
  }
}

void ModelTiers::make_room_on_host(int64_t bytes, const std::string& keep) {
  while (!fits(host_used(), bytes, budgets_.host_bytes)) {
    Slot* victim = nullptr;
    std::string victim_key;
    for (auto& [k, s] : slots_) {
      if (k == keep || s.tier != Tier::kWarm) continue;
      if (victim == nullptr || s.last_used < victim->last_used) victim = &s, victim_key = k;
    }
    if (victim == nullptr) return;
    demote(victim_key, *victim);
  }
}

Result<runtime::Model*> ModelTiers::acquire(const std::string& key, const std::function<void(double)>& progress) {
  auto it = slots_.find(key);
  if (it == slots_.end()) return not_found("model \"" + key + "\" is not served here");
  Slot& slot = it->second;
  {
    // The fast path: only this device's executor demotes a HOT model of it.
    std::lock_guard<std::mutex> lock(mu_);
    slot.last_used = ++use_clock_;
    if (slot.tier == Tier::kHot) return slot.model.get();
  }
  std::lock_guard<std::mutex> place(place_mu_);
  if (!fits(0, slot.bytes, budgets_.device_bytes)) {
    return resource_exhausted("model \"" + key + "\" needs " + mib(slot.bytes) + " on " + slot.spec.device +
                              ", more than the device budget of " + mib(static_cast<int64_t>(budgets_.device_bytes)) +
                              " (--device-memory)");
  }
  const Tier was = slot.tier;
  // A checkpoint gone from disk fails here, before other models are demoted for it.
  std::error_code ec;
  if (was != Tier::kWarm && !std::filesystem::exists(slot.spec.path, ec)) {
    return not_found("loading model \"" + key + "\" from " + slot.spec.path + ": no such file or directory");
  }
  if (progress) progress(0.0);
  // LOADING counts against the device from now on, so the room made stays made.
  set_tier(key, slot, Tier::kLoading);
  make_room_on_device(slot.spec.device, 0, key);
  // Demoted models may have pushed the host over its budget.
  make_room_on_host(0, key);
  Status s;
  if (was == Tier::kWarm && slot.model) {
    s = slot.model->to_device(slot.spec.device);
  } else {
    runtime::ModelOptions mo;
    mo.device = slot.spec.device;
    mo.progress = progress;
    auto m = runtime::load_model(slot.spec.path, mo);
    if (m.ok() && (*m)->module_paths() != slot.module_paths) {
      s = failed_precondition("model \"" + key + "\": the checkpoint at " + slot.spec.path +
                              " changed since the server started (its module tree differs); restart to serve it");
    } else if (m.ok()) {
      slot.model = std::move(m).value();
    } else {
      s = m.status().with_context("loading model \"" + key + "\" from " + slot.spec.path);
    }
  }
  if (!s.ok()) {
    slot.model.reset();
    set_tier(key, slot, Tier::kCold);
    return s;
  }
  if (progress) progress(1.0);
  set_tier(key, slot, Tier::kHot);
  return slot.model.get();
}

Tier ModelTiers::tier(const std::string& key) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = slots_.find(key);
  return it == slots_.end() ? Tier::kCold : it->second.tier;
}

int64_t ModelTiers::bytes(const std::string& key) const {
  auto it = slots_.find(key);
  return it == slots_.end() ? 0 : it->second.bytes;
}

}  // namespace loom::server
