#pragma once
// Fully connected layer: out[N, OUT] = in[N, IN] * weight[OUT, IN]^T + bias[OUT].
#include "../tensor.hpp"

namespace splitinfer {

void linear_reference(const Tensor& in, const float* weight, const float* bias, Tensor& out);
// The default kernel: gemm_in_depth_order (a fixed summation order per neuron).
void linear(const Tensor& in, const float* weight, const float* bias, Tensor& out);

}  // namespace splitinfer
