// conv2d_q() and linear_q(), the fast int8 kernels, and conv2d_q_portable()
// and linear_q_portable(), what they run without AVX512-VNNI, against the
// plain reference kernels on seeded random data: EXACT equality, byte for
// byte (every sum is an exact int32, so the order of the products cannot
// matter). Likewise quantize() and add_q(). Over the whole map, and over output tiles (rows,
// columns, output channel ranges) computed from input tiles with their halos, as the distributed
// engine cuts them. The tensors sit against inaccessible pages, so a kernel reading or writing past
// either end of one crashes the test.
#include "ops/quantized.hpp"

#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <ostream>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "test_util.hpp"

namespace splitinfer {
namespace {

using testing::conv2d_params;
using testing::input_span;
using testing::nchw;
using testing::pool_params;
using testing::Span;

// ---- memory fenced by inaccessible pages ----

enum class Fence { after, before };  // which end of the bytes touches the guard page

// `size` bytes whose last byte (Fence::after) or first byte (Fence::before)
// is next to a PROT_NONE page: any access one byte beyond that end faults.
class FencedBytes {
 public:
  FencedBytes(size_t size, Fence fence) : size_(size) {
    const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    const size_t body = (std::max<size_t>(size, 1) + page - 1) / page * page;
    mapped_bytes_ = body + 2 * page;
    void* mapped =
        mmap(nullptr, mapped_bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    EXPECT_NE(mapped, MAP_FAILED);
    mapped_ = static_cast<uint8_t*>(mapped);
    EXPECT_EQ(mprotect(mapped_, page, PROT_NONE), 0);
    EXPECT_EQ(mprotect(mapped_ + page + body, page, PROT_NONE), 0);
    data_ = fence == Fence::before ? mapped_ + page : mapped_ + page + body - size;
  }
  ~FencedBytes() { munmap(mapped_, mapped_bytes_); }
  FencedBytes(const FencedBytes&) = delete;
  FencedBytes& operator=(const FencedBytes&) = delete;

  uint8_t* data() { return data_; }
  template <class T>
  T* as() {
    return reinterpret_cast<T*>(data_);
  }
  size_t size() const { return size_; }

 private:
  size_t size_ = 0, mapped_bytes_ = 0;
  uint8_t* mapped_ = nullptr;
  uint8_t* data_ = nullptr;
};

// ---- cases ----

struct QConvCase {
  const char* name;
  int64_t in_c = 1, out_c = 1, in_h = 1, in_w = 1;
  Conv2dParams params;
  bool per_channel = false;
  bool weight_zero_points = false;  // nonzero weight zero points
  int32_t clamp_lo = 0, clamp_hi = 255;
  bool bias = true;
};

void PrintTo(const QConvCase& c, std::ostream* os) { *os << c.name; }

Shape output_shape(const QConvCase& c) {
  const Conv2dParams& p = c.params;
  return nchw(1, c.out_c, window_output_size(c.in_h, p.kernel_h, p.stride_h, p.pad_h, p.dilation_h),
              window_output_size(c.in_w, p.kernel_w, p.stride_w, p.pad_w, p.dilation_w));
}

// One layer's int8 data: input [1, IC, H, W] quint8, weights [OC, IC/groups,
// KH, KW] int8, int32 bias, weight scales and zero points (1 or OC), and
// scales chosen so that outputs spread over [0, 255] rather than saturate.
struct QConvData {
  std::vector<uint8_t> input;
  std::vector<int8_t> weight;
  std::vector<int32_t> bias, zero_point;
  std::vector<float> scale;
  QuantizedLayer layer;
  int64_t depth = 0;  // weights per output channel
};

QConvData make_data(const QConvCase& c, Requantization mode, uint32_t seed) {
  const Conv2dParams& p = c.params;
  std::mt19937 generator(seed);
  const auto uniform = [&](int low, int high) {
    return std::uniform_int_distribution<int>(low, high)(generator);
  };
  QConvData data;
  data.depth = c.in_c / p.groups * p.kernel_h * p.kernel_w;
  data.input.resize(static_cast<size_t>(c.in_c * c.in_h * c.in_w));
  for (uint8_t& value : data.input) value = static_cast<uint8_t>(uniform(0, 255));
  data.weight.resize(static_cast<size_t>(c.out_c * data.depth));
  for (int8_t& value : data.weight) value = static_cast<int8_t>(uniform(-128, 127));
  const size_t channels = c.per_channel ? static_cast<size_t>(c.out_c) : 1;
  for (size_t i = 0; i < channels; ++i) {
    data.scale.push_back(0.01f * (0.5f + static_cast<float>(uniform(0, 1000)) / 1000.0f));
    data.zero_point.push_back(c.weight_zero_points ? uniform(-30, 30) : 0);
  }
  // Zero points near the middle of the ranges (the extremes are
  // ExtremeZeroPointsMatchTheReference's): |x - x_zp| and |w - w_zp| average ~75: a sum of `depth`
  // products spreads ~5500 * sqrt(depth); the output scale maps that to ~60 steps.
  const float spread = 5500.0f * std::sqrt(static_cast<float>(data.depth));
  if (c.bias)
    for (int64_t i = 0; i < c.out_c; ++i)
      data.bias.push_back(uniform(-static_cast<int>(spread), static_cast<int>(spread)));
  data.layer.in = {QuantParams{0.05f, uniform(90, 170)}};
  data.layer.out = QuantParams{0.05f * 0.01f * spread / 60.0f, uniform(60, 200)};
  data.layer.clamp_lo = c.clamp_lo;
  data.layer.clamp_hi = c.clamp_hi;
  data.layer.mode = mode;
  return data;
}

// The weights of output channels from `first` on.
QuantizedWeights weights_from(const QConvData& data, bool per_channel, int64_t first) {
  QuantizedWeights w;
  w.weight = data.weight.data() + first * data.depth;
  w.bias = data.bias.empty() ? nullptr : data.bias.data() + first;
  w.per_channel = per_channel;
  w.scale = data.scale.data() + (per_channel ? first : 0);
  w.zero_point = data.zero_point.data() + (per_channel ? first : 0);
  return w;
}

using ConvKernel = void (*)(const QuantizedLayer&, const Conv2dParams&, const Tensor&,
                            const Placement&, const QuantizedWeights&, Tensor&, const Placement&);

struct NamedKernel {
  const char* name;
  ConvKernel kernel;
};
const NamedKernel kFastKernels[] = {{"conv2d_q", conv2d_q},
                                    {"conv2d_q_portable", conv2d_q_portable}};

// Channels [c0, c1), rows [y0, y1), columns [x0, x1) of a [C, H, W] byte map.
std::vector<uint8_t> cut(const std::vector<uint8_t>& map, int64_t height, int64_t width,
                         const Region& r) {
  std::vector<uint8_t> part;
  for (int64_t c = r.c0; c < r.c1; ++c)
    for (int64_t y = r.y0; y < r.y1; ++y)
      for (int64_t x = r.x0; x < r.x1; ++x) part.push_back(map[(c * height + y) * width + x]);
  return part;
}

// Runs `kernel` on input tile `in_region` of the whole input (placed with
// full_channels `full_channels`) for output tile `out_region`; weights,
// input and output each against a guard page at `fence`'s end. The output
// starts filled with `fill`.
std::vector<uint8_t> run(ConvKernel kernel, const QConvCase& c, const QConvData& data,
                         const Region& in_region, int64_t full_channels, const Region& out_region,
                         Fence fence, uint8_t fill = 0xa5) {
  const Shape out_whole = output_shape(c);
  const Shape in_shape = in_region.shape(nchw(1, c.in_c, c.in_h, c.in_w));
  const Shape out_shape = out_region.shape(out_whole);
  const std::vector<uint8_t> in_bytes = cut(data.input, c.in_h, c.in_w, in_region);
  FencedBytes input(in_bytes.size(), fence),
      output(static_cast<size_t>(out_shape.elements()), fence);
  std::copy(in_bytes.begin(), in_bytes.end(), input.data());
  std::fill(output.data(), output.data() + output.size(), fill);
  // The tile's weights, fenced too: from its first output channel to its last.
  const int64_t channels = out_region.c1 - out_region.c0;
  FencedBytes weight(static_cast<size_t>(channels * data.depth), fence);
  std::memcpy(weight.data(), data.weight.data() + out_region.c0 * data.depth, weight.size());
  QuantizedWeights w = weights_from(data, c.per_channel, out_region.c0);
  w.weight = weight.as<int8_t>();
  const Tensor in{in_shape, DType::u8, input.data()};
  Tensor out{out_shape, DType::u8, output.data()};
  Placement in_at = in_region.placement(nchw(1, c.in_c, c.in_h, c.in_w));
  in_at.full_channels = full_channels;
  kernel(data.layer, c.params, in, in_at, w, out, out_region.placement(out_whole));
  return std::vector<uint8_t>(output.data(), output.data() + output.size());
}

// Byte-for-byte equality, naming the first difference.
::testing::AssertionResult same_bytes(const std::vector<uint8_t>& expected,
                                      const std::vector<uint8_t>& actual) {
  if (expected.size() != actual.size())
    return ::testing::AssertionFailure()
           << "sizes differ: " << expected.size() << " vs " << actual.size();
  int64_t differing = 0, first = -1;
  for (size_t i = 0; i < expected.size(); ++i)
    if (expected[i] != actual[i]) first = first < 0 ? static_cast<int64_t>(i) : first, ++differing;
  if (differing == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << differing << " of " << expected.size() << " bytes differ; first at " << first
         << ": expected " << int{expected[first]} << ", got " << int{actual[first]};
}

// The input region output region `out` reads: its rows' and columns' exact
// halo (clipped to the map), its output channels' groups.
Region input_region(const QConvCase& c, const Region& out) {
  const Conv2dParams& p = c.params;
  const Span rows =
      input_span(out.y0, out.y1, p.kernel_h, p.stride_h, p.pad_h, p.dilation_h, c.in_h);
  const Span cols =
      input_span(out.x0, out.x1, p.kernel_w, p.stride_w, p.pad_w, p.dilation_w, c.in_w);
  const int64_t in_per_group = c.in_c / p.groups, out_per_group = c.out_c / p.groups;
  return {out.c0 / out_per_group * in_per_group,
          ((out.c1 - 1) / out_per_group + 1) * in_per_group,
          rows.begin,
          rows.end,
          cols.begin,
          cols.end};
}

using QConvParam = std::tuple<QConvCase, Requantization>;

class QuantizedConv : public ::testing::TestWithParam<QConvParam> {};

TEST_P(QuantizedConv, WholeMapEqualsReference) {
  const auto& [c, mode] = GetParam();
  const QConvData data = make_data(c, mode, 100);
  const Shape out_shape = output_shape(c);
  ASSERT_GT(out_shape.elements(), 0);
  const Region in_whole = Region::whole(nchw(1, c.in_c, c.in_h, c.in_w));
  const Region out_whole = Region::whole(out_shape);
  const std::vector<uint8_t> reference =
      run(conv2d_q_reference, c, data, in_whole, c.in_c, out_whole, Fence::after);
  // The data exercise the arithmetic: outputs spread over many values (not
  // all clamped), unless the case clamps to a narrow range or has few outputs.
  const std::set<uint8_t> distinct(reference.begin(), reference.end());
  const int64_t expected_distinct =
      std::min<int64_t>({16, c.clamp_hi - c.clamp_lo + 1, out_shape.elements() / 4 + 1});
  EXPECT_GE(static_cast<int64_t>(distinct.size()), expected_distinct);
  for (const NamedKernel& fast : kFastKernels) {
    SCOPED_TRACE(fast.name);
    for (const Fence fence : {Fence::after, Fence::before})
      for (const uint8_t fill : {uint8_t{0x00}, uint8_t{0xff}})  // every element written
        EXPECT_TRUE(same_bytes(
            reference, run(fast.kernel, c, data, in_whole, c.in_c, out_whole, fence, fill)));
  }
}

// Output tiles: rows, columns and channel ranges, each computed from its
// input tile (exact halo, or the exact halo plus a margin of one row and
// column where the map has it, or all input channels).
TEST_P(QuantizedConv, TilesEqualTheReferenceWholeMap) {
  const auto& [c, mode] = GetParam();
  const QConvData data = make_data(c, mode, 200);
  const Shape out_shape = output_shape(c);
  const Region out_whole = Region::whole(out_shape);
  const std::vector<uint8_t> reference =
      run(conv2d_q_reference, c, data, Region::whole(nchw(1, c.in_c, c.in_h, c.in_w)), c.in_c,
          out_whole, Fence::after);
  const int64_t h = out_shape.h, w = out_shape.w, channels = c.out_c;
  const int64_t out_per_group = c.out_c / c.params.groups;
  const std::vector<Region> spatial = {
      {0, 0, h / 2, h, w / 2, w},                    // bottom-right quarter
      {0, 0, h - 1, h, w - 1, w},                    // the last element
      {0, 0, 0, std::max<int64_t>(1, h / 3), 0, w},  // top rows
      {0, 0, 0, h, std::min<int64_t>(1, w - 1), w},  // all but the first column
      {0, 0, h / 3, std::max(h / 3 + 1, 2 * h / 3), w / 3, std::max(w / 3 + 1, 2 * w / 3)},
  };
  std::vector<Span> channel_ranges = {{0, channels}, {channels - 1, channels}, {0, 1}};
  if (channels > 6) channel_ranges.push_back({3, channels - 2});
  if (c.params.groups > 1 && out_per_group > 1)
    channel_ranges.push_back({out_per_group - 1, out_per_group + 1});  // across a group boundary
  int64_t checked = 0;
  for (const Span& range : channel_ranges) {
    for (Region out : spatial) {
      out.c0 = range.begin, out.c1 = range.end;
      const Region exact = input_region(c, out);
      const Region margin = exact.bounding(
          {exact.c0, exact.c1, std::max<int64_t>(exact.y0 - 1, 0), std::min(exact.y1 + 1, c.in_h),
           std::max<int64_t>(exact.x0 - 1, 0), std::min(exact.x1 + 1, c.in_w)});
      const Region all_channels{0, c.in_c, exact.y0, exact.y1, exact.x0, exact.x1};
      const std::vector<uint8_t> expected = cut(reference, h, w, out);
      for (const auto& [what, in, full_channels] :
           {std::tuple{"exact halo", exact, c.in_c}, std::tuple{"halo and margin", margin, c.in_c},
            std::tuple{"all input channels, full_channels 0", all_channels, int64_t{0}}}) {
        SCOPED_TRACE(std::string(what) + ": output " + out.str() + " from input " + in.str());
        if (in.empty()) continue;  // reads only padding (a 1x1 kernel over a pad)
        for (const NamedKernel& fast : kFastKernels) {
          SCOPED_TRACE(fast.name);
          for (const Fence fence : {Fence::after, Fence::before})
            EXPECT_TRUE(
                same_bytes(expected, run(fast.kernel, c, data, in, full_channels, out, fence)));
        }
        ++checked;
      }
    }
  }
  EXPECT_GE(checked, 3 * 5 * 3 - 15);  // ranges x tiles x inputs (some tiles read only padding)
}

QConvCase conv_case(const char* name, int64_t in_c, int64_t out_c, int64_t in_h, int64_t in_w,
                    const Conv2dParams& params) {
  QConvCase c;
  c.name = name, c.in_c = in_c, c.out_c = out_c, c.in_h = in_h, c.in_w = in_w, c.params = params;
  return c;
}
QConvCase per_channel(QConvCase c) { return c.per_channel = true, c; }
QConvCase weight_zero_points(QConvCase c) { return c.weight_zero_points = true, c; }
QConvCase no_bias(QConvCase c) { return c.bias = false, c; }
QConvCase clamped(QConvCase c, int32_t lo, int32_t hi) {
  return c.clamp_lo = lo, c.clamp_hi = hi, c;
}

// conv2d_params(kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w,
// groups) Channel counts avoid multiples of 4, 16 and 64 where they can; maps wider than 64 columns
// and planes of several 64-position blocks take every block, segment and tail path of the VNNI
// kernels.
// clang-format off
const QConvCase kCases[] = {
    //                  name                        in   out   h    w
    conv_case(          "pointwise",                 37,  19,  9,  11, conv2d_params(1, 1, 1, 1, 0, 0)),
    per_channel(conv_case("pointwise_per_channel",   19,  45, 13,  17, conv2d_params(1, 1, 1, 1, 0, 0))),
    weight_zero_points(per_channel(
        conv_case(      "pointwise_zero_points",     21,  13, 11,  15, conv2d_params(1, 1, 1, 1, 0, 0)))),
    weight_zero_points(
        conv_case(      "pointwise_per_tensor_zp",    6,   7,  8,   9, conv2d_params(1, 1, 1, 1, 0, 0))),
    conv_case(          "pointwise_depth_1",          1,   9, 10,  13, conv2d_params(1, 1, 1, 1, 0, 0)),
    conv_case(          "pointwise_wide_300",       300,  11,  5,   7, conv2d_params(1, 1, 1, 1, 0, 0)),
    per_channel(conv_case("pointwise_deep_1100",   1100,  14, 11,  9, conv2d_params(1, 1, 1, 1, 0, 0))),
    per_channel(conv_case("pointwise_300_channels",  13, 300,  3,   5, conv2d_params(1, 1, 1, 1, 0, 0))),
    clamped(conv_case(  "pointwise_relu6_clamp",     24,  10, 12,  12, conv2d_params(1, 1, 1, 1, 0, 0)), 100, 140),
    conv_case(          "pointwise_groups3",         12,   9,  7,   9, conv2d_params(1, 1, 1, 1, 0, 0, 1, 1, 3)),
    no_bias(conv_case(  "pointwise_s2",              10,   6, 13,  11, conv2d_params(1, 1, 2, 2, 0, 0))),
    conv_case(          "pointwise_p1",               5,   3,  6,   7, conv2d_params(1, 1, 1, 1, 1, 1)),
    conv_case(          "k3_s1_p1",                   3,   8,  7,   9, conv2d_params(3, 3, 1, 1, 1, 1)),
    weight_zero_points(per_channel(
        conv_case(      "k3_s1_p1_zero_points",      13,  11, 19,  23, conv2d_params(3, 3, 1, 1, 1, 1)))),
    conv_case(          "k3_s1_p1_70_wide",           5,   7,  9,  70, conv2d_params(3, 3, 1, 1, 1, 1)),
    no_bias(conv_case(  "k3_s1_p0",                   2,   5,  7,   9, conv2d_params(3, 3, 1, 1, 0, 0))),
    conv_case(          "k3_s2_p1_stem",              3,  17, 33,  31, conv2d_params(3, 3, 2, 2, 1, 1)),
    per_channel(conv_case("k3_s2_p1_150_wide",        3,   6,  7, 150, conv2d_params(3, 3, 2, 2, 1, 1))),
    weight_zero_points(
        conv_case(      "k3_s2_p1_zero_points",      17,   9, 15,  21, conv2d_params(3, 3, 2, 2, 1, 1))),
    conv_case(          "k3_s3_p2",                   3,   5, 13,  11, conv2d_params(3, 3, 3, 3, 2, 2)),
    conv_case(          "k3_d2_p2",                   4,   5,  9,   7, conv2d_params(3, 3, 1, 1, 2, 2, 2, 2)),
    conv_case(          "k3_d2_s2_p1",                3,   4, 13,   9, conv2d_params(3, 3, 2, 2, 1, 1, 2, 2)),
    conv_case(          "k3_groups2",                 6,  10,  7,   9, conv2d_params(3, 3, 1, 1, 1, 1, 1, 1, 2)),
    no_bias(conv_case(  "k3_groups3_s2",              9,   6,  9,   9, conv2d_params(3, 3, 2, 2, 1, 1, 1, 1, 3))),
    conv_case(          "k7_s2_p3",                   3,  10, 29,  27, conv2d_params(7, 7, 2, 2, 3, 3)),
    weight_zero_points(per_channel(
        conv_case(      "k7_s2_p3_zero_points",       5,   6, 21,  19, conv2d_params(7, 7, 2, 2, 3, 3)))),
    conv_case(          "k5_p2",                      3,   4, 13,  11, conv2d_params(5, 5, 1, 1, 2, 2)),
    // Stride 2 with 5 or more columns: the input in column phases (odd and
    // even widths, rows of several blocks).
    per_channel(conv_case("k5_s2_p2_151_wide",        3,   5,  9, 151, conv2d_params(5, 5, 2, 2, 2, 2))),
    no_bias(conv_case(  "k7_s2_p3_130_wide",          2,   7, 11, 130, conv2d_params(7, 7, 2, 2, 3, 3))),
    conv_case(          "k3x1_p1x0",                  3,   4,  7,   9, conv2d_params(3, 1, 1, 1, 1, 0)),
    conv_case(          "k1x3_s1x2_p0x1",             3,   4,  7,   9, conv2d_params(1, 3, 1, 2, 0, 1)),
    conv_case(          "k3x5_s2x1_p1x2_d1x2",        4,   3, 13,  11, conv2d_params(3, 5, 2, 1, 1, 2, 1, 2)),
    conv_case(          "k5_s5",                      3,   4, 21,  26, conv2d_params(5, 5, 5, 5, 0, 0)),
    conv_case(          "k13x11_p6x5_many_taps",      2,   3, 15,  13, conv2d_params(13, 11, 1, 1, 6, 5)),
    conv_case(          "wide_70to35_k3",            70,  35, 11,  13, conv2d_params(3, 3, 1, 1, 1, 1)),
    per_channel(conv_case("wide_45to70_k3_s2",       45,  70, 15,  13, conv2d_params(3, 3, 2, 2, 1, 1))),
    // Deeper than one pass of packed taps (512 k): sums wait between passes.
    conv_case(          "deep_130to9_k3",           130,   9,  6,   9, conv2d_params(3, 3, 1, 1, 1, 1)),
    per_channel(conv_case("deep_60to260_k3_s2",      60, 260,  9,  11, conv2d_params(3, 3, 2, 2, 1, 1))),
    weight_zero_points(per_channel(
        conv_case(      "deep_60to8_k3_zero_points", 60,   8,  7,  10, conv2d_params(3, 3, 1, 1, 1, 1)))),
    conv_case(          "map_7x7_k3",                21,  13,  7,   7, conv2d_params(3, 3, 1, 1, 1, 1)),
    // Blocks of 17, 33 and 49 positions: their last position a dot product
    // along k (in one pass of packed taps, and in two).
    per_channel(conv_case("map_7x7_k3_deep",          70,   9,  7,   7, conv2d_params(3, 3, 1, 1, 1, 1))),
    conv_case(          "map_7x7_pointwise_deep",   600,  13,  7,   7, conv2d_params(1, 1, 1, 1, 0, 0)),
    no_bias(conv_case(  "map_13x13_k3_s2_to_7x7",    12,  10, 13,  13, conv2d_params(3, 3, 2, 2, 1, 1))),
    clamped(conv_case(  "map_3x11_k3",                5,   7,  3,  11, conv2d_params(3, 3, 1, 1, 1, 1)), 0, 200),
    conv_case(          "map_1x17_pointwise",         9,   8,  1,  17, conv2d_params(1, 1, 1, 1, 0, 0)),
    conv_case(          "map_1x1_k3_p1",              8,   5,  1,   1, conv2d_params(3, 3, 1, 1, 1, 1)),
    conv_case(          "map_1x1_pointwise",         17,  10,  1,   1, conv2d_params(1, 1, 1, 1, 0, 0)),
    conv_case(          "depthwise_k3",              13,  13, 19,  23, conv2d_params(3, 3, 1, 1, 1, 1, 1, 1, 13)),
    weight_zero_points(per_channel(
        conv_case(      "depthwise_k3_zero_points",   7,   7, 17,  37, conv2d_params(3, 3, 1, 1, 1, 1, 1, 1, 7)))),
    no_bias(conv_case(  "depthwise_k3_s2",            9,   9, 21,  35, conv2d_params(3, 3, 2, 2, 1, 1, 1, 1, 9))),
    weight_zero_points(
        conv_case(      "depthwise_k3_s2_per_tensor_zp", 5, 5, 13, 15, conv2d_params(3, 3, 2, 2, 1, 1, 1, 1, 5))),
    per_channel(conv_case("depthwise_k3_113_wide",    3,   3,  5, 113, conv2d_params(3, 3, 1, 1, 1, 1, 1, 1, 3))),
    per_channel(conv_case("depthwise_k3_s2_113_wide", 3,   3,  7, 113, conv2d_params(3, 3, 2, 2, 1, 1, 1, 1, 3))),
    conv_case(          "depthwise_k5_d2_p4",         4,   4, 11,   9, conv2d_params(5, 5, 1, 1, 4, 4, 2, 2, 4)),
    conv_case(          "depthwise_k3_s4",            3,   3, 17,  70, conv2d_params(3, 3, 4, 4, 1, 1, 1, 1, 3)),
    conv_case(          "depthwise_k3_s5_general",    3,   3, 17,  90, conv2d_params(3, 3, 5, 5, 1, 1, 1, 1, 3)),
    conv_case(          "depthwise_multiplier2",      3,   6,  7,   9, conv2d_params(3, 3, 1, 1, 1, 1, 1, 1, 3)),
    clamped(conv_case(  "depthwise_relu6_clamp",      6,   6,  9,  10, conv2d_params(3, 3, 1, 1, 1, 1, 1, 1, 6)), 90, 150),
    conv_case(          "depthwise_map_7x7",         19,  19,  7,   7, conv2d_params(3, 3, 1, 1, 1, 1, 1, 1, 19)),
    // The flat form (stride 1, whole rows): 16-position vectors across row
    // ends of maps narrower than a vector, wider, and a tail block.
    conv_case(          "depthwise_map_14x14",        7,   7, 14,  14, conv2d_params(3, 3, 1, 1, 1, 1, 1, 1, 7)),
    conv_case(          "depthwise_map_70x75",        3,   3, 70,  75, conv2d_params(3, 3, 1, 1, 1, 1, 1, 1, 3)),
    // The flat form's widest map (its column bytes stay below 256), and one wider.
    conv_case(          "depthwise_k3_235_wide",      2,   2,  6, 235, conv2d_params(3, 3, 1, 1, 1, 1, 1, 1, 2)),
    conv_case(          "depthwise_k3_241_wide",      2,   2,  6, 241, conv2d_params(3, 3, 1, 1, 1, 1, 1, 1, 2)),
    per_channel(conv_case("depthwise_map_9x5",        5,   5,  9,   5, conv2d_params(3, 3, 1, 1, 1, 1, 1, 1, 5))),
    conv_case(          "depthwise_k3_d2_p2",         5,   5, 12,  14, conv2d_params(3, 3, 1, 1, 2, 2, 2, 2, 5)),
    conv_case(          "depthwise_k3x1_p1x0",        3,   3, 10,  21, conv2d_params(3, 1, 1, 1, 1, 0, 1, 1, 3)),
    weight_zero_points(
        conv_case(      "depthwise_k1x3_p0x1_zero_points", 4, 4, 11, 13, conv2d_params(1, 3, 1, 1, 0, 1, 1, 1, 4))),
};
// clang-format on

std::string case_name(const ::testing::TestParamInfo<QConvParam>& info) {
  return std::string(std::get<0>(info.param).name) + "_" +
         requantization_name(std::get<1>(info.param));
}

INSTANTIATE_TEST_SUITE_P(Cases, QuantizedConv,
                         ::testing::Combine(::testing::ValuesIn(kCases),
                                            ::testing::Values(Requantization::pytorch,
                                                              Requantization::cmsis)),
                         case_name);

// Multipliers so large that float(acc) * M leaves int32: the reference's
// rne() gives INT32_MIN, clamped to the low end, whatever acc's sign; and
// so small that every output is the zero point.
TEST(QuantizedConvRequantization, OutOfRangeAndTinyMultipliersMatchTheReference) {
  for (const Requantization mode : {Requantization::pytorch, Requantization::cmsis}) {
    for (const float out_scale : {1e-30f, 1e-12f, 1e12f}) {
      for (const auto& [name, params, in_c, out_c] :
           {std::tuple{"pointwise", conv2d_params(1, 1, 1, 1, 0, 0), int64_t{9}, int64_t{7}},
            std::tuple{"k3", conv2d_params(3, 3, 1, 1, 1, 1), int64_t{5}, int64_t{6}},
            std::tuple{"depthwise", conv2d_params(3, 3, 1, 1, 1, 1, 1, 1, 6), int64_t{6},
                       int64_t{6}}}) {
        SCOPED_TRACE(std::string(name) + " " + requantization_name(mode) + " output scale " +
                     std::to_string(out_scale));
        const QConvCase c = conv_case(name, in_c, out_c, 11, 13, params);
        QConvData data = make_data(c, mode, 300);
        data.layer.out.scale = out_scale;
        data.layer.clamp_lo = 7;
        data.layer.clamp_hi = 250;
        const Region in = Region::whole(nchw(1, c.in_c, c.in_h, c.in_w));
        const Region out = Region::whole(output_shape(c));
        const std::vector<uint8_t> reference =
            run(conv2d_q_reference, c, data, in, c.in_c, out, Fence::after);
        if (out_scale == 1e-30f && mode == Requantization::pytorch) {
          EXPECT_EQ(std::count(reference.begin(), reference.end(), 7), std::ssize(reference))
              << "every product leaves int32: all outputs at the clamp's low end";
        }
        for (const NamedKernel& fast : kFastKernels)
          EXPECT_TRUE(
              same_bytes(reference, run(fast.kernel, c, data, in, c.in_c, out, Fence::after)))
              << fast.name;
      }
    }
  }
}

// Zero points at the ends of their ranges: x - x_zp and w - w_zp up to 255
// in magnitude, of one sign; outputs mostly clamp, the kernels must agree anyway.
TEST(QuantizedConvZeroPoints, ExtremeZeroPointsMatchTheReference) {
  for (const auto& [x_zp, w_zp] :
       {std::pair{0, -128}, std::pair{255, 127}, std::pair{255, -128}, std::pair{0, 127}}) {
    for (const QConvCase& base :
         {conv_case("pointwise", 37, 19, 9, 11, conv2d_params(1, 1, 1, 1, 0, 0)),
          conv_case("k3_s2_p1", 17, 9, 15, 21, conv2d_params(3, 3, 2, 2, 1, 1)),
          conv_case("depthwise_k3", 7, 7, 17, 37, conv2d_params(3, 3, 1, 1, 1, 1, 1, 1, 7))}) {
      const QConvCase c = weight_zero_points(per_channel(base));
      SCOPED_TRACE(std::string(c.name) + " x_zp " + std::to_string(x_zp) + " w_zp " +
                   std::to_string(w_zp));
      QConvData data = make_data(c, Requantization::pytorch, 500);
      data.layer.in[0].zero_point = x_zp;
      for (size_t i = 0; i < data.zero_point.size(); ++i)
        data.zero_point[i] = i % 2 ? w_zp : -w_zp - 1;  // both ends, alternating channels
      const Region in = Region::whole(nchw(1, c.in_c, c.in_h, c.in_w));
      const Region out = Region::whole(output_shape(c));
      const std::vector<uint8_t> reference =
          run(conv2d_q_reference, c, data, in, c.in_c, out, Fence::after);
      for (const NamedKernel& fast : kFastKernels)
        EXPECT_TRUE(same_bytes(reference, run(fast.kernel, c, data, in, c.in_c, out, Fence::after)))
            << fast.name;
    }
  }
}

TEST(QuantizedConvScratch, IsNoneForEveryShape) {
  // The planner's figures may only shrink: the reference kernel's plane of
  // int32 accumulators (out.h * out.w * 4 bytes) was the bound.
  for (const Shape& out : {nchw(1, 32, 112, 112), nchw(1, 1000, 1, 1), nchw(1, 3, 7, 9)})
    EXPECT_EQ(conv2d_q_scratch_bytes(out), 0u) << out.str();
}

// ---- linear ----

struct QLinearCase {
  const char* name;
  int64_t features, outputs;
  bool per_channel, weight_zero_points, bias;
};

class QuantizedLinear : public ::testing::TestWithParam<std::tuple<QLinearCase, Requantization>> {};

TEST_P(QuantizedLinear, EqualsReference) {
  const QLinearCase& c = std::get<0>(GetParam());  // not a structured binding: lambdas capture it
  const Requantization mode = std::get<1>(GetParam());
  // A linear layer is a 1x1 convolution over a 1x1 map: the same data.
  QConvCase as_conv =
      conv_case(c.name, c.features, c.outputs, 1, 1, conv2d_params(1, 1, 1, 1, 0, 0));
  as_conv.per_channel = c.per_channel;
  as_conv.weight_zero_points = c.weight_zero_points;
  as_conv.bias = c.bias;
  QConvData data = make_data(as_conv, mode, 400);
  const QuantizedWeights w = weights_from(data, c.per_channel, 0);
  const auto run_linear = [&](auto kernel, Fence fence) {
    // The features as [1, C, H, W] = [1, features / 4, 2, 2] where they divide.
    const Shape in_shape =
        c.features % 4 ? nchw(1, c.features, 1, 1) : nchw(1, c.features / 4, 2, 2);
    FencedBytes input(static_cast<size_t>(c.features), fence),
        output(static_cast<size_t>(c.outputs), fence),
        weight(static_cast<size_t>(c.features * c.outputs), fence);
    std::copy(data.input.begin(), data.input.end(), input.data());
    std::memcpy(weight.data(), data.weight.data(), weight.size());
    QuantizedWeights fenced = w;
    fenced.weight = weight.as<int8_t>();
    const Tensor in{in_shape, DType::u8, input.data()};
    Tensor out{nchw(1, c.outputs, 1, 1), DType::u8, output.data()};
    kernel(data.layer, in, fenced, out);
    return std::vector<uint8_t>(output.data(), output.data() + output.size());
  };
  const std::vector<uint8_t> reference = run_linear(linear_q_reference, Fence::after);
  const std::set<uint8_t> distinct(reference.begin(), reference.end());
  EXPECT_GE(static_cast<int64_t>(distinct.size()), std::min<int64_t>(8, c.outputs / 4 + 1));
  for (const Fence fence : {Fence::after, Fence::before}) {
    EXPECT_TRUE(same_bytes(reference, run_linear(linear_q, fence))) << "linear_q";
    EXPECT_TRUE(same_bytes(reference, run_linear(linear_q_portable, fence))) << "linear_q_portable";
  }
  // Inputs without a zero point (after a ReLU) skip the weights' sums.
  data.layer.in[0].zero_point = 0;
  const std::vector<uint8_t> no_zero_point = run_linear(linear_q_reference, Fence::after);
  EXPECT_TRUE(same_bytes(no_zero_point, run_linear(linear_q, Fence::after))) << "x_zp 0";
  EXPECT_TRUE(same_bytes(no_zero_point, run_linear(linear_q_portable, Fence::after))) << "x_zp 0";
}

// clang-format off
const QLinearCase kLinearCases[] = {
    // name                      features outputs per_channel zero_points bias
    {"small",                        10,      3,    false,      false,      true},
    {"features_1280_outputs_1000", 1280,   1000,    false,      false,      true},
    {"odd_sizes_per_channel",       333,     37,    true,       false,      true},
    {"zero_points_no_bias",         130,     21,    true,       true,       false},
    {"per_tensor_zero_point",        67,      5,    false,      true,       true},
    {"one_feature",                   1,      6,    false,      false,      true},
};
// clang-format on

INSTANTIATE_TEST_SUITE_P(Cases, QuantizedLinear,
                         ::testing::Combine(::testing::ValuesIn(kLinearCases),
                                            ::testing::Values(Requantization::pytorch,
                                                              Requantization::cmsis)),
                         [](const auto& info) {
                           return std::string(std::get<0>(info.param).name) + "_" +
                                  requantization_name(std::get<1>(info.param));
                         });

// ---- quantize (float32 -> quint8) ----

TEST(QuantizeFast, EqualsReferenceOnRandomAndSpecialValues) {
  std::mt19937 generator(600);
  std::vector<float> values(1000 + 13);  // not a multiple of 16
  std::uniform_real_distribution<float> uniform(-40.0f, 40.0f);
  for (float& value : values) value = uniform(generator);
  // Ties after scaling (scale 0.5: x / 0.5 = k + 0.5), huge, infinite, NaN, -0.
  const float specials[] = {0.25f,  0.75f,   -0.25f,   1.25f,   -1.75f,   -0.0f,    1e30f,
                            -1e30f, 2.2e9f,  -2.2e9f,  1.07e9f, -1.07e9f, INFINITY, -INFINITY,
                            NAN,    FLT_MAX, -FLT_MAX, FLT_MIN, 63.75f,   64.25f};
  std::copy(std::begin(specials), std::end(specials), values.begin() + 100);
  for (const auto& [scale, zero_point] :
       {std::pair{0.5f, 0}, std::pair{0.5f, 128}, std::pair{0.1f, 255}, std::pair{1e-9f, 7},
        std::pair{0.0313725f, 133}}) {
    SCOPED_TRACE("scale " + std::to_string(scale) + " zero point " + std::to_string(zero_point));
    QuantizedLayer layer;
    layer.out = QuantParams{scale, zero_point};
    const Shape shape = nchw(1, static_cast<int64_t>(values.size()), 1, 1);
    const auto run_quantize = [&](auto kernel, Fence fence, bool in_place) {
      FencedBytes input(values.size() * sizeof(float), fence), output(values.size(), fence);
      std::memcpy(input.data(), values.data(), input.size());
      const Tensor in{shape, DType::f32, input.data()};
      Tensor out{shape, DType::u8, in_place ? input.data() : output.data()};
      kernel(layer, in, out);
      return std::vector<uint8_t>(out.u8(), out.u8() + values.size());
    };
    const std::vector<uint8_t> reference = run_quantize(quantize_reference, Fence::after, false);
    const std::set<uint8_t> distinct(reference.begin(), reference.end());
    EXPECT_GE(distinct.size(), scale < 1e-6f ? 2u : 40u);
    for (const Fence fence : {Fence::after, Fence::before})
      for (const bool in_place : {false, true})
        EXPECT_TRUE(same_bytes(reference, run_quantize(quantize, fence, in_place)))
            << (in_place ? "in place" : "separate output");
  }
}

// ---- add (qnnpack's fixed-point add) ----

TEST(AddQFast, EqualsReferenceOverScalesZeroPointsAndClamps) {
  std::mt19937 generator(700);
  const int64_t count = 777;  // not a multiple of 16
  std::vector<uint8_t> a(count), b(count);
  for (uint8_t& value : a) value = static_cast<uint8_t>(generator());
  for (uint8_t& value : b) value = static_cast<uint8_t>(generator());
  int64_t cases = 0;
  // Output scale / input scale ratios from 2^-14 to just under 2^8 (the
  // shifts 13..31 of qnnpack), and 2^-12 (shift 33: the reference's path).
  for (const float a_ratio : {0.9f, 1.0f, 3.7f, 200.0f, 6.1e-5f, 2.4e-4f})
    for (const float b_ratio : {0.35f, 1.0f, 1.5f, 0.01f})
      for (const auto& [a_zp, b_zp, y_zp] : {std::tuple{0, 255, 128}, std::tuple{131, 64, 0},
                                             std::tuple{255, 0, 255}, std::tuple{17, 201, 90}})
        for (const bool relu : {false, true}) {
          QuantizedLayer layer;
          layer.out = QuantParams{0.02f, y_zp};
          layer.in = {QuantParams{0.02f * a_ratio, a_zp}, QuantParams{0.02f * b_ratio, b_zp}};
          layer.clamp_lo = relu ? y_zp : 0;
          SCOPED_TRACE("ratios " + std::to_string(a_ratio) + ", " + std::to_string(b_ratio) +
                       " zero points " + std::to_string(a_zp) + ", " + std::to_string(b_zp) +
                       " -> " + std::to_string(y_zp) + (relu ? " relu" : ""));
          const Shape shape = nchw(1, count, 1, 1);
          const auto run_add = [&](auto kernel, Fence fence, bool in_place) {
            FencedBytes x(count, fence), y(count, fence), z(count, fence);
            std::copy(a.begin(), a.end(), x.data());
            std::copy(b.begin(), b.end(), y.data());
            const Tensor first{shape, DType::u8, x.data()}, second{shape, DType::u8, y.data()};
            Tensor out{shape, DType::u8, in_place ? x.data() : z.data()};
            kernel(layer, first, second, out);
            return std::vector<uint8_t>(out.u8(), out.u8() + count);
          };
          const std::vector<uint8_t> reference = run_add(add_q_reference, Fence::after, false);
          for (const Fence fence : {Fence::after, Fence::before})
            for (const bool in_place : {false, true})
              EXPECT_TRUE(same_bytes(reference, run_add(add_q, fence, in_place)));
          ++cases;
        }
  EXPECT_EQ(cases, 6 * 4 * 4 * 2);
}

// ---- max pool ----

struct PoolCase {
  const char* name;
  int64_t channels, in_h, in_w;
  PoolParams params;
};

class MaxpoolQ : public ::testing::TestWithParam<PoolCase> {};

// maxpool_q() against maxpool() (the reference loop) on the whole map and on
// output tiles computed from input tiles with their halos.
TEST_P(MaxpoolQ, EqualsReferenceOnMapsAndTiles) {
  const PoolCase& c = GetParam();
  const PoolParams& p = c.params;
  std::mt19937 generator(800);
  std::vector<uint8_t> map(static_cast<size_t>(c.channels * c.in_h * c.in_w));
  for (uint8_t& value : map) value = static_cast<uint8_t>(generator());
  const Shape in_whole = nchw(1, c.channels, c.in_h, c.in_w);
  const Shape out_whole =
      nchw(1, c.channels,
           pool_output_size(c.in_h, p.kernel_h, p.stride_h, p.pad_h, p.dilation_h, p.ceil_mode),
           pool_output_size(c.in_w, p.kernel_w, p.stride_w, p.pad_w, p.dilation_w, p.ceil_mode));
  ASSERT_GT(out_whole.elements(), 0);
  const auto run_pool = [&](auto kernel, const Region& in_region, const Region& out_region,
                            Fence fence) {
    const std::vector<uint8_t> in_bytes = cut(map, c.in_h, c.in_w, in_region);
    const Shape out_shape = out_region.shape(out_whole);
    FencedBytes input(in_bytes.size(), fence),
        output(static_cast<size_t>(out_shape.elements()), fence);
    std::copy(in_bytes.begin(), in_bytes.end(), input.data());
    const Tensor in{in_region.shape(in_whole), DType::u8, input.data()};
    Tensor out{out_shape, DType::u8, output.data()};
    kernel(p, in, in_region.placement(in_whole), out, out_region.placement(out_whole));
    return std::vector<uint8_t>(output.data(), output.data() + output.size());
  };
  const std::vector<uint8_t> reference =
      run_pool(maxpool, Region::whole(in_whole), Region::whole(out_whole), Fence::after);
  const int64_t h = out_whole.h, w = out_whole.w;
  const std::vector<Region> tiles = {
      Region::whole(out_whole),
      {0, c.channels, h / 2, h, w / 2, w},
      {1, c.channels, 0, std::max<int64_t>(1, h / 3), 0, w},
      {0, 1, h / 3, std::max(h / 3 + 1, 2 * h / 3), w / 3, std::max(w / 3 + 1, 2 * w / 3)},
  };
  for (const Region& out_region : tiles) {
    if (out_region.empty()) continue;
    const Span rows = input_span(out_region.y0, out_region.y1, p.kernel_h, p.stride_h, p.pad_h,
                                 p.dilation_h, c.in_h);
    const Span cols = input_span(out_region.x0, out_region.x1, p.kernel_w, p.stride_w, p.pad_w,
                                 p.dilation_w, c.in_w);
    const Region in_region{out_region.c0, out_region.c1, rows.begin,
                           rows.end,      cols.begin,    cols.end};
    SCOPED_TRACE("output " + out_region.str() + " from input " + in_region.str());
    const std::vector<uint8_t> expected = cut(reference, h, w, out_region);
    EXPECT_TRUE(same_bytes(expected, run_pool(maxpool, in_region, out_region, Fence::after)))
        << "reference tile";
    for (const Fence fence : {Fence::after, Fence::before})
      EXPECT_TRUE(same_bytes(expected, run_pool(maxpool_q, in_region, out_region, fence)));
  }
}

// clang-format off
const PoolCase kPoolCases[] = {
    // name                          C   h    w   params
    {"k3_s2_p1_resnet",              5, 33,  37, pool_params(3, 2, 1)},
    {"k3_s2_ceil_squeezenet",        4, 27,  29, pool_params(3, 2, 0, true)},
    {"k3_s2_ceil_wide",              2,  9, 301, pool_params(3, 2, 0, true)},
    {"k3_s1_p1_wide",                3,  7, 150, pool_params(3, 1, 1)},
    {"k2_s2",                        6, 12,  13, pool_params(2, 2, 0)},
    {"k5_s3_p2_ceil",                3, 17,  20, pool_params(5, 3, 2, true)},
    {"k3_s1_d2_p2",                  2, 11,  14, pool_params(3, 1, 2, false, true, 2)},
    {"k3_s5_p1",                     2, 21,  90, pool_params(3, 5, 1)},
    {"k9_s8",                        2, 20, 140, pool_params(9, 8, 0)},
};
// clang-format on

INSTANTIATE_TEST_SUITE_P(Cases, MaxpoolQ, ::testing::ValuesIn(kPoolCases),
                         [](const auto& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace splitinfer
