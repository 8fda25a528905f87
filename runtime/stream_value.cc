#include "runtime/stream_value.h"

#include <ATen/ATen.h>

#include <cstdio>
#include <set>

namespace loom::runtime {
namespace {

std::string describe(const at::Tensor& t) {
  return std::string(c10::toString(t.scalar_type())) + c10::str(t.sizes());
}

Status check_same(const std::string& callback, const std::string& name, const at::Tensor& sent,
                  const at::Tensor& got) {
  if (sent.scalar_type() == got.scalar_type() && sent.sizes() == got.sizes()) return Status();
  return invalid_argument("stream callback \"" + callback + "\" replied " + describe(got) + " for \"" + name +
                          "\", which was sent as " + describe(sent) +
                          " (the reply must keep shape and dtype; build the node with any_shape to allow others)");
}

}  // namespace

StreamFn tensor_stream_fn(std::function<at::Tensor(const at::Tensor&)> fn) {
  return [fn = std::move(fn)](const TensorSet& in) -> TensorSet {
    if (in.size() != 1) {
      throw std::invalid_argument("this callback takes one tensor but the stream sent " + std::to_string(in.size()) +
                                  " (register a TensorSet callback for tuples)");
    }
    return {{"value", fn(in[0].tensor)}};
  };
}

Result<TensorSet> stream_payload(const c10::IValue& sent) {
  if (sent.isTensor()) return TensorSet{{"value", sent.toTensor()}};
  if (sent.isTuple() || sent.isList()) {
    std::vector<c10::IValue> elems = sent.isTuple() ? sent.toTupleRef().elements().vec() : sent.toListRef().vec();
    TensorSet out;
    for (size_t i = 0; i < elems.size(); ++i) {
      if (elems[i].isNone()) continue;
      if (!elems[i].isTensor()) {
        return invalid_argument("element " + std::to_string(i) + " of the streamed value is a " +
                                elems[i].tagKind() + "; only tensors (or None) can be streamed");
      }
      out.push_back({std::to_string(i), elems[i].toTensor()});
    }
    return out;
  }
  return invalid_argument("a " + sent.tagKind() + " cannot be streamed; stream a tensor or a tuple of tensors");
}

Result<c10::IValue> stream_reply_value(const std::string& callback, TensorSet reply, const c10::IValue& sent,
                                       bool any_shape) {
  std::set<std::string> names;
  for (const auto& nt : reply) {
    if (!nt.tensor.defined()) return invalid_argument("stream callback \"" + callback + "\" replied an undefined tensor");
    if (!names.insert(nt.name).second) {
      return invalid_argument("stream callback \"" + callback + "\" replied \"" + nt.name + "\" twice");
    }
  }
  if (sent.isTensor()) {
    if (reply.size() != 1) {
      return invalid_argument("stream callback \"" + callback + "\" was sent one tensor and must reply one, not " +
                              std::to_string(reply.size()));
    }
    if (!any_shape) LOOM_RETURN_IF_ERROR(check_same(callback, "value", sent.toTensor(), reply[0].tensor));
    return c10::IValue(std::move(reply[0].tensor));
  }
  LOOM_ASSIGN_OR_RETURN(TensorSet sent_set, stream_payload(sent));
  std::map<std::string, at::Tensor> by_name;
  for (auto& nt : reply) by_name[nt.name] = std::move(nt.tensor);
  std::vector<c10::IValue> elems = sent.isTuple() ? sent.toTupleRef().elements().vec() : sent.toListRef().vec();
  for (const auto& s : sent_set) {
    auto it = by_name.find(s.name);
    if (it == by_name.end()) {
      return invalid_argument("stream callback \"" + callback + "\" did not reply element \"" + s.name + "\"");
    }
    if (!any_shape) LOOM_RETURN_IF_ERROR(check_same(callback, s.name, s.tensor, it->second));
    elems[std::stoul(s.name)] = std::move(it->second);
    by_name.erase(it);
  }
  if (!by_name.empty()) {
    return invalid_argument("stream callback \"" + callback + "\" replied \"" + by_name.begin()->first +
                            "\", which was not sent");
  }
  if (sent.isTuple()) return c10::IValue(c10::ivalue::Tuple::create(std::move(elems)));
  c10::impl::GenericList list(c10::TensorType::get());
  for (auto& e : elems) list.push_back(std::move(e));
  return c10::IValue(std::move(list));
}

std::string log_summary(const c10::IValue& v) {
  if (!v.isTensor()) return v.tagKind();
  const at::Tensor& t = v.toTensor();
  std::string out = describe(t);
  if (t.numel() == 0 || t.numel() > 16) return out;
  at::Tensor flat = t.to(at::kCPU).to(at::kDouble).flatten().contiguous();
  out += " [";
  for (int64_t i = 0; i < flat.numel(); ++i) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%s%.6g", i ? ", " : "", flat.data_ptr<double>()[i]);
    out += buf;
  }
  return out + "]";
}

StreamHandler local_stream_handler(std::map<std::string, StreamFn> fns) {
  return [fns = std::move(fns)](const std::string& name, const TensorSet& payload) -> Result<TensorSet> {
    auto it = fns.find(name);
    if (it == fns.end()) return failed_precondition("no handler is registered for stream callback \"" + name + "\"");
    try {
      return it->second(payload);
    } catch (const std::exception& e) {
      return invalid_argument("stream callback \"" + name + "\" threw: " + e.what());
    }
  };
}

}  // namespace loom::runtime
