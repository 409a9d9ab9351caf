// Max, average and global average pooling with PyTorch's semantics, checked
// on hand-computed cases; pool_output_size against PyTorch's formula; and the
// tile property: a pooled tile equals the same part of the whole map bit for bit.
#include "ops/pool.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <ostream>
#include <string>
#include <vector>

#include "test_util.hpp"

namespace splitinfer {
namespace {

using testing::bitwise_equal;
using testing::cut_tile;
using testing::expect_values;
using testing::input_span;
using testing::nchw;
using testing::OwnedTensor;
using testing::pool_params;
using testing::Span;

Shape pooled_shape(const PoolParams& p, const Shape& in) {
  return nchw(in.n, in.c,
              pool_output_size(in.h, p.kernel_h, p.stride_h, p.pad_h, p.dilation_h, p.ceil_mode),
              pool_output_size(in.w, p.kernel_w, p.stride_w, p.pad_w, p.dilation_w, p.ceil_mode));
}

OwnedTensor run_maxpool(const PoolParams& p, const OwnedTensor& in) {
  OwnedTensor out(pooled_shape(p, in.tensor.shape));
  maxpool(p, in.tensor, Placement::whole(in.tensor.shape), out.tensor,
          Placement::whole(out.tensor.shape));
  return out;
}

OwnedTensor run_avgpool(const PoolParams& p, const OwnedTensor& in) {
  OwnedTensor out(pooled_shape(p, in.tensor.shape));
  avgpool(p, in.tensor, Placement::whole(in.tensor.shape), out.tensor,
          Placement::whole(out.tensor.shape));
  return out;
}

// in(r, c) = 4r + c + 1: [[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12], [13, 14, 15, 16]].
OwnedTensor one_to_sixteen() {
  std::vector<float> values(16);
  for (int i = 0; i < 16; ++i) values[i] = static_cast<float>(i + 1);
  return OwnedTensor(nchw(1, 1, 4, 4), values);
}

// max pooling as plain loops over each output's window, taps in (ky, kx)
// order: a larger tap or a NaN replaces the best so far (so the last NaN
// wins, and only a NaN replaces a NaN).
OwnedTensor maxpool_by_loops(const PoolParams& p, const OwnedTensor& in) {
  const Shape& s = in.tensor.shape;
  OwnedTensor out(pooled_shape(p, s));
  const Shape& o = out.tensor.shape;
  for (int64_t c = 0; c < s.c; ++c)
    for (int64_t oy = 0; oy < o.h; ++oy)
      for (int64_t ox = 0; ox < o.w; ++ox) {
        float best = -std::numeric_limits<float>::infinity();
        for (int64_t ky = 0; ky < p.kernel_h; ++ky)
          for (int64_t kx = 0; kx < p.kernel_w; ++kx) {
            const int64_t iy = oy * p.stride_h - p.pad_h + ky * p.dilation_h;
            const int64_t ix = ox * p.stride_w - p.pad_w + kx * p.dilation_w;
            if (iy < 0 || iy >= s.h || ix < 0 || ix >= s.w) continue;
            const float value = in.values[(c * s.h + iy) * s.w + ix];
            if (value > best || std::isnan(value)) best = value;
          }
        out.values[(c * o.h + oy) * o.w + ox] = best;
      }
  return out;
}

// ---- output size ----
// PyTorch (aten/src/ATen/native/Pool.h, pooling_output_shape):
//   out = floor_or_ceil((in + 2*pad - dilation*(kernel-1) - 1) / stride) + 1,
//   and with ceil_mode, if (out-1)*stride >= in + pad, out -= 1: the last
//   window must start inside the input or its left padding.

TEST(PoolOutputSize, FloorModeIsTheConvFormula) {
  EXPECT_EQ(pool_output_size(4, 2, 2, 0, 1, false), 2);
  EXPECT_EQ(pool_output_size(5, 2, 2, 0, 1, false), 2);     // floor(3/2)+1
  EXPECT_EQ(pool_output_size(6, 3, 2, 1, 1, false), 3);     // floor(5/2)+1
  EXPECT_EQ(pool_output_size(112, 3, 2, 1, 1, false), 56);  // ResNet: floor(111/2)+1
  EXPECT_EQ(pool_output_size(7, 3, 1, 1, 2, false), 5);     // dilation 2: (7+2-4-1)/1+1
  EXPECT_EQ(pool_output_size(13, 3, 3, 1, 1, false), 5);    // floor(12/3)+1
}

TEST(PoolOutputSize, CeilModeRoundsUp) {
  // 6, kernel 3, stride 2, pad 1: span 6+2-2-1 = 5; ceil(5/2)+1 = 4; (4-1)*2 = 6 < 6+1: kept.
  // Windows start at -1, 1, 3, 5; the last covers input 5 and right padding 6, 7.
  EXPECT_EQ(pool_output_size(6, 3, 2, 1, 1, true), 4);
  // 5, kernel 2, stride 2, pad 0: span 3; ceil(3/2)+1 = 3; 2*2 = 4 < 5: kept (floor gives 2).
  EXPECT_EQ(pool_output_size(5, 2, 2, 0, 1, true), 3);
  // 4, kernel 3, stride 2, pad 1: span 3; ceil(3/2)+1 = 3; 2*2 = 4 < 5: kept (floor gives 2).
  EXPECT_EQ(pool_output_size(4, 3, 2, 1, 1, true), 3);
  // ShuffleNet/GoogLeNet: 112, kernel 3, stride 2, pad 0: span 109; ceil(109/2)+1 = 56.
  EXPECT_EQ(pool_output_size(112, 3, 2, 0, 1, true), 56);
  // An exact fit is the same in both modes: 7, kernel 3, stride 2, pad 0: span 4, 4/2+1 = 3.
  EXPECT_EQ(pool_output_size(7, 3, 2, 0, 1, true), 3);
}

TEST(PoolOutputSize, CeilModeDropsAWindowStartingInTheRightPadding) {
  // 4, kernel 2, stride 3, pad 1: span 4+2-1-1 = 4; ceil(4/3)+1 = 3; (3-1)*3 = 6 >= 4+1:
  // the third window would start at 6-1 = 5, past the input (and in the right padding): 2.
  EXPECT_EQ(pool_output_size(4, 2, 3, 1, 1, true), 2);
  // 4, kernel 1, stride 2, pad 0: span 3; ceil(3/2)+1 = 3; 2*2 = 4 >= 4: the third window
  // would start at 4, just past the input: 2.
  EXPECT_EQ(pool_output_size(4, 1, 2, 0, 1, true), 2);
  // 5, kernel 2, stride 2, pad 1: span 5; ceil(5/2)+1 = 4; 3*2 = 6 >= 6: dropped to 3.
  EXPECT_EQ(pool_output_size(5, 2, 2, 1, 1, true), 3);
}

// ---- max pool by hand ----

TEST(MaxPoolByHand, Kernel2Stride2) {
  expect_values({6, 8, 14, 16}, run_maxpool(pool_params(2, 2, 0), one_to_sixteen()).tensor);
}

TEST(MaxPoolByHand, Kernel3Stride2Pad1CeilMode) {
  // Output 3x3 (see CeilModeRoundsUp). Window rows/cols: {0,1}, {1,2,3}, {3} (the last starts
  // at input 3 and runs into the right padding). Max = 4*max_row + max_col + 1.
  const OwnedTensor out = run_maxpool(pool_params(3, 2, 1, true), one_to_sixteen());
  ASSERT_EQ(out.tensor.shape, nchw(1, 1, 3, 3));
  expect_values({6, 8, 8, 14, 16, 16, 14, 16, 16}, out.tensor);
}

TEST(MaxPoolByHand, PaddingIsMinusInfinityNotZero) {
  // All inputs negative; a zero-padded max would give 0.
  const OwnedTensor in(nchw(1, 1, 2, 2), {-1, -2, -3, -4});
  expect_values({-1, -1, -1, -1}, run_maxpool(pool_params(3, 1, 1), in).tensor);
}

TEST(MaxPoolByHand, Dilation2) {
  // Taps 2 apart: out(0,0) = max(1, 3, 9, 11) = 11, out(0,1) = max(2, 4, 10, 12) = 12,
  // out(1,0) = max(5, 7, 13, 15) = 15, out(1,1) = 16.
  expect_values({11, 12, 15, 16},
                run_maxpool(pool_params(2, 1, 0, false, true, 2), one_to_sixteen()).tensor);
}

TEST(MaxPoolByHand, NaNPropagatesAsInPyTorch) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const OwnedTensor in(nchw(1, 1, 2, 4), {1, nan, 3, 4, 5, 6, 7, 8});
  const OwnedTensor out = run_maxpool(pool_params(2, 2, 0), in);
  EXPECT_TRUE(std::isnan(out.values[0]));
  EXPECT_EQ(out.values[1], 8.0f);
}

TEST(MaxPoolWideRows, EqualsPlainLoopsBitForBitWithNaNs) {
  // Rows long enough for the vector paths (stride 2 picks its taps out of
  // whole vectors), widths that leave a partial last vector (and with
  // ceil_mode a window running into the right padding), and NaNs with
  // distinct payloads: which NaN wins shows the taps' order. Whole maps, and
  // a tile that starts at an odd row and column, as a node holds one.
  for (const int64_t width : {75, 76}) {
    OwnedTensor in = testing::random_tensor(nchw(1, 2, 21, width), 5);
    for (size_t i = 0; i < in.values.size(); i += 37)
      in.values[i] = std::nanf(std::to_string(i % 7 + 1).c_str());
    in.values[100] = -std::numeric_limits<float>::infinity();
    for (const PoolParams& p :
         {pool_params(3, 2, 1), pool_params(2, 2, 0), pool_params(3, 2, 1, true),
          pool_params(3, 2, 1, false, true, 2), pool_params(3, 1, 1), pool_params(3, 3, 0)}) {
      SCOPED_TRACE("width " + std::to_string(width) + ", kernel " + std::to_string(p.kernel_w) +
                   " stride " + std::to_string(p.stride_w) + " pad " + std::to_string(p.pad_w) +
                   " dilation " + std::to_string(p.dilation_w) + (p.ceil_mode ? " ceil" : ""));
      const OwnedTensor fast = run_maxpool(p, in), loops = maxpool_by_loops(p, in);
      ASSERT_EQ(fast.values.size(), loops.values.size());
      // The same bits, NaN payloads included (bitwise_equal refuses NaNs).
      EXPECT_EQ(std::memcmp(fast.values.data(), loops.values.data(), 4 * fast.values.size()), 0);
      EXPECT_TRUE(std::any_of(fast.values.begin(), fast.values.end(),
                              [](float v) { return std::isnan(v); }));

      const int64_t h = fast.tensor.shape.h, w = fast.tensor.shape.w;
      const int64_t rows[2] = {1, h - 2}, cols[2] = {3, w};
      const Span in_rows = input_span(rows[0], rows[1], p.kernel_h, p.stride_h, p.pad_h,
                                      p.dilation_h, in.tensor.shape.h);
      const Span in_cols = input_span(cols[0], cols[1], p.kernel_w, p.stride_w, p.pad_w,
                                      p.dilation_w, in.tensor.shape.w);
      const OwnedTensor in_tile =
          cut_tile(in.tensor, in_rows.begin, in_rows.end, in_cols.begin, in_cols.end);
      OwnedTensor out_tile(nchw(1, 2, rows[1] - rows[0], cols[1] - cols[0]));
      maxpool(p, in_tile.tensor,
              Placement{in_rows.begin, in_cols.begin, in.tensor.shape.h, in.tensor.shape.w},
              out_tile.tensor, Placement{rows[0], cols[0], h, w});
      const OwnedTensor expected = cut_tile(loops.tensor, rows[0], rows[1], cols[0], cols[1]);
      EXPECT_EQ(
          std::memcmp(out_tile.values.data(), expected.values.data(), 4 * expected.values.size()),
          0);
    }
  }
}

TEST(MaxPoolWideRows, EqualMaximaKeepTheFirstTapsZeroSign) {
  // Non-positive values with zeros of both signs as window maxima: a tap
  // equal to the best so far (-0 against +0) does not replace it.
  OwnedTensor in = testing::random_tensor(nchw(1, 3, 9, 70), 11);
  for (size_t i = 0; i < in.values.size(); ++i)
    in.values[i] = i % 5 == 0 ? -0.0f : i % 7 == 0 ? 0.0f : -std::fabs(in.values[i]);
  for (const PoolParams& p : {pool_params(3, 1, 1), pool_params(3, 2, 1, true)}) {
    const OwnedTensor fast = run_maxpool(p, in), loops = maxpool_by_loops(p, in);
    ASSERT_EQ(fast.values.size(), loops.values.size());
    EXPECT_EQ(std::memcmp(fast.values.data(), loops.values.data(), 4 * fast.values.size()), 0);
    EXPECT_TRUE(std::any_of(fast.values.begin(), fast.values.end(),
                            [](float v) { return v == 0.0f && std::signbit(v); }));
    EXPECT_TRUE(std::any_of(fast.values.begin(), fast.values.end(),
                            [](float v) { return v == 0.0f && !std::signbit(v); }));
  }
}

TEST(MaxPoolByHand, ChannelsArePooledApart) {
  // Two channels: the second is the first negated.
  std::vector<float> values = one_to_sixteen().values;
  for (int i = 0; i < 16; ++i) values.push_back(-values[i]);
  expect_values({6, 8, 14, 16, -1, -3, -9, -11},
                run_maxpool(pool_params(2, 2, 0), OwnedTensor(nchw(1, 2, 4, 4), values)).tensor);
}

// ---- average pool by hand ----

TEST(AvgPoolByHand, Kernel2Stride2) {
  // (1+2+5+6)/4 = 3.5, (3+4+7+8)/4 = 5.5, (9+10+13+14)/4 = 11.5, (11+12+15+16)/4 = 13.5
  expect_values({3.5f, 5.5f, 11.5f, 13.5f},
                run_avgpool(pool_params(2, 2, 0), one_to_sixteen()).tensor);
}

// 4x4 input 1..16, kernel 3, stride 2, pad 1, ceil_mode: output 3x3, windows over input
// rows/cols {0,1}, {1,2,3}, {3}. Window sums (by hand):
//   14 30 12
//   57 99 36
//   27 45 16
// PyTorch's avg_pool2d: hend = min(hstart + kernel, in + pad) and pool_size = (hend-hstart) *
// (wend-wstart) before clipping to the input. Starts -1, 1, 3 give padded extents 3, 3, 2
// (the last window is cut at in + pad = 5, not at 6); the input extents are 2, 3, 1.
TEST(AvgPoolByHand, CeilModeCountIncludePadDividesByWindowClippedToPaddedInput) {
  const OwnedTensor out = run_avgpool(pool_params(3, 2, 1, true, true), one_to_sixteen());
  ASSERT_EQ(out.tensor.shape, nchw(1, 1, 3, 3));
  // divisors 9 9 6 / 9 9 6 / 6 6 4
  expect_values({14.0f / 9, 30.0f / 9, 12.0f / 6, 57.0f / 9, 99.0f / 9, 36.0f / 6, 27.0f / 6,
                 45.0f / 6, 16.0f / 4},
                out.tensor, 1e-6f);
}

TEST(AvgPoolByHand, CeilModeExcludePadDividesByInputCount) {
  const OwnedTensor out = run_avgpool(pool_params(3, 2, 1, true, false), one_to_sixteen());
  ASSERT_EQ(out.tensor.shape, nchw(1, 1, 3, 3));
  // divisors 4 6 2 / 6 9 3 / 2 3 1
  expect_values({3.5f, 5, 6, 9.5f, 11, 12, 13.5f, 15, 16}, out.tensor, 1e-6f);
}

TEST(AvgPoolByHand, Kernel3Pad1BothCountModes) {
  // 3x3 input 1..9, kernel 3, stride 1, pad 1. Window sums: 12 21 16 / 27 45 33 / 24 39 28.
  const OwnedTensor in(nchw(1, 1, 3, 3), {1, 2, 3, 4, 5, 6, 7, 8, 9});
  // count_include_pad: every window counts 9.
  expect_values(
      {12.0f / 9, 21.0f / 9, 16.0f / 9, 27.0f / 9, 5, 33.0f / 9, 24.0f / 9, 39.0f / 9, 28.0f / 9},
      run_avgpool(pool_params(3, 1, 1, false, true), in).tensor, 1e-6f);
  // exclude pad: corners count 4, edges 6, the centre 9.
  expect_values({3, 3.5f, 4, 4.5f, 5, 5.5f, 6, 6.5f, 7},
                run_avgpool(pool_params(3, 1, 1, false, false), in).tensor, 1e-6f);
}

TEST(GlobalAvgPoolByHand, MeanOfEachChannel) {
  // Channel 0: 1..6 -> 3.5; channel 1: 10, 20, ..., 60 -> 35.
  const OwnedTensor in(nchw(1, 2, 2, 3), {1, 2, 3, 4, 5, 6, 10, 20, 30, 40, 50, 60});
  OwnedTensor out(nchw(1, 2, 1, 1));
  global_avgpool(in.tensor, out.tensor);
  expect_values({3.5f, 35.0f}, out.tensor, 1e-6f);
}

// ---- tiles: bit for bit ----

struct PoolCase {
  const char* name;
  bool max;
  PoolParams params;
};

void PrintTo(const PoolCase& c, std::ostream* os) { *os << c.name; }

class PoolTile : public ::testing::TestWithParam<PoolCase> {};

TEST_P(PoolTile, TileEqualsWholeMapBitForBit) {
  const PoolCase& c = GetParam();
  const PoolParams& p = c.params;
  const OwnedTensor in = testing::random_tensor(nchw(1, 3, 13, 11), 77);
  const Shape& in_shape = in.tensor.shape;
  const Shape out_shape = pooled_shape(p, in_shape);
  const auto run = [&](const Tensor& input, const Placement& in_at, Tensor& output,
                       const Placement& out_at) {
    if (c.max)
      maxpool(p, input, in_at, output, out_at);
    else
      avgpool(p, input, in_at, output, out_at);
  };
  OwnedTensor whole(out_shape);
  run(in.tensor, Placement::whole(in_shape), whole.tensor, Placement::whole(out_shape));
  for (float value : whole.values) ASSERT_FALSE(std::isnan(value));

  const int64_t h = out_shape.h, w = out_shape.w;
  const int64_t tiles[][4] = {
      {h / 2, h, w / 2, w}, {1, h - 1, 0, w}, {0, h, 2, w - 1}, {1, 3, 2, 5}, {h - 1, h, w - 1, w}};
  // avg pool has no dilation: its window is `kernel` wide.
  const int64_t dilation_h = c.max ? p.dilation_h : 1, dilation_w = c.max ? p.dilation_w : 1;
  for (const auto& tile : tiles) {
    const int64_t row_begin = std::max<int64_t>(tile[0], 0), row_end = std::min(tile[1], h);
    const int64_t col_begin = std::max<int64_t>(tile[2], 0), col_end = std::min(tile[3], w);
    if (row_begin >= row_end || col_begin >= col_end) continue;
    SCOPED_TRACE("output rows [" + std::to_string(row_begin) + ", " + std::to_string(row_end) +
                 ") cols [" + std::to_string(col_begin) + ", " + std::to_string(col_end) + ")");
    const Span rows =
        input_span(row_begin, row_end, p.kernel_h, p.stride_h, p.pad_h, dilation_h, in_shape.h);
    const Span cols =
        input_span(col_begin, col_end, p.kernel_w, p.stride_w, p.pad_w, dilation_w, in_shape.w);
    const OwnedTensor in_tile = cut_tile(in.tensor, rows.begin, rows.end, cols.begin, cols.end);
    OwnedTensor out_tile(nchw(1, 3, row_end - row_begin, col_end - col_begin));
    run(in_tile.tensor, Placement{rows.begin, cols.begin, in_shape.h, in_shape.w}, out_tile.tensor,
        Placement{row_begin, col_begin, h, w});
    EXPECT_TRUE(bitwise_equal(cut_tile(whole.tensor, row_begin, row_end, col_begin, col_end).values,
                              out_tile.values));
  }
}

INSTANTIATE_TEST_SUITE_P(
    Cases, PoolTile,
    ::testing::Values(
        PoolCase{"max_k2_s2", true, pool_params(2, 2, 0)},
        PoolCase{"max_k3_s2_p1", true, pool_params(3, 2, 1)},
        PoolCase{"max_k3_s2_p1_ceil", true, pool_params(3, 2, 1, true)},
        PoolCase{"max_k3_s1_p1_dilation2", true, pool_params(3, 1, 1, false, true, 2)},
        PoolCase{"max_k2_s3_p1_ceil", true, pool_params(2, 3, 1, true)},
        PoolCase{"avg_k2_s2", false, pool_params(2, 2, 0)},
        PoolCase{"avg_k3_s1_p1_include_pad", false, pool_params(3, 1, 1, false, true)},
        PoolCase{"avg_k3_s1_p1_exclude_pad", false, pool_params(3, 1, 1, false, false)},
        PoolCase{"avg_k3_s2_p1_ceil_include_pad", false, pool_params(3, 2, 1, true, true)},
        PoolCase{"avg_k3_s2_p1_ceil_exclude_pad", false, pool_params(3, 2, 1, true, false)},
        PoolCase{"avg_k5_s3_p2_ceil", false, pool_params(5, 3, 2, true, true)}),
    [](const ::testing::TestParamInfo<PoolCase>& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace splitinfer
