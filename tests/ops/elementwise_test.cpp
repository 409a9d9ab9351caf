// add and mul, including mul's [N, C, 1, 1] broadcast on either side and
// computing in place into an input.
#include "ops/elementwise.hpp"

#include <gtest/gtest.h>

#include <vector>

#include "test_util.hpp"

namespace splitinfer {
namespace {

using testing::expect_values;
using testing::nchw;
using testing::OwnedTensor;

TEST(AddByHand, ElementByElement) {
  const OwnedTensor a(nchw(1, 2, 1, 2), {1, 2, 3, 4});
  const OwnedTensor b(nchw(1, 2, 1, 2), {10, -20, 0.5f, -4});
  OwnedTensor out(a.tensor.shape);
  add(a.tensor, b.tensor, out.tensor);
  expect_values({11, -18, 3.5f, 0}, out.tensor);
}

TEST(AddByHand, InPlaceIntoEitherInput) {
  OwnedTensor a(nchw(1, 1, 1, 3), {1, 2, 3});
  OwnedTensor b(nchw(1, 1, 1, 3), {4, 5, 6});
  add(a.tensor, b.tensor, a.tensor);
  expect_values({5, 7, 9}, a.tensor);
  add(a.tensor, b.tensor, b.tensor);
  expect_values({9, 12, 15}, b.tensor);
}

TEST(MulByHand, SameShape) {
  const OwnedTensor a(nchw(1, 2, 1, 2), {1, 2, 3, 4});
  const OwnedTensor b(nchw(1, 2, 1, 2), {5, -1, 0.5f, 0});
  OwnedTensor out(a.tensor.shape);
  mul(a.tensor, b.tensor, out.tensor);
  expect_values({5, -2, 1.5f, 0}, out.tensor);
}

// x: 2 channels of 2x2; scale: [1, 2, 1, 1] = [10, -1] (a squeeze-excite gate).
const std::vector<float> kMap = {1, 2, 3, 4, 5, 6, 7, 8};
const std::vector<float> kScale = {10, -1};
const std::vector<float> kScaled = {10, 20, 30, 40, -5, -6, -7, -8};

TEST(MulByHand, BroadcastsTheSecondOperand) {
  const OwnedTensor x(nchw(1, 2, 2, 2), kMap);
  const OwnedTensor scale(nchw(1, 2, 1, 1), kScale);
  OwnedTensor out(x.tensor.shape);
  mul(x.tensor, scale.tensor, out.tensor);
  expect_values(kScaled, out.tensor);
}

TEST(MulByHand, BroadcastsTheFirstOperand) {
  const OwnedTensor scale(nchw(1, 2, 1, 1), kScale);
  const OwnedTensor x(nchw(1, 2, 2, 2), kMap);
  OwnedTensor out(x.tensor.shape);
  mul(scale.tensor, x.tensor, out.tensor);
  expect_values(kScaled, out.tensor);
}

TEST(MulByHand, BroadcastInPlaceIntoTheMap) {
  OwnedTensor x(nchw(1, 2, 2, 2), kMap);
  const OwnedTensor scale(nchw(1, 2, 1, 1), kScale);
  mul(x.tensor, scale.tensor, x.tensor);
  expect_values(kScaled, x.tensor);
}

TEST(MulByHand, TwoGatesOfTheSameShapeDoNotBroadcast) {
  const OwnedTensor a(nchw(1, 3, 1, 1), {1, 2, 3});
  const OwnedTensor b(nchw(1, 3, 1, 1), {4, 5, 6});
  OwnedTensor out(a.tensor.shape);
  mul(a.tensor, b.tensor, out.tensor);
  expect_values({4, 10, 18}, out.tensor);
}

TEST(MulByHand, BroadcastOverABatchOfTwo) {
  // Each image uses its own gate: scale [2, 1, 1, 1] = [[2], [3]] over [2, 1, 1, 2].
  const OwnedTensor x(nchw(2, 1, 1, 2), {1, 2, 3, 4});
  const OwnedTensor scale(nchw(2, 1, 1, 1), {2, 3});
  OwnedTensor out(x.tensor.shape);
  mul(x.tensor, scale.tensor, out.tensor);
  expect_values({2, 4, 9, 12}, out.tensor);
}

}  // namespace
}  // namespace splitinfer
