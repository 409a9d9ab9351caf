#pragma once
// Helpers shared by the unit tests: tensors that own their memory (a
// std::vector, not an arena), seeded random values, tiles cut out of a whole
// map, the tolerance check used for fast-vs-reference comparisons, and the
// message of an expected Error.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "error.hpp"
#include "ops/conv2d.hpp"
#include "ops/pool.hpp"
#include "tensor.hpp"

namespace splitinfer::testing {

// A Tensor over its own std::vector. Movable (a moved vector keeps its
// buffer, so the view stays valid), not copyable (a copy would alias).
struct OwnedTensor {
  std::vector<float> values;
  Tensor tensor;

  explicit OwnedTensor(const Shape& shape, float fill = std::numeric_limits<float>::quiet_NaN())
      : values(static_cast<size_t>(shape.elements()), fill),
        tensor{shape, DType::f32, values.data()} {}
  OwnedTensor(const Shape& shape, std::vector<float> initial)
      : values(std::move(initial)), tensor{shape, DType::f32, values.data()} {
    EXPECT_EQ(static_cast<int64_t>(values.size()), shape.elements())
        << "initial values for " << shape.str();
  }
  OwnedTensor(OwnedTensor&&) = default;
  OwnedTensor& operator=(OwnedTensor&&) = default;
  OwnedTensor(const OwnedTensor&) = delete;
  OwnedTensor& operator=(const OwnedTensor&) = delete;

  float at(int64_t n, int64_t c, int64_t y, int64_t x) const { return tensor.at(n, c, y, x); }
};

inline Shape nchw(int64_t n, int64_t c, int64_t h, int64_t w) { return Shape{n, c, h, w, 4}; }

// `count` values uniform in [low, high) from a generator seeded with `seed`.
inline std::vector<float> random_values(size_t count, uint32_t seed, float low = -1.0f,
                                        float high = 1.0f) {
  std::mt19937 generator(seed);
  std::uniform_real_distribution<float> distribution(low, high);
  std::vector<float> values(count);
  for (float& value : values) value = distribution(generator);
  return values;
}

inline OwnedTensor random_tensor(const Shape& shape, uint32_t seed, float low = -1.0f,
                                 float high = 1.0f) {
  return OwnedTensor(shape, random_values(static_cast<size_t>(shape.elements()), seed, low, high));
}

// Rows [row_begin, row_end) and columns [col_begin, col_end) of every
// channel of `whole`, as a tensor of their own.
inline OwnedTensor cut_tile(const Tensor& whole, int64_t row_begin, int64_t row_end,
                            int64_t col_begin, int64_t col_end) {
  OwnedTensor tile(nchw(whole.shape.n, whole.shape.c, row_end - row_begin, col_end - col_begin));
  for (int64_t n = 0; n < whole.shape.n; ++n)
    for (int64_t c = 0; c < whole.shape.c; ++c)
      for (int64_t y = row_begin; y < row_end; ++y)
        for (int64_t x = col_begin; x < col_end; ++x)
          tile.tensor.at(n, c, y - row_begin, x - col_begin) = whole.at(n, c, y, x);
  return tile;
}

// The input rows (or columns) output positions [out_begin, out_end) of a
// sliding window read, clipped to the map [0, input): the exact halo.
struct Span {
  int64_t begin = 0, end = 0;
};
inline Span input_span(int64_t out_begin, int64_t out_end, int64_t kernel, int64_t stride,
                       int64_t pad, int64_t dilation, int64_t input) {
  const int64_t first = out_begin * stride - pad;
  const int64_t last = (out_end - 1) * stride - pad + (kernel - 1) * dilation;
  return {std::max<int64_t>(first, 0), std::min<int64_t>(last + 1, input)};
}

// Largest |value| of `values`.
inline float max_abs(const std::vector<float>& values) {
  float largest = 0.0f;
  for (float value : values) largest = std::max(largest, std::fabs(value));
  return largest;
}

// Every element within `relative` * max|expected| of `expected` (NaN fails).
inline ::testing::AssertionResult close_relative(const std::vector<float>& expected,
                                                 const std::vector<float>& actual, float relative) {
  if (expected.size() != actual.size())
    return ::testing::AssertionFailure()
           << "sizes differ: " << expected.size() << " vs " << actual.size();
  const float tolerance = relative * std::max(max_abs(expected), std::numeric_limits<float>::min());
  for (size_t i = 0; i < expected.size(); ++i)
    if (!(std::fabs(expected[i] - actual[i]) <= tolerance))
      return ::testing::AssertionFailure()
             << "element " << i << ": expected " << expected[i] << ", got " << actual[i]
             << " (tolerance " << tolerance << ")";
  return ::testing::AssertionSuccess();
}

// Bit-for-bit equality (NaN fails, +0 and -0 differ).
inline ::testing::AssertionResult bitwise_equal(const std::vector<float>& expected,
                                                const std::vector<float>& actual) {
  if (expected.size() != actual.size())
    return ::testing::AssertionFailure()
           << "sizes differ: " << expected.size() << " vs " << actual.size();
  for (size_t i = 0; i < expected.size(); ++i) {
    uint32_t expected_bits = 0, actual_bits = 0;
    std::memcpy(&expected_bits, &expected[i], sizeof expected_bits);
    std::memcpy(&actual_bits, &actual[i], sizeof actual_bits);
    if (expected_bits != actual_bits || std::isnan(expected[i]))
      return ::testing::AssertionFailure()
             << "element " << i << ": expected " << expected[i] << ", got " << actual[i];
  }
  return ::testing::AssertionSuccess();
}

// Expects `actual` to hold `expected` (row-major NCHW) within `tolerance`.
inline void expect_values(const std::vector<float>& expected, const Tensor& actual,
                          float tolerance = 0.0f) {
  ASSERT_EQ(static_cast<int64_t>(expected.size()), actual.shape.elements()) << actual.shape.str();
  for (size_t i = 0; i < expected.size(); ++i)
    EXPECT_NEAR(actual.f32()[i], expected[i], tolerance)
        << "element " << i << " of " << actual.shape.str();
}

// Conv2dParams field by field, for tables of cases.
inline Conv2dParams conv2d_params(int64_t kernel_h, int64_t kernel_w, int64_t stride_h,
                                  int64_t stride_w, int64_t pad_h, int64_t pad_w,
                                  int64_t dilation_h = 1, int64_t dilation_w = 1,
                                  int64_t groups = 1) {
  Conv2dParams p;
  p.kernel_h = kernel_h, p.kernel_w = kernel_w;
  p.stride_h = stride_h, p.stride_w = stride_w;
  p.pad_h = pad_h, p.pad_w = pad_w;
  p.dilation_h = dilation_h, p.dilation_w = dilation_w;
  p.groups = groups;
  return p;
}

// Square pooling windows.
inline PoolParams pool_params(int64_t kernel, int64_t stride, int64_t pad, bool ceil_mode = false,
                              bool count_include_pad = true, int64_t dilation = 1) {
  PoolParams p;
  p.kernel_h = p.kernel_w = kernel;
  p.stride_h = p.stride_w = stride;
  p.pad_h = p.pad_w = pad;
  p.dilation_h = p.dilation_w = dilation;
  p.ceil_mode = ceil_mode;
  p.count_include_pad = count_include_pad;
  return p;
}

// The message of the Error `action` throws; fails the test when it throws none.
inline std::string error_of(const std::function<void()>& action) {
  try {
    action();
  } catch (const Error& error) {
    return error.what();
  }
  ADD_FAILURE() << "no Error thrown";
  return "";
}

}  // namespace splitinfer::testing
