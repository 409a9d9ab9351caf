#pragma once
// Fully connected layer: out[N, OUT] = in[N, IN] * weight[OUT, IN]^T + bias[OUT].
#include "../tensor.hpp"

namespace splitinfer {

void linear_reference(const Tensor& in, const float* weight, const float* bias, Tensor& out);
// The default kernel: each neuron's sum in a fixed order that depends on the
// number of inputs only (a range of neurons equals the same range of all).
void linear(const Tensor& in, const float* weight, const float* bias, Tensor& out);

}  // namespace splitinfer
