// Ops on shapes only where LibTorch 1.13 lacks a meta kernel.
//
// Model::forward_meta (scan) runs the model on meta tensors. Structured ops
// (matmul, addmm, softmax, elementwise) have meta kernels; some the models
// and graphs use do not (layer_norm's batch norm, where, index_select, ...).
// For those, a Meta backend fallback runs the op on CPU stand-ins of the
// inputs' shapes (zero-filled, read-only ones broadcast from one element so
// they take no memory) and turns the outputs back into meta tensors. The
// outputs are computed on zeros and dropped: shapes and dtypes are what
// count. Thread safety: installing is once per process; the fallback itself
// holds no state.
#pragma once

namespace loom::runtime::internal {

// Registers the fallback (idempotent; the first call pays).
void install_meta_fallback();

}  // namespace loom::runtime::internal
