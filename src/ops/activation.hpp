#pragma once
// Element-wise activations, as PyTorch defines them. `in` and `out` may be
// the same tensor (computed in place).
#include "../tensor.hpp"

namespace splitinfer {

enum class Activation { relu, relu6, leaky_relu, sigmoid, silu, hardswish, hardsigmoid };

void activation(Activation kind, float negative_slope, const Tensor& in, Tensor& out);

}  // namespace splitinfer
