#include "linear.hpp"

#include <cstring>

#include "float_vector.hpp"
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

namespace {

// One neuron's dot product over its inputs: kVectors vectors of partial sums
// along the inputs (each input's product lands in the lane of its place in
// a group of kVectors * kGemmLanes), the inputs left after the last whole
// vector one by one in a scalar, then the lanes added in a fixed tree. The
// order depends on the number of inputs only, so a range of neurons (a
// node's share) equals the same range of all of them bit for bit. A
// classifier reads megabytes of weights once per inference: this reads
// them as whole vectors, where a GEMM's vectors along positions would hold
// one position.
constexpr int64_t kVectors = 4;

inline FloatVector load_vector(const float* from) {
  FloatVector value;
  std::memcpy(&value, from, sizeof(value));
  return value;
}

float dot(const float* weight, const float* x, int64_t inputs) {
  constexpr int64_t kLanes = kGemmLanes;
  FloatVector sum[kVectors] = {};
  int64_t i = 0;
  for (; i + kVectors * kLanes <= inputs; i += kVectors * kLanes)
    for (int64_t v = 0; v < kVectors; ++v)
      sum[v] = multiply_add(sum[v], load_vector(weight + i + v * kLanes),
                            load_vector(x + i + v * kLanes));
  for (; i + kLanes <= inputs; i += kLanes)
    sum[0] = multiply_add(sum[0], load_vector(weight + i), load_vector(x + i));
  float rest = 0.0f;
  for (; i < inputs; ++i) rest = multiply_add(rest, weight[i], x[i]);
  const FloatVector total = (sum[0] + sum[1]) + (sum[2] + sum[3]);
  float lanes[kLanes];
  std::memcpy(lanes, &total, sizeof(lanes));
  for (int64_t width = kLanes / 2; width >= 1; width /= 2)
    for (int64_t lane = 0; lane < width; ++lane) lanes[lane] += lanes[lane + width];
  return lanes[0] + rest;
}

}  // namespace

void linear(const Tensor& in, const float* weight, const float* bias, Tensor& out) {
  const int64_t inputs = in.shape.elements() / in.shape.n;
  const int64_t outputs = out.shape.elements() / out.shape.n;
  for (int64_t n = 0; n < out.shape.n; ++n) {
    const float* x = in.f32() + n * inputs;
    float* y = out.f32() + n * outputs;
    for (int64_t o = 0; o < outputs; ++o)
      y[o] = (bias ? bias[o] : 0.0f) + dot(weight + o * inputs, x, inputs);
  }
}

}  // namespace splitinfer
