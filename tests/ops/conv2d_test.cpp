// conv2d(): the fast kernel (im2col + GEMM, direct GEMM for pointwise, direct
// loops for depthwise) against conv2d_reference() on seeded random data; both
// on hand-computed cases; and the tile property the distributed engine relies
// on: an output tile computed from an input tile with its halo equals the
// same rows and columns of the whole-map result, bit for bit, also when the
// tiles hold a range of the output and input channels.
#include "ops/conv2d.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "test_util.hpp"

namespace splitinfer {
namespace {

using testing::bitwise_equal;
using testing::close_relative;
using testing::conv2d_params;
using testing::cut_tile;
using testing::input_span;
using testing::nchw;
using testing::OwnedTensor;
using testing::random_values;
using testing::Span;

// Fast vs reference: a stated tolerance, relative to the largest reference
// output, since the GEMM sums in a different order.
constexpr float kRelativeTolerance = 1e-5f;

// Sentinel written past the end of conv2d()'s scratch to catch overruns.
constexpr float kScratchGuard = 12345.0f;
constexpr size_t kGuardFloats = 64;

struct ConvCase {
  const char* name;
  int64_t batch = 1;
  int64_t in_c = 1, out_c = 1, in_h = 1, in_w = 1;
  Conv2dParams params;
  bool bias = true;
};

// gtest prints a failing case by its name, not its bytes.
void PrintTo(const ConvCase& c, std::ostream* os) { *os << c.name; }

Shape output_shape(const ConvCase& c) {
  const Conv2dParams& p = c.params;
  return nchw(c.batch, c.out_c,
              window_output_size(c.in_h, p.kernel_h, p.stride_h, p.pad_h, p.dilation_h),
              window_output_size(c.in_w, p.kernel_w, p.stride_w, p.pad_w, p.dilation_w));
}

// The data of one case: input, weights [OC, IC/groups, KH, KW], bias [OC].
struct ConvData {
  OwnedTensor input;
  std::vector<float> weight, bias;
};

ConvData make_data(const ConvCase& c, uint32_t seed) {
  const Conv2dParams& p = c.params;
  ConvData data{testing::random_tensor(nchw(c.batch, c.in_c, c.in_h, c.in_w), seed), {}, {}};
  data.weight = random_values(
      static_cast<size_t>(c.out_c * (c.in_c / p.groups) * p.kernel_h * p.kernel_w), seed + 1);
  if (c.bias) data.bias = random_values(static_cast<size_t>(c.out_c), seed + 2);
  return data;
}

// The weight and bias rows of an output tile starting at out_at.channel0: the
// kernels take pointers to the tile's first output channel, whose weight row
// is IC/groups * KH * KW floats (IC: the whole layer's input channels).
const float* tile_weight(const Conv2dParams& p, const Tensor& in, const Placement& in_at,
                         const ConvData& data, const Placement& out_at) {
  const int64_t row = in_at.channels(in) / p.groups * p.kernel_h * p.kernel_w;
  return data.weight.data() + out_at.channel0 * row;
}
const float* tile_bias(const ConvData& data, const Placement& out_at) {
  return data.bias.empty() ? nullptr : data.bias.data() + out_at.channel0;
}

OwnedTensor run_reference(const Conv2dParams& p, const Tensor& in, const Placement& in_at,
                          const ConvData& data, const Shape& out_shape, const Placement& out_at) {
  OwnedTensor out(out_shape);  // NaN-filled: an element left unwritten fails every comparison
  conv2d_reference(p, in, in_at, tile_weight(p, in, in_at, data, out_at), tile_bias(data, out_at),
                   out.tensor, out_at);
  return out;
}

// The scratch is sized by conv2d_scratch_bytes() with the layer's channel
// totals from the placements (0 when a placement does not set them).
OwnedTensor run_fast(const Conv2dParams& p, const Tensor& in, const Placement& in_at,
                     const ConvData& data, const Shape& out_shape, const Placement& out_at) {
  OwnedTensor out(out_shape);
  const uint64_t scratch_bytes =
      conv2d_scratch_bytes(p, in.shape, out_shape, in_at.full_channels, out_at.full_channels);
  EXPECT_EQ(scratch_bytes % sizeof(float), 0u);
  const size_t scratch_floats = scratch_bytes / sizeof(float);
  std::vector<float> scratch(scratch_floats + kGuardFloats, kScratchGuard);
  conv2d(p, in, in_at, tile_weight(p, in, in_at, data, out_at), tile_bias(data, out_at), out.tensor,
         out_at, scratch_floats ? scratch.data() : nullptr);
  for (size_t i = scratch_floats; i < scratch.size(); ++i)
    EXPECT_EQ(scratch[i], kScratchGuard)
        << "conv2d() wrote past conv2d_scratch_bytes() at float " << i;
  return out;
}

class Conv2dFastVsReference : public ::testing::TestWithParam<ConvCase> {};

TEST_P(Conv2dFastVsReference, WholeMapAgreesWithinTolerance) {
  const ConvCase& c = GetParam();
  const ConvData data = make_data(c, 1000);
  const Shape out_shape = output_shape(c);
  ASSERT_GT(out_shape.h, 0);
  ASSERT_GT(out_shape.w, 0);
  const Placement in_at = Placement::whole(data.input.tensor.shape);
  const Placement out_at = Placement::whole(out_shape);
  const OwnedTensor reference =
      run_reference(c.params, data.input.tensor, in_at, data, out_shape, out_at);
  const OwnedTensor fast = run_fast(c.params, data.input.tensor, in_at, data, out_shape, out_at);
  ASSERT_GT(testing::max_abs(reference.values), 0.0f);
  EXPECT_TRUE(close_relative(reference.values, fast.values, kRelativeTolerance));
}

// Output tiles, as [row_begin, row_end) x [col_begin, col_end) of the output.
struct Tile {
  const char* what;
  int64_t row_begin, row_end, col_begin, col_end;
};

std::vector<Tile> tiles_of(const Shape& out) {
  const int64_t h = out.h, w = out.w;
  std::vector<Tile> tiles = {
      {"bottom-right quarter", h / 2, h, w / 2, w},
      {"single last element", h - 1, h, w - 1, w},
      {"row strip", std::min<int64_t>(1, h - 1), std::max<int64_t>(h - 1, std::min<int64_t>(2, h)),
       0, w},
      {"column strip", 0, h, std::min<int64_t>(1, w - 1),
       std::max<int64_t>(w - 1, std::min<int64_t>(2, w))},
      {"interior block", std::min<int64_t>(1, h - 1), std::min<int64_t>(3, h),
       std::min<int64_t>(2, w - 1), std::min<int64_t>(5, w)},
  };
  return tiles;
}

TEST_P(Conv2dFastVsReference, TileEqualsWholeMapBitForBit) {
  const ConvCase& c = GetParam();
  const Conv2dParams& p = c.params;
  const ConvData data = make_data(c, 2000);
  const Shape out_shape = output_shape(c);
  const Shape& in_shape = data.input.tensor.shape;
  const Placement in_whole = Placement::whole(in_shape);
  const Placement out_whole = Placement::whole(out_shape);
  const OwnedTensor reference =
      run_reference(p, data.input.tensor, in_whole, data, out_shape, out_whole);
  const OwnedTensor fast = run_fast(p, data.input.tensor, in_whole, data, out_shape, out_whole);

  for (const Tile& tile : tiles_of(out_shape)) {
    SCOPED_TRACE(std::string(tile.what) + ": output rows [" + std::to_string(tile.row_begin) +
                 ", " + std::to_string(tile.row_end) + ") cols [" + std::to_string(tile.col_begin) +
                 ", " + std::to_string(tile.col_end) + ")");
    ASSERT_LT(tile.row_begin, tile.row_end);
    ASSERT_LT(tile.col_begin, tile.col_end);
    const Span rows = input_span(tile.row_begin, tile.row_end, p.kernel_h, p.stride_h, p.pad_h,
                                 p.dilation_h, in_shape.h);
    const Span cols = input_span(tile.col_begin, tile.col_end, p.kernel_w, p.stride_w, p.pad_w,
                                 p.dilation_w, in_shape.w);
    if (rows.begin >= rows.end || cols.begin >= cols.end)
      continue;  // reads only padding (1x1 kernel, pad 1)
    const OwnedTensor in_tile =
        cut_tile(data.input.tensor, rows.begin, rows.end, cols.begin, cols.end);
    const Placement in_at{rows.begin, cols.begin, in_shape.h, in_shape.w};
    const Placement out_at{tile.row_begin, tile.col_begin, out_shape.h, out_shape.w};
    const Shape tile_shape = nchw(out_shape.n, out_shape.c, tile.row_end - tile.row_begin,
                                  tile.col_end - tile.col_begin);

    const OwnedTensor reference_tile =
        run_reference(p, in_tile.tensor, in_at, data, tile_shape, out_at);
    EXPECT_TRUE(bitwise_equal(
        cut_tile(reference.tensor, tile.row_begin, tile.row_end, tile.col_begin, tile.col_end)
            .values,
        reference_tile.values))
        << "reference tile vs reference whole map";

    const OwnedTensor fast_tile = run_fast(p, in_tile.tensor, in_at, data, tile_shape, out_at);
    EXPECT_TRUE(bitwise_equal(
        cut_tile(fast.tensor, tile.row_begin, tile.row_end, tile.col_begin, tile.col_end).values,
        fast_tile.values))
        << "fast tile vs fast whole map";
  }
}

ConvCase conv_case(const char* name, int64_t in_c, int64_t out_c, int64_t in_h, int64_t in_w,
                   const Conv2dParams& params, bool bias = true, int64_t batch = 1) {
  return ConvCase{name, batch, in_c, out_c, in_h, in_w, params, bias};
}

// conv2d_params(kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w,
// groups)
// clang-format off
const ConvCase kConvCases[] = {
    //        name                          in  out  h   w
    conv_case("k3_s1_p1",                    3,  8,  7,  9, conv2d_params(3, 3, 1, 1, 1, 1)),
    conv_case("k3_s1_p0_nobias",             2,  4,  7,  9, conv2d_params(3, 3, 1, 1, 0, 0), false),
    conv_case("k3_s2_p1_nobias",             4,  6, 13,  5, conv2d_params(3, 3, 2, 2, 1, 1), false),
    conv_case("k3_s3_p2",                    3,  5, 13, 11, conv2d_params(3, 3, 3, 3, 2, 2)),
    conv_case("k3_d2_p2",                    4,  4,  9,  7, conv2d_params(3, 3, 1, 1, 2, 2, 2, 2)),
    conv_case("k3_d2_s2_p1",                 3,  4, 13,  9, conv2d_params(3, 3, 2, 2, 1, 1, 2, 2)),
    conv_case("k3_groups2",                  4,  6,  7,  9, conv2d_params(3, 3, 1, 1, 1, 1, 1, 1, 2)),
    conv_case("k3_groups2_s2_nobias",        6,  4,  9,  9, conv2d_params(3, 3, 2, 2, 1, 1, 1, 1, 2), false),
    conv_case("depthwise_k3",                8,  8,  7,  9, conv2d_params(3, 3, 1, 1, 1, 1, 1, 1, 8)),
    conv_case("depthwise_k3_s2_nobias",      6,  6, 13,  5, conv2d_params(3, 3, 2, 2, 1, 1, 1, 1, 6), false),
    conv_case("depthwise_k5_d2_p4",          4,  4, 11,  9, conv2d_params(5, 5, 1, 1, 4, 4, 2, 2, 4)),
    conv_case("depthwise_k3_s3_p2",          5,  5, 13, 11, conv2d_params(3, 3, 3, 3, 2, 2, 1, 1, 5)),
    conv_case("depthwise_multiplier2",       3,  6,  7,  9, conv2d_params(3, 3, 1, 1, 1, 1, 1, 1, 3)),
    // Maps of many vectors: blocks of 8 vectors in flight, rows of several.
    conv_case("depthwise_k3_wide",           3,  3, 19, 37, conv2d_params(3, 3, 1, 1, 1, 1, 1, 1, 3)),
    conv_case("depthwise_k3_s2_wide",        3,  3, 21, 70, conv2d_params(3, 3, 2, 2, 1, 1, 1, 1, 3)),
    conv_case("pointwise",                  16,  8,  7,  9, conv2d_params(1, 1, 1, 1, 0, 0)),
    conv_case("pointwise_nobias",            5,  3, 13,  5, conv2d_params(1, 1, 1, 1, 0, 0), false),
    conv_case("pointwise_groups2",           8,  6,  7,  9, conv2d_params(1, 1, 1, 1, 0, 0, 1, 1, 2)),
    conv_case("pointwise_s2",                4,  4,  9,  9, conv2d_params(1, 1, 2, 2, 0, 0)),
    conv_case("pointwise_p1",                3,  2,  5,  6, conv2d_params(1, 1, 1, 1, 1, 1)),
    conv_case("map1x1_k3_p1",                8,  4,  1,  1, conv2d_params(3, 3, 1, 1, 1, 1)),
    conv_case("map1x1_pointwise",           16, 10,  1,  1, conv2d_params(1, 1, 1, 1, 0, 0)),
    conv_case("map1x1_depthwise",            4,  4,  1,  1, conv2d_params(3, 3, 1, 1, 1, 1, 1, 1, 4)),
    conv_case("k5_p2",                       3,  4, 13, 11, conv2d_params(5, 5, 1, 1, 2, 2)),
    conv_case("k5_s2_p0_nobias",             2,  3, 13, 13, conv2d_params(5, 5, 2, 2, 0, 0), false),
    conv_case("k3x1_p1x0",                   3,  4,  7,  9, conv2d_params(3, 1, 1, 1, 1, 0)),
    conv_case("k1x3_s1x2_p0x1",              3,  4,  7,  9, conv2d_params(1, 3, 1, 2, 0, 1)),
    conv_case("mixed_k3x5_s2x1_p1x2_d1x2",   4,  3, 13, 11, conv2d_params(3, 5, 2, 1, 1, 2, 1, 2)),
    // Patches of 576 and 864 values, 256 for the pointwise one: long sums.
    conv_case("wide_64to32_k3",             64, 32,  9, 11, conv2d_params(3, 3, 1, 1, 1, 1)),
    conv_case("wide_96to16_k3_s2",          96, 16, 13,  9, conv2d_params(3, 3, 2, 2, 1, 1)),
    conv_case("wide_pointwise_256to40",    256, 40,  7,  9, conv2d_params(1, 1, 1, 1, 0, 0)),
    // More output channels than positions, and a 40-position map: the GEMM's other loop order and its
    // vector, partial-vector and block paths.
    conv_case("many_channels_32to72_k3",    32, 72,  5,  5, conv2d_params(3, 3, 1, 1, 1, 1)),
    conv_case("positions_40_k3",             5, 13,  5,  8, conv2d_params(3, 3, 1, 1, 1, 1)),
    conv_case("batch2_k3_groups2",           4,  4,  7,  9, conv2d_params(3, 3, 2, 1, 1, 1, 1, 1, 2), true, 2),
    conv_case("batch2_depthwise",            3,  3,  5,  7, conv2d_params(3, 3, 1, 1, 1, 1, 1, 1, 3), true, 2),
    conv_case("batch2_pointwise",            6,  5,  5,  7, conv2d_params(1, 1, 1, 1, 0, 0), true, 2),
};
// clang-format on

INSTANTIATE_TEST_SUITE_P(Cases, Conv2dFastVsReference, ::testing::ValuesIn(kConvCases),
                         [](const ::testing::TestParamInfo<ConvCase>& info) {
                           return std::string(info.param.name);
                         });

// ---- tiles holding a channel range (channel-split plans) ----
// An output tile holds output channels [begin, end) of the layer (and maybe
// only some rows and columns); its input tile holds the input channels they
// read, or more. Each kernel's tile must equal the same channels, rows and
// columns of that kernel's whole-map result, bit for bit.

// Channels [channel_begin, channel_end), rows [row_begin, row_end) and columns
// [col_begin, col_end) of `whole`, as a tensor of their own.
OwnedTensor cut_block(const Tensor& whole, int64_t channel_begin, int64_t channel_end,
                      int64_t row_begin, int64_t row_end, int64_t col_begin, int64_t col_end) {
  OwnedTensor block(
      nchw(whole.shape.n, channel_end - channel_begin, row_end - row_begin, col_end - col_begin));
  for (int64_t n = 0; n < whole.shape.n; ++n)
    for (int64_t c = channel_begin; c < channel_end; ++c)
      for (int64_t y = row_begin; y < row_end; ++y)
        for (int64_t x = col_begin; x < col_end; ++x)
          block.tensor.at(n, c - channel_begin, y - row_begin, x - col_begin) =
              whole.at(n, c, y, x);
  return block;
}

struct ChannelRange {
  std::string what;
  int64_t begin, end;
};

// Output-channel ranges of a case: single channels at both ends, a middle
// run, all but the ends, and for grouped convolutions ranges that cross a
// group boundary, cover exactly one group, or sit inside one group.
std::vector<ChannelRange> output_channel_ranges(const ConvCase& c) {
  const int64_t channels = c.out_c, per_group = c.out_c / c.params.groups;
  std::vector<ChannelRange> candidates = {
      {"first channel", 0, 1},
      {"channels [3, 7)", 3, 7},
      {"last channel", channels - 1, channels},
      {"all but the first and last", 1, channels - 1},
      {"all channels", 0, channels},
  };
  if (c.params.groups > 1) {
    candidates.push_back({"crossing the first group boundary", per_group - 1, per_group + 1});
    candidates.push_back({"the second group exactly", per_group, 2 * per_group});
    candidates.push_back({"the second group's tail", per_group + 1, 2 * per_group});
    candidates.push_back({"strictly inside the second group", per_group + 1, 2 * per_group - 1});
    candidates.push_back({"from inside the first group to inside the last", per_group - 1,
                          channels - per_group + 1});
  }
  std::vector<ChannelRange> ranges;
  for (const ChannelRange& range : candidates)
    if (0 <= range.begin && range.begin < range.end && range.end <= channels)
      ranges.push_back(range);
  return ranges;
}

// Which input channels the input tile holds, for output channels [begin, end).
enum class InputChannels {
  exact,               // the channels of the groups those outputs belong to
  all_unmarked,        // all, full_channels 0
  all_marked,          // all, channel0 0, full_channels = IC
  from_zero,           // [0, the exact range's end)
  one_more_each_side,  // the exact range widened by a channel on each side (clipped)
};
constexpr InputChannels kInputChannelModes[] = {InputChannels::exact, InputChannels::all_unmarked,
                                                InputChannels::all_marked, InputChannels::from_zero,
                                                InputChannels::one_more_each_side};

const char* name_of(InputChannels mode) {
  switch (mode) {
    case InputChannels::exact:
      return "input: exactly the channels read";
    case InputChannels::all_unmarked:
      return "input: all channels, full_channels 0";
    case InputChannels::all_marked:
      return "input: all channels, full_channels IC";
    case InputChannels::from_zero:
      return "input: channels from 0 to the last read";
    case InputChannels::one_more_each_side:
      return "input: one more channel on each side";
  }
  return "?";
}

// The input channels output channels [out_begin, out_end) read: their groups'.
Span input_channels_read(const ConvCase& c, int64_t out_begin, int64_t out_end) {
  const int64_t in_per_group = c.in_c / c.params.groups;
  const int64_t out_per_group = c.out_c / c.params.groups;
  return {out_begin / out_per_group * in_per_group,
          ((out_end - 1) / out_per_group + 1) * in_per_group};
}

class Conv2dChannelRange : public ::testing::TestWithParam<ConvCase> {};

TEST_P(Conv2dChannelRange, TileEqualsWholeMapBitForBit) {
  const ConvCase& c = GetParam();
  const Conv2dParams& p = c.params;
  const ConvData data = make_data(c, 3000);
  const Shape out_shape = output_shape(c);
  const Shape& in_shape = data.input.tensor.shape;
  const Placement in_whole = Placement::whole(in_shape);
  const Placement out_whole = Placement::whole(out_shape);
  const OwnedTensor reference =
      run_reference(p, data.input.tensor, in_whole, data, out_shape, out_whole);
  const OwnedTensor fast = run_fast(p, data.input.tensor, in_whole, data, out_shape, out_whole);

  std::vector<Tile> tiles = {{"whole map", 0, out_shape.h, 0, out_shape.w}};
  for (const Tile& tile : tiles_of(out_shape)) tiles.push_back(tile);

  int64_t checked = 0;
  for (const ChannelRange& range : output_channel_ranges(c)) {
    const Span read = input_channels_read(c, range.begin, range.end);
    for (const InputChannels mode : kInputChannelModes) {
      Span held = read;
      int64_t full_channels = c.in_c;
      switch (mode) {
        case InputChannels::exact:
          break;
        case InputChannels::all_unmarked:
          held = {0, c.in_c};
          full_channels = 0;
          break;
        case InputChannels::all_marked:
          held = {0, c.in_c};
          break;
        case InputChannels::from_zero:
          held = {0, read.end};
          break;
        case InputChannels::one_more_each_side:
          held = {std::max<int64_t>(read.begin - 1, 0), std::min(read.end + 1, c.in_c)};
          break;
      }
      for (const Tile& tile : tiles) {
        SCOPED_TRACE("output channels " + range.what + " [" + std::to_string(range.begin) + ", " +
                     std::to_string(range.end) + "); " + name_of(mode) + " [" +
                     std::to_string(held.begin) + ", " + std::to_string(held.end) + "); " +
                     tile.what + ": output rows [" + std::to_string(tile.row_begin) + ", " +
                     std::to_string(tile.row_end) + ") cols [" + std::to_string(tile.col_begin) +
                     ", " + std::to_string(tile.col_end) + ")");
        const Span rows = input_span(tile.row_begin, tile.row_end, p.kernel_h, p.stride_h, p.pad_h,
                                     p.dilation_h, in_shape.h);
        const Span cols = input_span(tile.col_begin, tile.col_end, p.kernel_w, p.stride_w, p.pad_w,
                                     p.dilation_w, in_shape.w);
        ASSERT_LT(rows.begin, rows.end);
        ASSERT_LT(cols.begin, cols.end);
        const OwnedTensor in_tile = cut_block(data.input.tensor, held.begin, held.end, rows.begin,
                                              rows.end, cols.begin, cols.end);
        const Placement in_at{rows.begin, cols.begin, in_shape.h,
                              in_shape.w, held.begin, full_channels};
        const Placement out_at{tile.row_begin, tile.col_begin, out_shape.h,
                               out_shape.w,    range.begin,    out_shape.c};
        const Shape tile_shape = nchw(out_shape.n, range.end - range.begin,
                                      tile.row_end - tile.row_begin, tile.col_end - tile.col_begin);

        const OwnedTensor reference_tile =
            run_reference(p, in_tile.tensor, in_at, data, tile_shape, out_at);
        EXPECT_TRUE(
            bitwise_equal(cut_block(reference.tensor, range.begin, range.end, tile.row_begin,
                                    tile.row_end, tile.col_begin, tile.col_end)
                              .values,
                          reference_tile.values))
            << "reference tile vs reference whole map";

        // run_fast() sizes the scratch with the layer's totals and checks its guard.
        const OwnedTensor fast_tile = run_fast(p, in_tile.tensor, in_at, data, tile_shape, out_at);
        EXPECT_TRUE(bitwise_equal(cut_block(fast.tensor, range.begin, range.end, tile.row_begin,
                                            tile.row_end, tile.col_begin, tile.col_end)
                                      .values,
                                  fast_tile.values))
            << "fast tile vs fast whole map";
        ++checked;
      }
    }
  }
  EXPECT_GE(checked, 5 * 5 * 6);  // ranges x input modes x spatial tiles: the loops ran
}

// clang-format off
const ConvCase kChannelRangeCases[] = {
    //        name                          in  out  h   w
    conv_case("groups1_k3_p1",               5,  9,  9, 11, conv2d_params(3, 3, 1, 1, 1, 1)),
    conv_case("groups1_k3_s2_p1_nobias",     3,  8, 13,  9, conv2d_params(3, 3, 2, 2, 1, 1), false),
    conv_case("groups1_wide_32to24_k3",     32, 24,  9, 11, conv2d_params(3, 3, 1, 1, 1, 1)),
    conv_case("groups1_pointwise",          16, 10,  7,  9, conv2d_params(1, 1, 1, 1, 0, 0)),
    conv_case("groups2_k3_p1",               6,  8,  9, 11, conv2d_params(3, 3, 1, 1, 1, 1, 1, 1, 2)),
    conv_case("groups2_k3_s2_d2_nobias",     4, 10, 13, 11, conv2d_params(3, 3, 2, 2, 2, 2, 2, 2, 2), false),
    conv_case("groups2_pointwise",           8, 12,  7,  9, conv2d_params(1, 1, 1, 1, 0, 0, 1, 1, 2)),
    conv_case("groups4_k3_p1",               8, 12,  9, 11, conv2d_params(3, 3, 1, 1, 1, 1, 1, 1, 4)),
    conv_case("groups4_k5_s2_p2",           12, 16, 13, 11, conv2d_params(5, 5, 2, 2, 2, 2, 1, 1, 4)),
    conv_case("depthwise_k3",                8,  8,  9, 11, conv2d_params(3, 3, 1, 1, 1, 1, 1, 1, 8)),
    conv_case("depthwise_k3_s2_nobias",      9,  9, 13,  9, conv2d_params(3, 3, 2, 2, 1, 1, 1, 1, 9), false),
    conv_case("depthwise_pointwise",         8,  8,  7,  9, conv2d_params(1, 1, 1, 1, 0, 0, 1, 1, 8)),
    conv_case("depthwise_multiplier2_k3",    4,  8,  9, 11, conv2d_params(3, 3, 1, 1, 1, 1, 1, 1, 4)),
    conv_case("depthwise_multiplier2_s2",    5, 10, 13,  9, conv2d_params(3, 3, 2, 2, 1, 1, 1, 1, 5), false),
    conv_case("batch2_groups2_k3",           6,  8,  7,  9, conv2d_params(3, 3, 1, 1, 1, 1, 1, 1, 2), true, 2),
    conv_case("batch2_depthwise_k3",         8,  8,  7,  9, conv2d_params(3, 3, 1, 1, 1, 1, 1, 1, 8), true, 2),
};
// clang-format on

INSTANTIATE_TEST_SUITE_P(Cases, Conv2dChannelRange, ::testing::ValuesIn(kChannelRangeCases),
                         [](const ::testing::TestParamInfo<ConvCase>& info) {
                           return std::string(info.param.name);
                         });

TEST(Conv2dScratchBytes, ChannelRangeTilesUseTheLayersTotals) {
  // groups 2, IC 6 -> OC 8, k3: im2col holds IC/groups = 3 channels' patches,
  // whatever channels the tiles hold: 3 * 9 * OH * OW floats.
  const Conv2dParams grouped = conv2d_params(3, 3, 1, 1, 1, 1, 1, 1, 2);
  EXPECT_EQ(conv2d_scratch_bytes(grouped, nchw(1, 3, 5, 6), nchw(1, 2, 3, 4), 6, 8),
            uint64_t{3 * 9 * 3 * 4 * 4});
  // Depthwise (groups = IC = OC) needs none, even for a tile of a few channels.
  const Conv2dParams depthwise_conv = conv2d_params(3, 3, 1, 1, 1, 1, 1, 1, 8);
  EXPECT_EQ(conv2d_scratch_bytes(depthwise_conv, nchw(1, 3, 5, 6), nchw(1, 3, 3, 4), 8, 8), 0u);
  // Depthwise with multiplier 2 (groups = IC = 4, OC 8) is a grouped GEMM: 1 * 9 * OH * OW.
  const Conv2dParams multiplier2 = conv2d_params(3, 3, 1, 1, 1, 1, 1, 1, 4);
  EXPECT_EQ(conv2d_scratch_bytes(multiplier2, nchw(1, 1, 5, 6), nchw(1, 2, 3, 4), 4, 8),
            uint64_t{9 * 3 * 4 * 4});
}

// ---- hand-computed cases, each run through both kernels ----

// Runs both kernels on the whole map and checks each against `expected`
// (row-major NCHW) exactly: every value here is a small integer sum.
void expect_both_kernels(const Conv2dParams& p, const OwnedTensor& in,
                         const std::vector<float>& weight, const std::vector<float>& bias,
                         const Shape& out_shape, const std::vector<float>& expected) {
  ASSERT_EQ(out_shape.h,
            window_output_size(in.tensor.shape.h, p.kernel_h, p.stride_h, p.pad_h, p.dilation_h));
  ASSERT_EQ(out_shape.w,
            window_output_size(in.tensor.shape.w, p.kernel_w, p.stride_w, p.pad_w, p.dilation_w));
  const ConvData data{OwnedTensor(in.tensor.shape, in.values), weight, bias};
  const Placement in_at = Placement::whole(in.tensor.shape);
  const Placement out_at = Placement::whole(out_shape);
  {
    SCOPED_TRACE("conv2d_reference");
    testing::expect_values(
        expected, run_reference(p, data.input.tensor, in_at, data, out_shape, out_at).tensor);
  }
  {
    SCOPED_TRACE("conv2d");
    testing::expect_values(expected,
                           run_fast(p, data.input.tensor, in_at, data, out_shape, out_at).tensor);
  }
}

// Input 3x3 = [[1,2,3],[4,5,6],[7,8,9]]; kernel 2x2 = [[1,2],[3,4]].
const std::vector<float> kInput3x3 = {1, 2, 3, 4, 5, 6, 7, 8, 9};
const std::vector<float> kKernel2x2 = {1, 2, 3, 4};

TEST(Conv2dByHand, Kernel2x2NoPadding) {
  // out(0,0) = 1*1 + 2*2 + 4*3 + 5*4 = 37;  out(0,1) = 2*1 + 3*2 + 5*3 + 6*4 = 47
  // out(1,0) = 4*1 + 5*2 + 7*3 + 8*4 = 67;  out(1,1) = 5*1 + 6*2 + 8*3 + 9*4 = 77
  // (one channel in and out: conv2d() takes its depthwise path)
  expect_both_kernels(conv2d_params(2, 2, 1, 1, 0, 0), OwnedTensor(nchw(1, 1, 3, 3), kInput3x3),
                      kKernel2x2, {}, nchw(1, 1, 2, 2), {37, 47, 67, 77});
}

TEST(Conv2dByHand, Kernel2x2NoPaddingTwoOutputChannels) {
  // The same, plus a second output channel with the negated kernel and bias 100
  // (two output channels: conv2d() takes its im2col + GEMM path).
  std::vector<float> weight = kKernel2x2;
  for (float value : kKernel2x2) weight.push_back(-value);
  expect_both_kernels(conv2d_params(2, 2, 1, 1, 0, 0), OwnedTensor(nchw(1, 1, 3, 3), kInput3x3),
                      weight, {0, 100}, nchw(1, 2, 2, 2), {37, 47, 67, 77, 63, 53, 33, 23});
}

TEST(Conv2dByHand, Kernel2x2WithBias) {
  expect_both_kernels(conv2d_params(2, 2, 1, 1, 0, 0), OwnedTensor(nchw(1, 1, 3, 3), kInput3x3),
                      kKernel2x2, {0.5f}, nchw(1, 1, 2, 2), {37.5f, 47.5f, 67.5f, 77.5f});
}

TEST(Conv2dByHand, Kernel2x2Stride2Pad1) {
  // Output 2x2: (3 + 2 - 1 - 1) / 2 + 1 = 2. Windows start at input row/col -1 and 1.
  // out(0,0): only input (0,0) is inside, under kernel (1,1):  1*4 = 4
  // out(0,1): input row 0, cols 1..2 under kernel row 1:       2*3 + 3*4 = 18
  // out(1,0): input rows 1..2, col 0 under kernel col 1:       4*2 + 7*4 = 36
  // out(1,1): input rows 1..2, cols 1..2, whole kernel:        5 + 12 + 24 + 36 = 77
  expect_both_kernels(conv2d_params(2, 2, 2, 2, 1, 1), OwnedTensor(nchw(1, 1, 3, 3), kInput3x3),
                      kKernel2x2, {}, nchw(1, 1, 2, 2), {4, 18, 36, 77});
  // Second output channel with the negated kernel: the GEMM path sees the same padding.
  std::vector<float> weight = kKernel2x2;
  for (float value : kKernel2x2) weight.push_back(-value);
  expect_both_kernels(conv2d_params(2, 2, 2, 2, 1, 1), OwnedTensor(nchw(1, 1, 3, 3), kInput3x3),
                      weight, {}, nchw(1, 2, 2, 2), {4, 18, 36, 77, -4, -18, -36, -77});
}

TEST(Conv2dByHand, Kernel2x2Dilation2) {
  // Effective kernel 3x3: taps at input (0,0), (0,2), (2,0), (2,2).
  // 1*1 + 3*2 + 7*3 + 9*4 = 64
  expect_both_kernels(conv2d_params(2, 2, 1, 1, 0, 0, 2, 2),
                      OwnedTensor(nchw(1, 1, 3, 3), kInput3x3), kKernel2x2, {}, nchw(1, 1, 1, 1),
                      {64});
}

TEST(Conv2dByHand, Kernel3x3Pad1SumsNeighbours) {
  // An all-ones 3x3 kernel with padding 1 sums each pixel's 3x3 neighbourhood.
  // Corner (0,0): 1+2+4+5 = 12; edge (0,1): 1+2+3+4+5+6 = 21; centre: 45.
  expect_both_kernels(conv2d_params(3, 3, 1, 1, 1, 1), OwnedTensor(nchw(1, 1, 3, 3), kInput3x3),
                      std::vector<float>(9, 1.0f), {}, nchw(1, 1, 3, 3),
                      {12, 21, 16, 27, 45, 33, 24, 39, 28});
}

TEST(Conv2dByHand, PointwiseMixesChannels) {
  // Weight [OC=2, IC=2, 1, 1] = [[1, 10], [100, 1000]]: out0 = in0 + 10*in1, out1 = 100*in0 +
  // 1000*in1. in0 = [1, 2, 3, 4], in1 = [5, 6, 7, 8]; bias [0.25, -1].
  expect_both_kernels(conv2d_params(1, 1, 1, 1, 0, 0),
                      OwnedTensor(nchw(1, 2, 2, 2), {1, 2, 3, 4, 5, 6, 7, 8}), {1, 10, 100, 1000},
                      {0.25f, -1.0f}, nchw(1, 2, 2, 2),
                      {51.25f, 62.25f, 73.25f, 84.25f, 5099, 6199, 7299, 8399});
}

TEST(Conv2dByHand, GroupsKeepChannelsApart) {
  // groups 2, weight [OC=4, IC/groups=1, 1, 2]: out c reads input channel c / 2 only.
  // in0 = [[1, 2, 3]], in1 = [[10, 20, 30]] (1x3 maps), kernel 1x2.
  // out0 = 1*x0 + 0*x1 of in0 -> [1, 2];   out1 = 0*x0 + 1*x1 of in0 -> [2, 3]
  // out2 = 1*x0 + 1*x1 of in1 -> [30, 50]; out3 = 2*x0 - 1*x1 of in1 -> [0, 10]
  expect_both_kernels(conv2d_params(1, 2, 1, 1, 0, 0, 1, 1, 2),
                      OwnedTensor(nchw(1, 2, 1, 3), {1, 2, 3, 10, 20, 30}),
                      {1, 0, 0, 1, 1, 1, 2, -1}, {}, nchw(1, 4, 1, 2), {1, 2, 2, 3, 30, 50, 0, 10});
}

TEST(Conv2dByHand, DepthwiseScalesEachChannel) {
  // groups = C = 2, 1x1 kernels [2] and [-3], bias [1, 0].
  expect_both_kernels(conv2d_params(1, 1, 1, 1, 0, 0, 1, 1, 2),
                      OwnedTensor(nchw(1, 2, 2, 2), {1, 2, 3, 4, 5, 6, 7, 8}), {2, -3}, {1, 0},
                      nchw(1, 2, 2, 2), {3, 5, 7, 9, -15, -18, -21, -24});
}

TEST(Conv2dByHand, DepthwiseKernel3x1Pad1) {
  // One channel, kernel 3x1 = [1, 2, 3] (top to bottom), padding (1, 0), stride 1.
  // Column [1, 4, 7]: out row 0 = 0*1 + 1*2 + 4*3 = 14; row 1 = 1 + 8 + 21 = 30; row 2 = 4 + 14 + 0
  // = 18.
  Conv2dParams p = conv2d_params(3, 1, 1, 1, 1, 0, 1, 1, 1);
  expect_both_kernels(p, OwnedTensor(nchw(1, 1, 3, 3), kInput3x3), {1, 2, 3}, {}, nchw(1, 1, 3, 3),
                      {14, 19, 24, 30, 36, 42, 18, 21, 24});
}

// ---- output size: PyTorch's Conv2d formula ----
// out = floor((in + 2*pad - dilation*(kernel-1) - 1) / stride) + 1

TEST(WindowOutputSize, MatchesPyTorchConv2dFormula) {
  EXPECT_EQ(window_output_size(7, 3, 1, 1, 1), 7);      // (7+2-2-1)/1+1
  EXPECT_EQ(window_output_size(7, 3, 1, 0, 1), 5);      // (7-2-1)/1+1
  EXPECT_EQ(window_output_size(13, 3, 2, 1, 1), 7);     // 12/2+1
  EXPECT_EQ(window_output_size(13, 3, 3, 2, 1), 5);     // floor(14/3)+1
  EXPECT_EQ(window_output_size(9, 3, 1, 2, 2), 9);      // (9+4-4-1)/1+1
  EXPECT_EQ(window_output_size(13, 3, 2, 1, 2), 6);     // (13+2-4-1)/2+1 = 10/2+1
  EXPECT_EQ(window_output_size(224, 7, 2, 3, 1), 112);  // ResNet stem: floor(223/2)+1
  EXPECT_EQ(window_output_size(1, 3, 1, 1, 1), 1);
  EXPECT_EQ(window_output_size(5, 5, 2, 0, 1), 1);  // the window fits exactly once
  EXPECT_EQ(window_output_size(6, 1, 2, 0, 1), 3);  // floor(5/2)+1
  EXPECT_EQ(window_output_size(8, 2, 2, 0, 1), 4);
}

TEST(Conv2dScratchBytes, ZeroForPointwiseAndDepthwise) {
  EXPECT_EQ(
      conv2d_scratch_bytes(conv2d_params(1, 1, 1, 1, 0, 0), nchw(1, 16, 7, 9), nchw(1, 8, 7, 9)),
      0u);
  EXPECT_EQ(conv2d_scratch_bytes(conv2d_params(3, 3, 1, 1, 1, 1, 1, 1, 8), nchw(1, 8, 7, 9),
                                 nchw(1, 8, 7, 9)),
            0u);
}

TEST(Conv2dScratchBytes, BandForMapsWideEnoughElseIm2col) {
  const auto whole_vectors = [](int64_t floats) { return (floats + 15) / 16 * 16; };
  // 3x3 stride 1 on 7x9 outputs: band rows 11 wide (9 + 2), under a quarter
  // of them padding. Positions come in vectors of 16 floats. All 7 output rows make one band (under
  // 128 positions): 27 column offsets (int64: 2 floats each), 3 planes of 9 x 11 plus one vector,
  // and the staging [8 channels, 6 * 11 + 9 positions in vectors].
  EXPECT_EQ(
      conv2d_scratch_bytes(conv2d_params(3, 3, 1, 1, 1, 1), nchw(1, 3, 7, 9), nchw(1, 8, 7, 9)),
      uint64_t(2 * 27 + 3 * 9 * 11 + 16 + 8 * whole_vectors(6 * 11 + 9)) * 4);
  // Stride 2, groups 2: a group's 3 channels in 2 x 2 stride phases, each
  // plane 5 + 1 rows of 5 + 1 columns; the staging holds one group's 2
  // output channels.
  EXPECT_EQ(conv2d_scratch_bytes(conv2d_params(3, 3, 2, 2, 1, 1, 1, 1, 2), nchw(1, 6, 9, 9),
                                 nchw(1, 4, 5, 5)),
            uint64_t(2 * 27 + 3 * 4 * 6 * 6 + 16 + 2 * whole_vectors(4 * 6 + 5)) * 4);
  // A 2-column output would pay 2 padding columns per row: im2col holds one
  // group's patches, (IC/groups * KH * KW) x (OH * OW) floats.
  EXPECT_EQ(
      conv2d_scratch_bytes(conv2d_params(3, 3, 1, 1, 1, 1), nchw(1, 3, 7, 2), nchw(1, 8, 7, 2)),
      uint64_t{3 * 9 * 7 * 2 * 4});
}

}  // namespace
}  // namespace splitinfer
