#include "graph/allowlist.h"

#include <algorithm>

namespace loom::graph {

const std::vector<std::string>& allowlisted_ops() {
  // Kept sorted: is_allowlisted_op() binary-searches it.
  static const std::vector<std::string> kOps = [] {
    std::vector<std::string> ops = {
        "aten::abs", "aten::add.Scalar", "aten::add.Tensor", "aten::argmax",
        "aten::argmin", "aten::cat", "aten::clamp", "aten::clone", "aten::contiguous",
        "aten::cos", "aten::cosine_similarity", "aten::cumsum", "aten::detach",
        "aten::div.Scalar", "aten::div.Tensor", "aten::dropout", "aten::eq.Scalar",
        "aten::eq.Tensor", "aten::exp", "aten::expand", "aten::flatten.using_ints",
        "aten::gather", "aten::ge.Scalar", "aten::gelu", "aten::gt.Scalar",
        "aten::index_select", "aten::layer_norm", "aten::le.Scalar", "aten::linear",
        "aten::log", "aten::log_softmax.int", "aten::lt.Scalar", "aten::masked_fill.Scalar",
        "aten::matmul", "aten::max.dim", "aten::maximum", "aten::mean.dim", "aten::min.dim",
        "aten::minimum", "aten::mul.Scalar", "aten::mul.Tensor", "aten::ne.Scalar",
        "aten::neg", "aten::norm.ScalarOpt_dim", "aten::ones_like", "aten::permute",
        "aten::pow.Tensor_Scalar", "aten::pow.Tensor_Tensor", "aten::reciprocal",
        "aten::relu", "aten::repeat", "aten::reshape", "aten::roll", "aten::rsqrt",
        "aten::rsub.Scalar", "aten::select.int", "aten::sigmoid", "aten::sign", "aten::sin",
        "aten::slice.Tensor", "aten::softmax.int", "aten::sort", "aten::sqrt",
        "aten::squeeze.dim", "aten::stack", "aten::std.dim", "aten::sub.Scalar",
        "aten::sub.Tensor", "aten::sum.dim_IntList", "aten::t", "aten::tanh",
        "aten::to.dtype", "aten::topk", "aten::transpose.int", "aten::tril", "aten::triu",
        "aten::unsqueeze", "aten::var.dim", "aten::view", "aten::where.self",
        "aten::zeros_like", "loom::element",
    };
    std::sort(ops.begin(), ops.end());
    return ops;
  }();
  return kOps;
}

bool is_allowlisted_op(std::string_view schema_name) {
  const auto& ops = allowlisted_ops();
  return std::binary_search(ops.begin(), ops.end(), schema_name,
                            [](const auto& a, const auto& b) { return std::string_view(a) < std::string_view(b); });
}

}  // namespace loom::graph
