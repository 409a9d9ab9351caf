// Activations at a few points, including their kinks (-3, 0, 3, 6), against
// PyTorch's definitions:
//   relu6(x) = min(max(x, 0), 6)          hardsigmoid(x) = relu6(x + 3) / 6
//   hardswish(x) = x * relu6(x + 3) / 6   leaky_relu(x) = x > 0 ? x : slope * x
//   sigmoid(x) = 1 / (1 + exp(-x))        silu(x) = x * sigmoid(x)
#include "ops/activation.hpp"

#include <gtest/gtest.h>

#include <vector>

#include "test_util.hpp"

namespace splitinfer {
namespace {

using testing::OwnedTensor;

const std::vector<float> kPoints = {-6, -3, -1, 0, 0.5f, 1, 3, 6, 7};

// Exact where the definition gives a float exactly; sigmoid and silu to
// 1e-6 (the values below are rounded to 9 significant digits).
constexpr float kExact = 0.0f;
constexpr float kTranscendental = 1e-6f;

void expect_activation(Activation kind, float negative_slope, const std::vector<float>& expected,
                       float tolerance) {
  const OwnedTensor in(testing::nchw(1, 1, 1, static_cast<int64_t>(kPoints.size())), kPoints);
  OwnedTensor out(in.tensor.shape);
  activation(kind, negative_slope, in.tensor, out.tensor);
  testing::expect_values(expected, out.tensor, tolerance);
}

TEST(ActivationByHand, Relu) {
  expect_activation(Activation::relu, 0, {0, 0, 0, 0, 0.5f, 1, 3, 6, 7}, kExact);
}

TEST(ActivationByHand, Relu6ClipsAtSix) {
  expect_activation(Activation::relu6, 0, {0, 0, 0, 0, 0.5f, 1, 3, 6, 6}, kExact);
}

TEST(ActivationByHand, LeakyRelu) {
  expect_activation(Activation::leaky_relu, 0.5f, {-3, -1.5f, -0.5f, 0, 0.5f, 1, 3, 6, 7}, kExact);
  expect_activation(Activation::leaky_relu, 0.01f, {-0.06f, -0.03f, -0.01f, 0, 0.5f, 1, 3, 6, 7},
                    1e-7f);
}

TEST(ActivationByHand, Hardsigmoid) {
  // relu6(x + 3) / 6 at -6, -3, -1, 0, 0.5, 1, 3, 6, 7: 0, 0, 2/6, 3/6, 3.5/6, 4/6, 1, 1, 1.
  expect_activation(Activation::hardsigmoid, 0, {0, 0, 2.0f / 6, 0.5f, 3.5f / 6, 4.0f / 6, 1, 1, 1},
                    1e-7f);
}

TEST(ActivationByHand, Hardswish) {
  // x * relu6(x + 3) / 6: 0 at and below -3, x at and above 3.
  expect_activation(Activation::hardswish, 0,
                    {0, 0, -2.0f / 6, 0, 0.5f * 3.5f / 6, 4.0f / 6, 3, 6, 7}, 1e-7f);
}

TEST(ActivationByHand, Sigmoid) {
  expect_activation(Activation::sigmoid, 0,
                    {0.00247262316f, 0.0474258732f, 0.268941421f, 0.5f, 0.622459331f, 0.731058579f,
                     0.952574127f, 0.997527377f, 0.999088949f},
                    kTranscendental);
}

TEST(ActivationByHand, Silu) {
  expect_activation(Activation::silu, 0,
                    {-0.0148357389f, -0.14227762f, -0.268941421f, 0, 0.311229666f, 0.731058579f,
                     2.85772238f, 5.98516426f, 6.99362264f},
                    4 * kTranscendental);
}

TEST(ActivationByHand, SigmoidSaturatesWithoutNaN) {
  const OwnedTensor in(testing::nchw(1, 1, 1, 4), {-100, -90, 90, 100});
  OwnedTensor sigmoid_out(in.tensor.shape), silu_out(in.tensor.shape);
  activation(Activation::sigmoid, 0, in.tensor, sigmoid_out.tensor);
  activation(Activation::silu, 0, in.tensor, silu_out.tensor);
  testing::expect_values({0, 0, 1, 1}, sigmoid_out.tensor, 1e-30f);
  testing::expect_values({0, 0, 90, 100}, silu_out.tensor, 1e-30f);
}

TEST(Activation, InPlaceGivesTheSameAsOutOfPlace) {
  for (Activation kind :
       {Activation::relu, Activation::relu6, Activation::leaky_relu, Activation::sigmoid,
        Activation::silu, Activation::hardswish, Activation::hardsigmoid}) {
    OwnedTensor values = testing::random_tensor(testing::nchw(1, 3, 5, 7), 5, -8.0f, 8.0f);
    OwnedTensor out_of_place(values.tensor.shape);
    activation(kind, 0.2f, values.tensor, out_of_place.tensor);
    activation(kind, 0.2f, values.tensor, values.tensor);
    EXPECT_TRUE(testing::bitwise_equal(out_of_place.values, values.values))
        << static_cast<int>(kind);
  }
}

}  // namespace
}  // namespace splitinfer
