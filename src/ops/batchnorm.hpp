#pragma once
// Inference BatchNorm (the unfolded form; the exporter usually folds it into
// the convolution before): y = (x - mean) / sqrt(var + eps) * gamma + beta.
#include "../tensor.hpp"

namespace splitinfer {

struct BatchNormWeights {
  const float* gamma;
  const float* beta;
  const float* running_mean;
  const float* running_var;
  double eps;
};

void batchnorm(const BatchNormWeights& weights, const Tensor& in, Tensor& out);

}  // namespace splitinfer
