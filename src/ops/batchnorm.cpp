#include "batchnorm.hpp"

#include <cmath>

namespace splitinfer {

void batchnorm(const BatchNormWeights& bn, const Tensor& in, Tensor& out) {
  const int64_t plane = in.shape.h * in.shape.w;
  for (int64_t n = 0; n < in.shape.n; ++n)
    for (int64_t c = 0; c < in.shape.c; ++c) {
      // PyTorch's CPU inference form: x * alpha + (beta - mean * alpha).
      const float alpha = bn.gamma[c] / std::sqrt(bn.running_var[c] + static_cast<float>(bn.eps));
      const float shift = bn.beta[c] - bn.running_mean[c] * alpha;
      const float* src = in.f32() + (n * in.shape.c + c) * plane;
      float* dst = out.f32() + (n * in.shape.c + c) * plane;
      for (int64_t i = 0; i < plane; ++i) dst[i] = src[i] * alpha + shift;
    }
}

}  // namespace splitinfer
