// Conversions between the graph's torch-free TensorData / DType and ATen.
// Thread safety: pure functions.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/ScalarType.h>

#include "graph/ir.h"
#include "graph/status.h"

namespace loom::runtime {

c10::ScalarType to_scalar_type(graph::DType dtype);
Result<graph::DType> from_scalar_type(c10::ScalarType type);

// A CPU tensor that owns a copy of the bytes.
Result<at::Tensor> to_tensor(const graph::TensorData& data);
// Copies (any device, any layout) into row-major little-endian bytes.
Result<graph::TensorData> to_tensor_data(const at::Tensor& tensor);

}  // namespace loom::runtime
