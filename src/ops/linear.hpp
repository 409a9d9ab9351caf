#pragma once
// Fully connected layer: out[N, OUT] = in[N, IN] * weight[OUT, IN]^T + bias[OUT].
#include "../tensor.hpp"

namespace splitinfer {

void linear_reference(const Tensor& in, const float* weight, const float* bias, Tensor& out);
// The default kernel: each neuron's products added in input order from its
// bias, as gemm_in_depth_order adds them (AVX-512: 16 neurons per vector,
// their weights transposed in registers; else that GEMM with one column).
void linear(const Tensor& in, const float* weight, const float* bias, Tensor& out);

}  // namespace splitinfer
