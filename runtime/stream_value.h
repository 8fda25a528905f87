// Values crossing a stream node, in one form for local and remote runs: a
// named set of tensors. A tensor travels as {"value": t}; a tuple or list
// (a module's output) as {"0": t0, "1": t1, ...}, None elements left out.
// The reply comes back in the same form and is rebuilt into the sent
// value's structure; unless the node says `any_shape`, each tensor must
// keep the shape and dtype it was sent with (a reply set back into the
// model must fit where it goes).
// Thread safety: pure functions.
#pragma once

#include <ATen/core/ivalue.h>

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "graph/status.h"
#include "runtime/execute.h"
#include "runtime/safetensors.h"

namespace loom::runtime {

using TensorSet = std::vector<NamedTensor>;
// A stream callback as the runtime calls it. May throw: the run then fails
// with the exception's message.
using StreamFn = std::function<TensorSet(const TensorSet&)>;
// Adapts a tensor -> tensor callback (the common case).
StreamFn tensor_stream_fn(std::function<at::Tensor(const at::Tensor&)> fn);

// The named tensors of a value sent to a stream callback.
Result<TensorSet> stream_payload(const c10::IValue& sent);
// Rebuilds a reply in the structure of `sent`; INVALID_ARGUMENT naming the
// callback when a tensor is missing, extra, or (unless any_shape) of
// another shape or dtype.
Result<c10::IValue> stream_reply_value(const std::string& callback, TensorSet reply, const c10::IValue& sent,
                                       bool any_shape);

// A log node's value as LOG events show it: "Float[2, 3] [0.5, 1, ...]"
// (the values when there are at most 16). The same text locally and remotely.
std::string log_summary(const c10::IValue& value);

// An ExecOptions::on_stream that calls `fns` in-process (local runs).
StreamHandler local_stream_handler(std::map<std::string, StreamFn> fns);

}  // namespace loom::runtime
