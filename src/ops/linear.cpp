#include "linear.hpp"

#include <Eigen/Core>

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
  using MatrixRowMajor = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  const int64_t inputs = in.shape.elements() / in.shape.n;
  const int64_t outputs = out.shape.elements() / out.shape.n;
  Eigen::Map<const MatrixRowMajor> weights(weight, outputs, inputs);
  for (int64_t n = 0; n < out.shape.n; ++n) {
    Eigen::Map<Eigen::VectorXf> result(out.f32() + n * outputs, outputs);
    result.noalias() = weights * Eigen::Map<const Eigen::VectorXf>(in.f32() + n * inputs, inputs);
    if (bias) result += Eigen::Map<const Eigen::VectorXf>(bias, outputs);
  }
}

}  // namespace splitinfer
