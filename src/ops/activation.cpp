#include "activation.hpp"

#include <algorithm>
#include <cmath>

namespace splitinfer {
namespace {

template <typename Function>
void apply(const Tensor& in, Tensor& out, Function function) {
  const float* src = in.f32();
  float* dst = out.f32();
  const int64_t count = in.shape.elements();
  for (int64_t i = 0; i < count; ++i) dst[i] = function(src[i]);
}

}  // namespace

void activation(Activation kind, float negative_slope, const Tensor& in, Tensor& out) {
  switch (kind) {
    case Activation::relu:
      return apply(in, out, [](float x) { return std::max(x, 0.0f); });
    case Activation::relu6:
      return apply(in, out, [](float x) { return std::min(std::max(x, 0.0f), 6.0f); });
    case Activation::leaky_relu:
      return apply(in, out,
                   [negative_slope](float x) { return x > 0.0f ? x : x * negative_slope; });
    case Activation::sigmoid:
      return apply(in, out, [](float x) { return 1.0f / (1.0f + std::exp(-x)); });
    case Activation::silu:
      return apply(in, out, [](float x) { return x / (1.0f + std::exp(-x)); });
    case Activation::hardswish:
      return apply(in, out,
                   [](float x) { return x * std::min(std::max(x + 3.0f, 0.0f), 6.0f) / 6.0f; });
    case Activation::hardsigmoid:
      return apply(in, out,
                   [](float x) { return std::min(std::max(x + 3.0f, 0.0f), 6.0f) / 6.0f; });
  }
}

}  // namespace splitinfer
