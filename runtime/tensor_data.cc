#include "runtime/tensor_data.h"

#include <ATen/ATen.h>

#include <cstring>

namespace loom::runtime {

c10::ScalarType to_scalar_type(graph::DType dtype) {
  switch (dtype) {
    case graph::DType::kFloat32: return at::kFloat;
    case graph::DType::kFloat64: return at::kDouble;
    case graph::DType::kFloat16: return at::kHalf;
    case graph::DType::kBFloat16: return at::kBFloat16;
    case graph::DType::kInt64: return at::kLong;
    case graph::DType::kInt32: return at::kInt;
    case graph::DType::kInt16: return at::kShort;
    case graph::DType::kInt8: return at::kChar;
    case graph::DType::kUInt8: return at::kByte;
    case graph::DType::kBool: return at::kBool;
  }
  return at::kFloat;
}

Result<graph::DType> from_scalar_type(c10::ScalarType type) {
  switch (type) {
    case at::kFloat: return graph::DType::kFloat32;
    case at::kDouble: return graph::DType::kFloat64;
    case at::kHalf: return graph::DType::kFloat16;
    case at::kBFloat16: return graph::DType::kBFloat16;
    case at::kLong: return graph::DType::kInt64;
    case at::kInt: return graph::DType::kInt32;
    case at::kShort: return graph::DType::kInt16;
    case at::kChar: return graph::DType::kInt8;
    case at::kByte: return graph::DType::kUInt8;
    case at::kBool: return graph::DType::kBool;
    default: return invalid_argument(std::string("dtype ") + c10::toString(type) + " is not supported");
  }
}

Result<at::Tensor> to_tensor(const graph::TensorData& data) {
  int64_t numel = 1;
  for (int64_t d : data.shape) {
    if (d < 0) return invalid_argument("negative dimension " + std::to_string(d));
    numel *= d;
  }
  if (static_cast<uint64_t>(numel) * graph::dtype_size(data.dtype) != data.bytes.size()) {
    return invalid_argument("tensor bytes do not match dtype and shape");
  }
  at::Tensor t = at::empty(data.shape, at::TensorOptions().dtype(to_scalar_type(data.dtype)));
  if (!data.bytes.empty()) std::memcpy(t.data_ptr(), data.bytes.data(), data.bytes.size());
  return t;
}

Result<graph::TensorData> to_tensor_data(const at::Tensor& tensor) {
  LOOM_ASSIGN_OR_RETURN(graph::DType dtype, from_scalar_type(tensor.scalar_type()));
  at::Tensor t = tensor.detach().to(at::kCPU).contiguous();
  graph::TensorData out;
  out.dtype = dtype;
  out.shape = t.sizes().vec();
  out.bytes.assign(static_cast<const char*>(t.data_ptr()), t.nbytes());
  return out;
}

}  // namespace loom::runtime
