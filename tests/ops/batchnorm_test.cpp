// Inference BatchNorm: y = (x - mean) / sqrt(var + eps) * gamma + beta, per channel.
#include "ops/batchnorm.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "test_util.hpp"

namespace splitinfer {
namespace {

using testing::nchw;
using testing::OwnedTensor;

TEST(BatchNormByHand, TwoChannels) {
  // eps 0.75. Channel 0: gamma 2, beta 0.5, mean 1, var 3.25: sqrt(4) = 2, y = (x - 1) + 0.5.
  //   x = [3, -1, 0, 5] -> [2.5, -1.5, -0.5, 4.5]
  // Channel 1: gamma -3, beta 1, mean -2, var 8.25: sqrt(9) = 3, y = -(x + 2) + 1.
  //   x = [1, 2, -4, 0] -> [-2, -3, 3, -1]
  const std::vector<float> gamma = {2, -3}, beta = {0.5f, 1}, mean = {1, -2}, var = {3.25f, 8.25f};
  const OwnedTensor in(nchw(1, 2, 2, 2), {3, -1, 0, 5, 1, 2, -4, 0});
  OwnedTensor out(in.tensor.shape);
  batchnorm({gamma.data(), beta.data(), mean.data(), var.data(), 0.75}, in.tensor, out.tensor);
  testing::expect_values({2.5f, -1.5f, -0.5f, 4.5f, -2, -3, 3, -1}, out.tensor);
}

TEST(BatchNorm, MatchesTheDefinitionOnRandomData) {
  // Computed in double from the definition; float rounding of the folded
  // form stays within 1e-5 relative.
  const Shape shape = nchw(1, 5, 3, 4);
  const OwnedTensor in = testing::random_tensor(shape, 11, -4.0f, 4.0f);
  const std::vector<float> gamma = testing::random_values(5, 12, 0.5f, 2.0f);
  const std::vector<float> beta = testing::random_values(5, 13);
  const std::vector<float> mean = testing::random_values(5, 14);
  const std::vector<float> var = testing::random_values(5, 15, 0.0f, 3.0f);
  const double eps = 1e-5;
  OwnedTensor out(shape);
  batchnorm({gamma.data(), beta.data(), mean.data(), var.data(), eps}, in.tensor, out.tensor);
  std::vector<float> expected(in.values.size());
  for (int64_t c = 0; c < shape.c; ++c)
    for (int64_t i = 0; i < shape.h * shape.w; ++i) {
      const size_t at = static_cast<size_t>(c * shape.h * shape.w + i);
      expected[at] = static_cast<float>(
          (in.values[at] - double{mean[c]}) / std::sqrt(double{var[c]} + eps) * gamma[c] + beta[c]);
    }
  EXPECT_TRUE(testing::close_relative(expected, out.values, 1e-5f));
}

TEST(BatchNorm, InPlace) {
  const std::vector<float> gamma = {2}, beta = {1}, mean = {0}, var = {1};
  OwnedTensor values(nchw(1, 1, 1, 3), {1, -1, 0.5f});
  batchnorm({gamma.data(), beta.data(), mean.data(), var.data(), 0.0}, values.tensor,
            values.tensor);
  testing::expect_values({3, -1, 2}, values.tensor);
}

}  // namespace
}  // namespace splitinfer
