#include "linear.hpp"

#include "gemm.hpp"

namespace splitinfer {

void linear_reference(const Tensor& in, const float* weight, const float* bias, Tensor& out) {
  const int64_t inputs = in.shape.elements() / in.shape.n;
  const int64_t outputs = out.shape.elements() / out.shape.n;
  for (int64_t n = 0; n < out.shape.n; ++n)
    for (int64_t o = 0; o < outputs; ++o) {
      float sum = bias ? bias[o] : 0.0f;
      for (int64_t i = 0; i < inputs; ++i) sum += weight[o * inputs + i] * in.f32()[n * inputs + i];
      out.f32()[n * outputs + o] = sum;
    }
}

void linear(const Tensor& in, const float* weight, const float* bias, Tensor& out) {
  const int64_t inputs = in.shape.elements() / in.shape.n;
  const int64_t outputs = out.shape.elements() / out.shape.n;
  // The input as a [inputs, 1] column; each neuron summed in input order, so a
  // range of neurons (a node's share) equals the same range of all of them.
  for (int64_t n = 0; n < out.shape.n; ++n)
    gemm_in_depth_order(weight, in.f32() + n * inputs, bias, out.f32() + n * outputs, outputs,
                        inputs, 1);
}

}  // namespace splitinfer
