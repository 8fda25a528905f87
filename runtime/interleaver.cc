#include "runtime/interleaver.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>
#include <torch/csrc/autograd/autograd.h>

#include <algorithm>
#include <functional>
#include <optional>

#include "runtime/stream_value.h"
#include "runtime/tensor_data.h"

namespace loom::runtime {
namespace {

// Thrown to unwind the model's forward pass; the reason is in status_ or stopped_.
struct Unwind : std::exception {
  const char* what() const noexcept override { return "loom: forward pass unwound by the interleaver"; }
};

std::string short_message(const std::exception& e) {
  std::string m;
  if (auto* c = dynamic_cast<const c10::Error*>(&e)) {
    m = c->what_without_backtrace();
  } else {
    m = e.what();
  }
  if (m.size() > 4000) m = m.substr(0, 4000) + "...";
  while (!m.empty() && (m.back() == '\n' || m.back() == ' ')) m.pop_back();
  return m;
}

bool runnable(graph::NodeKind k) {
  return k == graph::NodeKind::kOp || k == graph::NodeKind::kSave || k == graph::NodeKind::kStream ||
         k == graph::NodeKind::kLog || k == graph::NodeKind::kStop || k == graph::NodeKind::kBackward;
}

// Replies arrive on the CPU; the model's device is where they are used.
c10::IValue to_device(c10::IValue v, const at::Device& device) {
  if (v.isTensor()) return v.toTensor().to(device);
  if (v.isTuple()) {
    std::vector<c10::IValue> elems = v.toTupleRef().elements().vec();
    for (auto& e : elems) e = to_device(std::move(e), device);
    return c10::ivalue::Tuple::create(std::move(elems));
  }
  if (v.isList()) {
    c10::impl::GenericList list(c10::TensorType::get());
    for (const auto& e : v.toListRef()) list.push_back(to_device(e, device));
    return list;
  }
  return v;
}

}  // namespace

Interleaver::Interleaver(const Model& model, const graph::Graph& graph, const ExecOptions& options)
    : model_(model), graph_(graph), options_(options) {}

Result<std::unique_ptr<Interleaver>> Interleaver::create(const Model& model, const graph::Graph& graph,
                                                         std::vector<int64_t> batch_rows,
                                                         const ExecOptions& options) {
  std::unique_ptr<Interleaver> il(new Interleaver(model, graph, options));
  il->deadline_ = std::chrono::steady_clock::now() + options.limits.max_wall_time;
  // Rows are counted within each trace's forward pass (one pass unless a session).
  for (uint32_t t = 0; t < graph.traces(); ++t) {
    int64_t offset = 0;
    for (uint32_t i = graph.first_invoke(t); i < graph.first_invoke(t) + graph.invokes_of(t) && i < batch_rows.size(); ++i) {
      il->row_start_.push_back(offset);
      il->row_count_.push_back(batch_rows[i]);
      offset += batch_rows[i];
    }
    il->trace_rows_.push_back(offset);
  }
  il->total_rows_ = il->trace_rows_[0];
  const size_t n = graph.nodes.size();
  il->ops_.resize(n);
  il->values_.resize(n);
  il->done_.assign(n, 0);
  il->waiting_.assign(n, 0);
  il->dependents_.resize(n);
  il->deps_.resize(n);
  il->repeats_.assign(n, 0);
  il->ever_done_.assign(n, 0);
  il->node_bytes_.assign(n, 0);
  const size_t modules = model.module_paths().size();
  il->sites_.resize(modules);
  il->calls_.assign(modules, 0);
  il->interested_.assign(modules, 0);
  for (uint32_t i = 0; i < n; ++i) {
    const graph::Node& node = graph.nodes[i];
    std::vector<uint32_t> deps = node.dependencies();
    std::sort(deps.begin(), deps.end());
    deps.erase(std::unique(deps.begin(), deps.end()), deps.end());
    il->waiting_[i] = static_cast<uint32_t>(deps.size());
    for (uint32_t d : deps) {
      il->dependents_[d].push_back(i);
      if (il->repeats_[d]) il->repeats_[i] = 1;  // dependencies come first (validated)
    }
    if ((node.kind == graph::NodeKind::kRead || node.kind == graph::NodeKind::kSet) && node.point.repeats()) {
      il->repeats_[i] = 1;
    }
    if (il->repeats_[i]) il->repeating_.push_back(i);
    il->deps_[i] = std::move(deps);
    if (node.kind == graph::NodeKind::kOp) {
      auto op = ResolvedOp::resolve(node);
      if (!op.ok()) return op.status().with_context(describe_node(graph, i));
      il->ops_[i] = std::move(op).value();
    }
    if (node.kind == graph::NodeKind::kBackward) il->backward_ = i;
    if (node.kind == graph::NodeKind::kSkip && model.kind() == "torchscript") {
      return invalid_argument(describe_node(graph, i) +
                              ": a TorchScript model cannot skip modules (its graph calls them); native models can");
    }
    if (node.kind == graph::NodeKind::kRead || node.kind == graph::NodeKind::kSet ||
        node.kind == graph::NodeKind::kGrad || node.kind == graph::NodeKind::kSetGrad ||
        node.kind == graph::NodeKind::kSkip) {
      const graph::Point& p = node.point;
      int id = model.module_id(p.module);
      if (id < 0) return invalid_argument(describe_node(graph, i) + ": the model has no module \"" + p.module + "\"");
      il->interested_[id] = 1;
      auto& sites = il->sites_[id];
      auto it = std::find_if(sites.begin(), sites.end(), [&](const Site& s) {
        return s.io == p.io && s.index == p.index && s.call == p.call && s.call_end == p.call_end &&
               s.invoke == p.invoke && s.trace == p.trace && s.stage == p.stage;
      });
      if (it == sites.end()) {
        it = sites.insert(sites.end(), Site{p.io, p.index, p.call, p.call_end, p.invoke, p.trace, p.stage, {}, {}, {}, {}, {}});
        // Lower stages (edits) first: fire() goes through them in this order.
        std::stable_sort(sites.begin(), sites.end(), [](const Site& a, const Site& b) { return a.stage < b.stage; });
        it = std::find_if(sites.begin(), sites.end(), [&](const Site& s) {
          return s.io == p.io && s.index == p.index && s.call == p.call && s.call_end == p.call_end &&
                 s.invoke == p.invoke && s.trace == p.trace && s.stage == p.stage;
        });
      }
      switch (node.kind) {
        case graph::NodeKind::kRead: it->reads.push_back(i); break;
        case graph::NodeKind::kSet: it->sets.push_back(i); break;
        case graph::NodeKind::kGrad: it->grads.push_back(i); break;
        case graph::NodeKind::kSetGrad: it->grad_sets.push_back(i); break;
        default: it->skips.push_back(i); break;
      }
    }
  }
  // A repeating save "x" names its tensors x@K: no other save may take such a name.
  for (uint32_t i : il->repeating_) {
    const graph::Node& a = graph.nodes[i];
    if (a.kind != graph::NodeKind::kSave) continue;
    for (uint32_t j = 0; j < n; ++j) {
      const graph::Node& b = graph.nodes[j];
      if (j != i && b.kind == graph::NodeKind::kSave && b.name.size() > a.name.size() &&
          b.name.compare(0, a.name.size() + 1, a.name + "@") == 0) {
        return invalid_argument(describe_node(graph, j) + ": the save name \"" + b.name + "\" is taken by " +
                                describe_node(graph, i) + ", which saves one tensor per step as \"" + a.name + "@K\"");
      }
    }
  }
  return il;
}

Status Interleaver::start() {
  try {
    at::Device device(options_.scan ? "meta" : model_.device());
    for (uint32_t i = 0; i < graph_.nodes.size(); ++i) {
      const graph::Node& node = graph_.nodes[i];
      if (node.kind != graph::NodeKind::kConstant) continue;
      Result<at::Tensor> t = invalid_argument("unresolved");
      if (node.content_sha256.empty()) {
        t = to_tensor(node.tensor);
      } else if (options_.resolve_content) {
        t = options_.resolve_content(node.content_sha256);
      } else {
        t = not_found("content " + node.content_sha256 + " was never uploaded");
      }
      if (!t.ok()) return t.status().with_context(describe_node(graph_, i));
      values_[i] = t->to(device);
      complete(i);
    }
    // Nodes with no inputs at all (complete() queued those fed by constants).
    for (uint32_t i = 0; i < graph_.nodes.size(); ++i) {
      if (!done_[i] && graph_.nodes[i].dependencies().empty() && runnable(graph_.nodes[i].kind)) {
        ready_.push_back(i);
        std::push_heap(ready_.begin(), ready_.end(), std::greater<>());
      }
    }
    run_ready();
  } catch (const Unwind&) {
    return status_;
  }
  return Status();
}

void Interleaver::check_deadline() {
  if (options_.cancel != nullptr && options_.cancel->load(std::memory_order_relaxed)) {
    fail(cancelled("the run was cancelled"));
  }
  if (std::chrono::steady_clock::now() > deadline_) {
    fail(deadline_exceeded("the run passed its wall-time limit of " +
                           std::to_string(options_.limits.max_wall_time.count()) + " ms"));
  }
}

void Interleaver::begin_trace(uint32_t trace) {
  trace_ = trace;
  total_rows_ = trace_rows_[trace];
  std::fill(calls_.begin(), calls_.end(), 0);
  stop_requested_ = stopped_ = false;
}

void Interleaver::begin_step(uint32_t step) {
  label_call_ = step;
  if (step > 0 && !repeating_.empty()) reset(repeating_);
}

void Interleaver::reset(const std::vector<uint32_t>& nodes) {
  for (uint32_t i : nodes) {
    done_[i] = 0;
    values_[i] = c10::IValue();
    intermediate_bytes_ -= node_bytes_[i];
    node_bytes_[i] = 0;
  }
  for (uint32_t i : nodes) {
    uint32_t w = 0;
    for (uint32_t d : deps_[i]) w += done_[d] ? 0 : 1;
    waiting_[i] = w;
  }
}

void Interleaver::collect_repeating_from(uint32_t node, std::vector<uint32_t>* out) {
  std::vector<uint8_t> seen(graph_.nodes.size(), 0);
  std::vector<uint32_t> todo = {node};
  seen[node] = 1;
  while (!todo.empty()) {
    uint32_t n = todo.back();
    todo.pop_back();
    out->push_back(n);
    for (uint32_t d : dependents_[n]) {
      if (!seen[d] && graph_.nodes[d].kind != graph::NodeKind::kSet) {
        seen[d] = 1;
        todo.push_back(d);
      }
    }
  }
  std::sort(out->begin(), out->end());
}

void Interleaver::on_input(int module_id, int arg, c10::IValue& value) {
  check_deadline();
  if (!interested_[module_id]) return;
  const uint32_t call = calls_[module_id];
  matched_.clear();
  for (Site& s : sites_[module_id]) {
    if (s.trace == trace_ && s.io == graph::Io::kInput && s.index == arg && s.covers(call)) {
      matched_.push_back(&s);
    }
  }
  fire(value, call);
}

void Interleaver::on_output(int module_id, c10::IValue& value) {
  check_deadline();
  if (grad_started_ && !backward_done_) count_autograd_bytes(value);
  if (!interested_[module_id]) return;
  if (module_id == scan_skip_module_) check_scan_skip(value);
  const uint32_t call = calls_[module_id]++;
  matched_.clear();
  for (Site& s : sites_[module_id]) {
    if (s.trace == trace_ && s.io == graph::Io::kOutput && s.covers(call)) {
      matched_.push_back(&s);
    }
  }
  fire(value, call);
}

// A scan runs the skipped module on meta tensors, so that on_output can
// check the skip value against the shape its output has.
void Interleaver::check_scan_skip(c10::IValue& value) {
  scan_skip_module_ = -1;
  const uint32_t node = scan_skip_node_;
  const c10::IValue& v = values_[graph_.nodes[node].input];
  const bool tuple = value.isTuple() && !value.toTupleRef().elements().empty();
  const c10::IValue& out = tuple ? value.toTupleRef().elements()[0] : value;
  if (!v.isTensor() || !out.isTensor() || v.toTensor().sizes() != out.toTensor().sizes() ||
      v.toTensor().scalar_type() != out.toTensor().scalar_type()) {
    auto describe = [](const c10::IValue& x) {
      return x.isTensor() ? c10::str(x.toTensor().sizes()) + " " + c10::toString(x.toTensor().scalar_type())
                          : std::string("a ") + x.tagKind();
    };
    fail(invalid_argument(describe_node(graph_, node) + ": the skip value is " + describe(v) +
                          ", but the module's output" + (tuple ? " (element 0)" : "") + " is " + describe(out)));
  }
  if (tuple) {
    std::vector<c10::IValue> elems = value.toTupleRef().elements().vec();
    elems[0] = v;
    value = c10::ivalue::Tuple::create(std::move(elems));
  } else {
    value = v;
  }
}

bool Interleaver::skip(int module_id, c10::IValue& output) {
  if (!interested_[module_id]) return false;
  const uint32_t call = calls_[module_id];
  for (Site& s : sites_[module_id]) {
    if (s.skips.empty() || s.trace != trace_ || !s.covers(call)) continue;
    const uint32_t node = s.skips.back();
    const uint32_t input = graph_.nodes[node].input;
    if (!done_[input]) {
      int64_t r = blocking_read(input);
      fail(invalid_argument(describe_node(graph_, node) + ": needs " +
                            (r < 0 ? describe_node(graph_, input) + ", which has not run"
                                   : describe_node(graph_, static_cast<uint32_t>(r)) + ", whose module runs later") +
                            " (a skip's value must be ready when its module would run)"));
    }
    for (uint32_t k : s.skips) done_[k] = ever_done_[k] = 1;
    if (options_.scan) {
      scan_skip_module_ = module_id;
      scan_skip_node_ = node;
      return false;
    }
    output = values_[input];
    return true;
  }
  return false;
}

// All reads of the matched sites come first, then what they make ready,
// then the sets: a set at one invoke may use a read of another at the same
// module, and every read sees the value the model produced.
void Interleaver::fire(c10::IValue& value, uint32_t call) {
  if (matched_.empty()) return;
  if (backward_ >= 0 && !backward_done_) {
    // Before the reads, so that a loss computed from them reaches the leaf.
    for (Site* site : matched_) {
      if (!site->grads.empty() || !site->grad_sets.empty()) track_grad(*site, value, false);
    }
  }
  // Stage by stage (edits below the trace): a stage's reads see the sets of
  // the stages before it (matched_ is in stage order).
  for (size_t first = 0, last = 0; first < matched_.size(); first = last) {
    while (last < matched_.size() && matched_[last]->stage == matched_[first]->stage) ++last;
    for (size_t i = first; i < last; ++i) {
      Site* site = matched_[i];
      if (site->reads.empty()) continue;
      if (site->call_end != 0) {
        label_call_ = call;
        // Fired again within one step (a module called in a loop): what
        // depends on this point starts over from the new value.
        std::vector<uint32_t> again;
        for (uint32_t r : site->reads) {
          if (done_[r]) collect_repeating_from(r, &again);
        }
        if (!again.empty()) {
          std::sort(again.begin(), again.end());
          again.erase(std::unique(again.begin(), again.end()), again.end());
          reset(again);
        }
      }
      c10::IValue part = site_value(*site, value);
      const bool rows = site->invoke >= 0 && graph_.invokes > 1;
      for (uint32_t r : site->reads) {
        if (rows) {
          if (!part.isTensor() || part.toTensor().dim() == 0 || part.toTensor().size(0) != total_rows_) {
            fail(invalid_argument(describe_node(graph_, r) + ": cannot take invoke " + std::to_string(site->invoke) +
                                  "'s rows: the value is not a tensor whose dim 0 is the batch (" +
                                  std::to_string(total_rows_) + " rows)"));
          }
          values_[r] = part.toTensor().narrow(0, row_start_[site->invoke], row_count_[site->invoke]);
        } else {
          values_[r] = part;
        }
        complete(r);
      }
    }
    run_ready();
    for (size_t i = first; i < last; ++i) {
      Site* site = matched_[i];
      if (site->sets.empty()) continue;
      c10::IValue part = site_value(*site, value);
      for (uint32_t s : site->sets) apply_set(*site, s, part);
      if (site->io == graph::Io::kOutput && site->index >= 0) {
        std::vector<c10::IValue> elems = value.toTupleRef().elements().vec();
        elems[site->index] = std::move(part);
        value = c10::ivalue::Tuple::create(std::move(elems));
      } else {
        value = std::move(part);
      }
    }
  }
  if (backward_ >= 0 && !backward_done_) {
    // On the value the model goes on with (after any set here).
    for (Site* site : matched_) {
      if (!site->grads.empty() || !site->grad_sets.empty()) track_grad(*site, value, true);
    }
  }
  if (stop_requested_) {
    stopped_ = true;
    throw Unwind();
  }
}

uint32_t Interleaver::Site::first_node() const {
  for (const auto* v : {&reads, &sets, &grads, &grad_sets, &skips}) {
    if (!v->empty()) return v->front();
  }
  return 0;
}

c10::IValue Interleaver::site_value(const Site& site, const c10::IValue& value) {
  if (site.io != graph::Io::kOutput || site.index < 0) return value;
  const uint32_t first = site.first_node();
  if (!value.isTuple()) {
    fail(invalid_argument(describe_node(graph_, first) + ": the output of \"" + module_name(first) + "\" is a " +
                          value.tagKind() + ", not a tuple: drop the element index"));
  }
  const auto& elems = value.toTupleRef().elements();
  if (static_cast<size_t>(site.index) >= elems.size()) {
    fail(invalid_argument(describe_node(graph_, first) + ": the output of \"" + module_name(first) + "\" has " +
                          std::to_string(elems.size()) + " elements, no element " + std::to_string(site.index)));
  }
  return elems[site.index];
}

void Interleaver::apply_set(const Site& site, uint32_t node, c10::IValue& target) {
  const graph::Node& set = graph_.nodes[node];
  std::optional<at::ScalarType> original_dtype;
  if (target.isTensor()) original_dtype = target.toTensor().scalar_type();
  if (!done_[set.input]) {
    int64_t r = blocking_read(set.input);
    std::string why = r < 0 ? describe_node(graph_, set.input) + " has not run"
                            : describe_node(graph_, static_cast<uint32_t>(r)) + ", which is not available yet: module \"" +
                                  graph_.nodes[r].point.module + "\" runs after \"" + set.point.module + "\"";
    fail(invalid_argument(describe_node(graph_, node) + ": needs " + why + " (a value can only be used after the module that produces it)"));
  }
  const c10::IValue& v = values_[set.input];
  if (site.invoke >= 0 && graph_.invokes > 1) {
    if (!target.isTensor() || !v.isTensor() || target.toTensor().dim() == 0 ||
        target.toTensor().size(0) != total_rows_) {
      fail(invalid_argument(describe_node(graph_, node) + ": can only set invoke rows of a tensor whose dim 0 is the batch"));
    }
    try {
      at::Tensor t = target.toTensor().clone();
      t.narrow(0, row_start_[site.invoke], row_count_[site.invoke]).copy_(v.toTensor());
      target = t;
    } catch (const std::exception& e) {
      fail(invalid_argument(describe_node(graph_, node) + ": " + short_message(e)));
    }
  } else {
    // An output keeps its shape (what follows was built for it); inputs may
    // change (a prompt of another length).
    if (site.io == graph::Io::kOutput && target.isTensor() && v.isTensor() &&
        target.toTensor().sizes() != v.toTensor().sizes()) {
      fail(invalid_argument(describe_node(graph_, node) + ": the new value has shape " + c10::str(v.toTensor().sizes()) +
                            ", but the output it replaces has shape " + c10::str(target.toTensor().sizes())));
    }
    target = v;
    if (target.isTensor() && original_dtype && at::isFloatingType(*original_dtype) &&
        at::isFloatingType(target.toTensor().scalar_type()) && target.toTensor().scalar_type() != *original_dtype) {
      target = target.toTensor().to(*original_dtype);
    }
  }
  done_[node] = 1;
  ever_done_[node] = 1;
}

void Interleaver::complete(uint32_t node) {
  done_[node] = 1;
  ever_done_[node] = 1;
  for (uint32_t d : dependents_[node]) {
    if (--waiting_[d] == 0 && runnable(graph_.nodes[d].kind)) {
      ready_.push_back(d);
      std::push_heap(ready_.begin(), ready_.end(), std::greater<>());
    }
  }
}

void Interleaver::run_ready() {
  while (!ready_.empty()) {
    std::pop_heap(ready_.begin(), ready_.end(), std::greater<>());
    uint32_t n = ready_.back();
    ready_.pop_back();
    if (!done_[n]) run_node(n);
  }
}

void Interleaver::run_node(uint32_t n) {
  const graph::Node& node = graph_.nodes[n];
  const Limits& limits = options_.limits;
  switch (node.kind) {
    case graph::NodeKind::kOp: {
      std::vector<uint32_t> deps = node.dependencies();
      std::vector<const c10::IValue*> args;
      args.reserve(deps.size());
      for (uint32_t d : deps) args.push_back(&values_[d]);
      try {
        values_[n] = ops_[n].call(node, args);
      } catch (const std::exception& e) {
        fail(invalid_argument(describe_node(graph_, n) + ": " + short_message(e)));
      }
      if (values_[n].isTensor()) {
        node_bytes_[n] = values_[n].toTensor().nbytes();
        intermediate_bytes_ += node_bytes_[n];
      }
      if (intermediate_bytes_ > limits.max_intermediate_bytes) {
        fail(resource_exhausted(describe_node(graph_, n) + ": op results total " + std::to_string(intermediate_bytes_) +
                                " bytes, over the run's limit of " + std::to_string(limits.max_intermediate_bytes)));
      }
      break;
    }
    case graph::NodeKind::kSave: {
      const c10::IValue& v = values_[node.input];
      const std::string step = repeats_[n] ? "@" + std::to_string(label_call_) : "";
      if (v.isTuple() && node.elements) {
        const auto& elems = v.toTupleRef().elements();
        for (size_t k = 0; k < elems.size(); ++k) {
          if (elems[k].isTensor()) save_tensor(n, node.name + "." + std::to_string(k) + step, elems[k].toTensor());
        }
      } else if (v.isTensor()) {
        save_tensor(n, node.name + step, v.toTensor());
      } else if (!node.elements || !v.isNone()) {
        fail(invalid_argument(describe_node(graph_, n) + ": can only save a tensor, got a " + v.tagKind() +
                              " (take a tuple's element with output(K))"));
      }
      values_[n] = v;
      break;
    }
    case graph::NodeKind::kStream: {
      if (options_.scan) {
        if (node.any_shape) {
          fail(failed_precondition(describe_node(graph_, n) + ": a scan cannot know the shape of a reply that may "
                                   "differ from the value sent (any_shape)"));
        }
        values_[n] = values_[node.input];  // the reply has the value's shape and dtype
        break;
      }
      if (!options_.on_stream) {
        fail(failed_precondition(describe_node(graph_, n) + ": no handler is registered for stream callback \"" +
                                 node.name + "\""));
      }
      const c10::IValue& sent = values_[node.input];
      Result<TensorSet> payload = stream_payload(sent);
      if (!payload.ok()) fail(payload.status().with_context(describe_node(graph_, n)));
      Result<TensorSet> reply = options_.on_stream(node.name, *payload);
      if (!reply.ok()) fail(reply.status().with_context(describe_node(graph_, n)));
      Result<c10::IValue> value = stream_reply_value(node.name, std::move(reply).value(), sent, node.any_shape);
      if (!value.ok()) fail(value.status().with_context(describe_node(graph_, n)));
      values_[n] = to_device(std::move(value).value(), at::Device(model_.device()));
      break;
    }
    case graph::NodeKind::kLog:
      if (options_.on_log && !options_.scan) options_.on_log(node.name, values_[node.input]);
      break;
    case graph::NodeKind::kStop:
      stop_requested_ = true;
      break;
    case graph::NodeKind::kBackward:
      run_backward(n);
      break;
    default:
      break;
  }
  complete(n);
}

void Interleaver::save_tensor(uint32_t n, std::string name, const at::Tensor& t) {
  output_.saved_bytes += t.nbytes();
  if (output_.saved_bytes > options_.limits.max_saved_bytes) {
    fail(resource_exhausted(describe_node(graph_, n) + ": saved values total " + std::to_string(output_.saved_bytes) +
                            " bytes, over the run's limit of " + std::to_string(options_.limits.max_saved_bytes)));
  }
  if (!saved_names_.insert(name).second && graph_.nodes[n].elements) {
    fail(invalid_argument(describe_node(graph_, n) + ": the save name \"" + name + "\" is used twice"));
  }
  // A copy: the model may reuse the memory, and a saved slice must not pin its base.
  output_.saved.push_back({std::move(name), t.is_meta() ? t : t.device().is_cpu() ? t.clone() : t.to(at::kCPU)});
}

int64_t Interleaver::blocking_read(uint32_t node) const {
  if (done_[node]) return -1;
  if (graph_.nodes[node].kind == graph::NodeKind::kRead || graph_.nodes[node].kind == graph::NodeKind::kGrad) {
    return node;
  }
  for (uint32_t d : graph_.nodes[node].dependencies()) {
    int64_t r = blocking_read(d);
    if (r >= 0) return r;
  }
  return -1;
}

std::string Interleaver::module_name(int node) const {
  const std::string& m = graph_.nodes[node].point.module;
  return m.empty() ? "<root>" : m;
}

void Interleaver::fail(Status status) {
  if (status_.ok()) status_ = std::move(status);
  throw Unwind();
}

Status Interleaver::finish(std::exception_ptr forward_error) {
  if (!status_.ok()) return status_;
  if (forward_error && !stopped_) {
    try {
      std::rethrow_exception(forward_error);
    } catch (const std::exception& e) {
      return invalid_argument("the model's forward pass failed: " + short_message(e));
    } catch (...) {
      return internal_error("the model's forward pass failed with a non-standard exception");
    }
  }
  for (uint32_t i = 0; i < graph_.nodes.size(); ++i) {
    const graph::Node& node = graph_.nodes[i];
    if (done_[i] || ever_done_[i]) continue;
    if (node.kind == graph::NodeKind::kSkip) {
      return invalid_argument(describe_node(graph_, i) + ": never applied: the module was not called" +
                              (stopped_ ? " before the run was stopped by a stop node" : ""));
    }
    if (node.kind == graph::NodeKind::kBackward && !stopped_) {
      return invalid_argument(describe_node(graph_, i) + ": never ran: " +
                              describe_node(graph_, node.input) + " never had a value");
    }
    const bool grad_blocked = node.kind == graph::NodeKind::kSetGrad ||
                              (node.kind == graph::NodeKind::kSave && blocking_read(i) >= 0 &&
                               graph_.nodes[blocking_read(i)].kind == graph::NodeKind::kGrad);
    if (grad_blocked && !stopped_) {
      const uint32_t g = node.kind == graph::NodeKind::kSetGrad ? i : static_cast<uint32_t>(blocking_read(i));
      return invalid_argument(describe_node(graph_, i) + ": no gradient flowed through " + describe_node(graph_, g) +
                              (backward_done_ ? ": the loss does not depend on that point's value"
                                              : ": the backward pass did not run"));
    }
    if (node.kind != graph::NodeKind::kSet && node.kind != graph::NodeKind::kSave) continue;
    if (node.elements) continue;  // a cache: modules that never ran (containers) have no entry
    if (steps_run_ != graph::kEveryCall) {
      const int64_t r = node.kind == graph::NodeKind::kSet ? i : blocking_read(i);
      if (r >= 0 && graph_.nodes[r].point.call >= steps_run_) continue;  // its step never came
    }
    const std::string why_stop = stopped_ ? " before the run was stopped by a stop node" : "";
    int64_t r = node.kind == graph::NodeKind::kSet ? i : blocking_read(i);
    if (r < 0) return internal_error(describe_node(graph_, i) + ": did not run");
    const graph::Point& p = graph_.nodes[r].point;
    int id = model_.module_id(p.module);
    std::string ran = " (module \"" + p.module + "\" ran " + std::to_string(calls_[id]) + " time(s)" + why_stop + ")";
    if (node.kind == graph::NodeKind::kSet) {
      return invalid_argument(describe_node(graph_, i) + ": never applied: its hook point was not reached" + ran);
    }
    return invalid_argument(describe_node(graph_, i) + ": has no value: it needs " +
                            describe_node(graph_, static_cast<uint32_t>(r)) + ", whose hook point was not reached" + ran);
  }
  return Status();
}

RunOutput Interleaver::take_output() { return std::move(output_); }

// ---- Gradients ----------------------------------------------------------------

void Interleaver::track_grad(Site& site, c10::IValue& value, bool hook) {
  c10::IValue part = site_value(site, value);
  const uint32_t first = site.first_node();
  if (!part.isTensor() || !at::isFloatingType(part.toTensor().scalar_type())) {
    fail(invalid_argument(describe_node(graph_, first) + ": a gradient needs a floating-point tensor there, but the value is " +
                          (part.isTensor() ? std::string("of dtype ") + c10::toString(part.toTensor().scalar_type())
                                           : std::string("a ") + part.tagKind())));
  }
  at::Tensor t = part.toTensor();
  grad_started_ = true;
  if (options_.scan) {
    if (hook) scan_grads_.emplace_back(&site, t);
    return;
  }
  if (!t.requires_grad()) {
    // Nothing before this point is differentiated: it starts the autograd graph.
    t = t.detach().requires_grad_(true);
    grad_leaves_.push_back(t);
    if (site.io == graph::Io::kOutput && site.index >= 0) {
      std::vector<c10::IValue> elems = value.toTupleRef().elements().vec();
      elems[site.index] = t;
      value = c10::ivalue::Tuple::create(std::move(elems));
    } else {
      value = t;
    }
  }
  if (hook) {
    Site* s = &site;
    t.register_hook([this, s](const at::Tensor& grad) { return on_grad(*s, grad); });
  }
}

at::Tensor Interleaver::on_grad(Site& site, const at::Tensor& grad) {
  check_deadline();
  const bool rows = site.invoke >= 0 && graph_.invokes > 1;
  at::Tensor part = rows ? grad.narrow(0, row_start_[site.invoke], row_count_[site.invoke]) : grad;
  for (uint32_t r : site.grads) {
    values_[r] = part;
    complete(r);
  }
  run_ready();
  if (site.grad_sets.empty()) return at::Tensor();
  at::Tensor out = rows ? grad.clone() : grad;
  for (uint32_t s : site.grad_sets) {
    const uint32_t input = graph_.nodes[s].input;
    if (!done_[input]) {
      int64_t r = blocking_read(input);
      fail(invalid_argument(describe_node(graph_, s) + ": needs " +
                            (r < 0 ? describe_node(graph_, input) : describe_node(graph_, static_cast<uint32_t>(r))) +
                            ", which is not available yet (gradients flow from later modules to earlier ones)"));
    }
    const c10::IValue& v = values_[input];
    if (!v.isTensor() || v.toTensor().sizes() != part.sizes()) {
      fail(invalid_argument(describe_node(graph_, s) + ": the new gradient must have the gradient's shape " +
                            c10::str(part.sizes()) + ", got " +
                            (v.isTensor() ? c10::str(v.toTensor().sizes()) : std::string("a ") + v.tagKind())));
    }
    at::Tensor g = v.toTensor().to(grad.device(), grad.scalar_type());
    if (rows) {
      out.narrow(0, row_start_[site.invoke], row_count_[site.invoke]).copy_(g);
    } else {
      out = g;
    }
    done_[s] = ever_done_[s] = 1;
  }
  return out;
}

void Interleaver::run_backward(uint32_t n) {
  const graph::Node& node = graph_.nodes[n];
  const c10::IValue& v = values_[node.input];
  if (!v.isTensor() || v.toTensor().numel() != 1 || !at::isFloatingType(v.toTensor().scalar_type())) {
    fail(invalid_argument(describe_node(graph_, n) + ": the loss must be a floating-point scalar, got " +
                          (v.isTensor() ? c10::str(v.toTensor().sizes()) + " " + c10::toString(v.toTensor().scalar_type())
                                        : std::string("a ") + v.tagKind())));
  }
  const at::Tensor loss = v.toTensor();
  if (options_.scan) {
    // Later points get their gradient first, as in autograd.
    backward_done_ = true;
    for (auto it = scan_grads_.rbegin(); it != scan_grads_.rend(); ++it) on_grad(*it->first, at::empty_like(it->second));
    return;
  }
  if (!loss.requires_grad()) {
    fail(invalid_argument(describe_node(graph_, n) + ": the loss does not depend on any point whose gradient the "
                          "trace reads or sets (its value was computed before them, or from none of them)"));
  }
  backward_done_ = true;  // module outputs from here on are not kept for it
  try {
    // backward(), not grad(): LibTorch 1.13 runs a leaf's tensor hooks only
    // when its AccumulateGrad does. `inputs` keeps the pass to the leaves.
    torch::autograd::backward({loss}, {}, /*retain_graph=*/false, /*create_graph=*/false, grad_leaves_);
  } catch (const Unwind&) {
    throw;
  } catch (const std::exception& e) {
    if (!status_.ok()) throw Unwind();  // a hook failed; status_ says why
    fail(invalid_argument(describe_node(graph_, n) + ": the backward pass failed: " + short_message(e)));
  }
  if (!status_.ok()) throw Unwind();
  grad_leaves_.clear();
}

void Interleaver::count_autograd_bytes(const c10::IValue& value) {
  auto add = [&](const c10::IValue& v) {
    if (v.isTensor() && (v.toTensor().requires_grad() || options_.scan)) autograd_bytes_ += v.toTensor().nbytes();
  };
  if (value.isTuple()) {
    for (const auto& e : value.toTupleRef().elements()) add(e);
  } else {
    add(value);
  }
  if (autograd_bytes_ > options_.limits.max_autograd_bytes) {
    fail(resource_exhausted("the backward pass would keep about " + std::to_string(autograd_bytes_) +
                            " bytes of module outputs alive, over the run's limit of " +
                            std::to_string(options_.limits.max_autograd_bytes) +
                            " (move the first gradient point later or the loss earlier)"));
  }
}

}  // namespace loom::runtime
