// The fast int8 kernels (quantized.hpp): conv2d, linear, quantize, add and
// max pool, equal to conv2d_q_reference(), linear_q_reference(),
// quantize_reference(), add_q_reference() and maxpool() bit for bit.
//
// Every sum is an exact int32 (wrapping, as the reference's), so any order of
// the products gives the same accumulator. The kernels expand the
// reference's Σ (x - x_zp)(w - w_zp) into
//   Σ x·w - w_zp·Σx - x_zp·Σw + depth·x_zp·w_zp
// over all `depth` taps of an output, with padding read as x = x_zp (it then
// adds 0, as in the reference), so that Σ x·w multiplies the stored uint8
// activations by the stored int8 weights: exactly the operand types of
// AVX512-VNNI's vpdpbusd. The x_zp·Σw and depth·x_zp·w_zp terms and the bias
// are one constant per output channel; Σx per position is summed only when a
// weight zero point is not 0. Requantization is PyTorch's float32 arithmetic
// in vector form (cvtdq2ps, one mulps, cvtps2dq: the reference's rne(),
// INT32_MIN for what int32 cannot hold included); `cmsis` mode requantizes
// element by element with the reference's Requantizer.
//
// No scratch from the arena: accumulators live in registers, the rest on
// the stack (the VNNI kernel's packed taps and partial sums about 100 KiB,
// the AVX2 kernel's weight table up to 64 KiB), and a stride-2 stem's input
// in column phases in a buffer of the thread's (column_phases(), host memory
// outside the emulated device's).
// Compiled with -ffp-contract=off, like quantized.cpp.
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <vector>

#include "quantized.hpp"

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VNNI__) && \
    defined(__AVX512VBMI__)
#define SPLITINFER_INT8_VNNI 1
#include "intrinsics.hpp"
#else
#define SPLITINFER_INT8_VNNI 0
#endif

namespace splitinfer {
namespace {

uint8_t saturate(int64_t value, int32_t lo, int32_t hi) {
  return static_cast<uint8_t>(std::clamp<int64_t>(value, lo, hi));
}

// The shapes of one conv2d_q() call: the tiles', and the layer's channel groups.
struct ConvGeometry {
  int64_t out_h, out_w, positions;  // output tile
  int64_t in_w, in_plane;           // input tile
  int64_t out_per_group, in_per_group;
  int64_t taps, depth;  // KH * KW; in_per_group * taps: the weights of one output channel

  ConvGeometry(const Conv2dParams& p, const Tensor& in, const Placement& in_at, const Tensor& out,
               const Placement& out_at)
      : out_h(out.shape.h),
        out_w(out.shape.w),
        positions(out.shape.h * out.shape.w),
        in_w(in.shape.w),
        in_plane(in.shape.h * in.shape.w),
        out_per_group(out_at.channels(out) / p.groups),
        in_per_group(in_at.channels(in) / p.groups),
        taps(p.kernel_h * p.kernel_w),
        depth(in_at.channels(in) / p.groups * p.kernel_h * p.kernel_w) {}
};

// The output channels of a tile in one group: tile channels [first, end),
// reading tile input channels from `first_in`.
struct GroupRange {
  int64_t first, end, first_in;
};

// Splits the tile's output channels at group boundaries.
template <class Body>
void for_each_group(const ConvGeometry& g, const Placement& in_at, const Tensor& out,
                    const Placement& out_at, Body&& body) {
  for (int64_t c = 0; c < out.shape.c;) {
    const int64_t group = (out_at.channel0 + c) / g.out_per_group;
    const int64_t end = std::min(out.shape.c, (group + 1) * g.out_per_group - out_at.channel0);
    body(GroupRange{c, end, group * g.in_per_group - in_at.channel0});
    c = end;
  }
}

}  // namespace

// Whether qnnpack's add can run in int32 lanes (add_q_avx2(), add_q_avx512()):
// a_mul (a - a_zp) + b_mul (b - b_zp) is the reference's int64 sum, and it
// fits int32 when both multipliers are at most 2^22 (the larger is in [2^21,
// 2^22] by construction) and the zero points are in [0, 255]: |sum| <= 2 *
// 255 * 2^22 < 2^31.
namespace {
[[maybe_unused]] bool add_fits_int32(const QuantizedLayer& q, const QnnpackAdd& add) {
  const auto in_byte_range = [](int64_t value) { return value >= 0 && value <= 255; };
  return add.shift >= 1 && add.shift <= 31 && std::abs(add.a_mul) <= (int64_t{1} << 22) &&
         std::abs(add.b_mul) <= (int64_t{1} << 22) && in_byte_range(q.in[0].zero_point) &&
         in_byte_range(q.in[1].zero_point) && in_byte_range(q.out.zero_point);
}
}  // namespace

// ---- portable kernels -------------------------------------------------------

void conv2d_q_portable(const QuantizedLayer& q, const Conv2dParams& p, const Tensor& in,
                       const Placement& in_at, const QuantizedWeights& w, Tensor& out,
                       const Placement& out_at) {
  const ConvGeometry g(p, in, in_at, out, out_at);
  if (g.positions == 0) return;
  // kRows output channels at once over kSpan output columns of a row: each
  // input row segment is read once for all of them. int32 [kRows][kSpan] on the stack.
  constexpr int kRows = 4;
  constexpr int64_t kSpan = 64;
  const int32_t x_zp = q.in[0].zero_point;
  for_each_group(g, in_at, out, out_at, [&](const GroupRange& range) {
    for (int64_t c = range.first; c < range.end; c += kRows) {
      const int64_t rows = std::min<int64_t>(kRows, range.end - c);
      const int8_t* weight[kRows];
      int32_t w_zp[kRows], bias[kRows];
      Requantizer requantize[kRows];
      for (int64_t m = 0; m < kRows; ++m) {
        const int64_t channel = c + std::min(m, rows - 1);
        weight[m] = w.weight + channel * g.depth;
        w_zp[m] = w.zero_point[w.per_channel ? channel : 0];
        bias[m] = w.bias ? w.bias[channel] : 0;
        requantize[m] = Requantizer(q.mode, channel_multiplier(q, w, channel));
      }
      for (int64_t oy = 0; oy < g.out_h; ++oy) {
        for (int64_t ox0 = 0; ox0 < g.out_w; ox0 += kSpan) {
          const int64_t span = std::min(kSpan, g.out_w - ox0);
          int32_t acc[kRows][kSpan];
          for (int64_t m = 0; m < kRows; ++m) std::fill(acc[m], acc[m] + span, bias[m]);
          for (int64_t ic = 0; ic < g.in_per_group; ++ic) {
            const uint8_t* plane = in.u8() + (range.first_in + ic) * g.in_plane;
            for (int64_t ky = 0; ky < p.kernel_h; ++ky) {
              const int64_t iy = (out_at.row0 + oy) * p.stride_h - p.pad_h + ky * p.dilation_h;
              if (iy < 0 || iy >= in_at.full_h) continue;  // padding: x - x_zp is 0
              const uint8_t* row = plane + (iy - in_at.row0) * g.in_w;
              for (int64_t kx = 0; kx < p.kernel_w; ++kx) {
                const auto [valid_first, valid_last] = columns_inside(
                    out_at.col0, g.out_w, p.stride_w, kx * p.dilation_w - p.pad_w, in_at.full_w);
                const int64_t first = std::max(valid_first, ox0);
                const int64_t last = std::min(valid_last, ox0 + span);
                if (first >= last) continue;
                const int64_t tap = (ic * p.kernel_h + ky) * p.kernel_w + kx;
                int32_t weights[kRows];
                for (int64_t m = 0; m < kRows; ++m)
                  weights[m] = m < rows ? weight[m][tap] - w_zp[m] : 0;
                // Input column of output column ox: (col0 + ox) * stride + kx * dilation - pad.
                const uint8_t* source =
                    row + out_at.col0 * p.stride_w + kx * p.dilation_w - p.pad_w - in_at.col0;
                for (int64_t ox = first; ox < last; ++ox) {
                  const int32_t x = source[ox * p.stride_w] - x_zp;
                  for (int64_t m = 0; m < kRows; ++m) acc[m][ox - ox0] += x * weights[m];
                }
              }
            }
          }
          for (int64_t m = 0; m < rows; ++m) {
            uint8_t* target = out.u8() + (c + m) * g.positions + oy * g.out_w + ox0;
            for (int64_t i = 0; i < span; ++i)
              target[i] =
                  saturate(requantize[m](acc[m][i]) + q.out.zero_point, q.clamp_lo, q.clamp_hi);
          }
        }
      }
    }
  });
}

void linear_q_portable(const QuantizedLayer& q, const Tensor& in, const QuantizedWeights& w,
                       Tensor& out) {
  const int64_t features = in.shape.c * in.shape.h * in.shape.w;
  const int32_t x_zp = q.in[0].zero_point;
  const uint8_t* x = in.u8();
  constexpr int kRows = 4;  // neurons at once: each input element is read once for all of them
  for (int64_t c = 0; c < out.shape.c; c += kRows) {
    const int64_t rows = std::min<int64_t>(kRows, out.shape.c - c);
    const int8_t* weight[kRows];
    int32_t w_zp[kRows], acc[kRows];
    for (int64_t m = 0; m < kRows; ++m) {
      const int64_t channel = c + std::min(m, rows - 1);
      weight[m] = w.weight + channel * features;
      w_zp[m] = w.zero_point[w.per_channel ? channel : 0];
      acc[m] = w.bias ? w.bias[channel] : 0;
    }
    for (int64_t k = 0; k < features; ++k) {
      const int32_t value = x[k] - x_zp;
      for (int64_t m = 0; m < kRows; ++m) acc[m] += value * (weight[m][k] - w_zp[m]);
    }
    for (int64_t m = 0; m < rows; ++m)
      out.u8()[c + m] =
          saturate(Requantizer(q.mode, channel_multiplier(q, w, c + m))(acc[m]) + q.out.zero_point,
                   q.clamp_lo, q.clamp_hi);
  }
}

// ---- AVX2 kernel (targets without AVX512-VNNI) --------------------------------
//
// conv2d_q_avx2 and depthwise_q_avx2 compute what conv2d_q_portable
// computes, Σ (x - x_zp)(w - w_zp) from the bias in wrapping int32, with
// vpmaddwd: each 32-bit lane adds two int16 products at one output position,
// at most 2 * 255 * 255 in magnitude, so the pairs are exact and the sums
// the portable kernel's. The general kernel pairs consecutive k of the depth,
// reading 8 output columns of a row at a time (x_zp where a tap reads
// padding or a vector would read past the tile's row: TapRead); the
// depthwise one pairs a kernel row's adjacent taps (their comments below).

#if defined(__AVX2__) && !SPLITINFER_INT8_VNNI
#define SPLITINFER_INT8_AVX2 1
#include <immintrin.h>
#else
#define SPLITINFER_INT8_AVX2 0
#endif

#if SPLITINFER_INT8_AVX2
namespace {

constexpr int64_t kAvx2Rows = 4;
constexpr int64_t kAvx2MaxTaps = 64;

// How to read the input bytes of one tap for the 8 output columns [ox, ox
// + 8) of one output row, the same in every input plane, where they are not
// one plain load (pack_vectors() reads those itself):
//  - padding: the tap's input row is padding, every byte x_zp;
//  - shuffled: one 16-byte load at `at` inside the plane (stride 1 or 2),
//    shuffled by `control` into place, `fill` (x_zp) where the tap reads
//    padding or past the tile's row;
//  - gathered: byte by byte from row `at` of the plane, x_zp outside the
//    columns [first, last) that read the map.
struct TapRead {
  enum Mode { padding, shuffled, gathered } mode = padding;
  int64_t at = 0;
  __m128i control, fill;
  int64_t first = 0, last = 0;
};

// `iy`: the tap's input row in the map; `offset`: the input column (in the
// tile) of output column 0; [first, last): the output columns whose tap
// reads inside the map.
TapRead tap_read(const ConvGeometry& g, const Placement& in_at, int64_t stride, int64_t iy,
                 int64_t offset, int64_t ox, int64_t first, int64_t last, uint8_t x_zp) {
  TapRead read;
  read.control = read.fill = _mm_set1_epi8(static_cast<char>(x_zp));
  if (iy < 0 || iy >= in_at.full_h) return read;
  const int64_t row = (iy - in_at.row0) * g.in_w + offset;  // output column 0's, in the plane
  if (stride <= 2 && g.in_plane >= 16) {
    // 8 columns at stride 2 span 15 bytes: one load holds them.
    const int64_t wanted = row + ox * stride;
    read.mode = TapRead::shuffled;
    read.at = std::clamp<int64_t>(wanted, 0, g.in_plane - 16);
    const __m128i lane = _mm_setr_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const auto byte = [](int64_t value) { return _mm_set1_epi8(static_cast<char>(value)); };
    const __m128i reads =  // lanes in [first - ox, last - ox) and below 8
        _mm_and_si128(_mm_cmpgt_epi8(lane, byte(std::clamp<int64_t>(first - ox, 0, 16) - 1)),
                      _mm_cmplt_epi8(
                          lane, byte(std::clamp<int64_t>(std::min<int64_t>(last - ox, 8), 0, 16))));
    const __m128i index =
        _mm_add_epi8(stride == 2 ? _mm_add_epi8(lane, lane) : lane, byte(wanted - read.at));
    read.control = _mm_or_si128(_mm_andnot_si128(reads, byte(0x80)), _mm_and_si128(reads, index));
    read.fill = _mm_andnot_si128(reads, byte(x_zp));
  } else {
    read.mode = TapRead::gathered;
    read.at = row;
    read.first = first - ox;
    read.last = last - ox;
  }
  return read;
}

// The bytes of `plane` that `read` says, for `stride`.
inline __m128i read_bytes(const TapRead& read, const uint8_t* plane, int64_t stride, int64_t ox) {
  switch (read.mode) {
    case TapRead::padding:
      return read.fill;
    case TapRead::shuffled:
      return _mm_or_si128(
          _mm_shuffle_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(plane + read.at)),
                           read.control),
          read.fill);
    case TapRead::gathered:
    default: {
      alignas(16) uint8_t bytes[16];
      std::memset(bytes, _mm_cvtsi128_si32(read.fill) & 0xff, sizeof(bytes));
      const int64_t lo = std::clamp<int64_t>(read.first, 0, 8);
      const int64_t hi = std::clamp<int64_t>(read.last, lo, 8);
      for (int64_t i = lo; i < hi; ++i) bytes[i] = plane[read.at + (ox + i) * stride];
      return _mm_load_si128(reinterpret_cast<const __m128i*>(bytes));
    }
  }
}

// `count` bytes from `from` to `to` (copy_bytes), or widened to int16
// lanes (widen_bytes): loads and stores of fixed sizes, the last ones
// overlapping those before, none outside either range.
[[gnu::always_inline]] inline void copy_bytes(const uint8_t* from, int64_t count, uint8_t* to) {
  const auto copy = [&](auto word, int64_t at) {
    std::memcpy(&word, from + at, sizeof(word));
    std::memcpy(to + at, &word, sizeof(word));
  };
  if (count >= 16) {
    for (int64_t at = 0; at < count; at += 16) copy(__m128i{}, std::min(at, count - 16));
  } else if (count >= 8) {
    copy(uint64_t{}, 0);
    copy(uint64_t{}, count - 8);
  } else if (count >= 4) {
    copy(uint32_t{}, 0);
    copy(uint32_t{}, count - 4);
  } else {
    for (int64_t i = 0; i < count; ++i) to[i] = from[i];
  }
}

[[gnu::always_inline]] inline void widen_bytes(const uint8_t* from, int64_t count, int16_t* to) {
  const auto widen16 = [&](int64_t at) {
    _mm256_storeu_si256(
        reinterpret_cast<__m256i*>(to + at),
        _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(from + at))));
  };
  const auto widen8 = [&](int64_t at) {
    _mm_storeu_si128(
        reinterpret_cast<__m128i*>(to + at),
        _mm_cvtepu8_epi16(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(from + at))));
  };
  const auto widen4 = [&](int64_t at) {
    int32_t word;
    std::memcpy(&word, from + at, sizeof(word));
    _mm_storel_epi64(reinterpret_cast<__m128i*>(to + at),
                     _mm_cvtepu8_epi16(_mm_cvtsi32_si128(word)));
  };
  if (count >= 16) {
    for (int64_t at = 0; at < count; at += 16) widen16(std::min(at, count - 16));
  } else if (count >= 8) {
    widen8(0);
    widen8(count - 8);
  } else if (count >= 4) {
    widen4(0);
    widen4(count - 4);
  } else {
    for (int64_t i = 0; i < count; ++i) to[i] = from[i];
  }
}

// Requantizes sums held in vectors of 8 int32 (output positions in order)
// to bytes. PyTorch mode with the zero point and the clamp in [0, 255] in
// vectors, as the VNNI kernels' pack64(): cvtps2dq rounds to nearest even
// and gives INT32_MIN where int32 cannot hold the value, as rne() does, and
// the saturating packs then clamp as saturate() would. Made once per call
// for each output channel: its constants ready for every store.
class ByteStore {
 public:
  ByteStore(const QuantizedLayer& q, float multiplier)
      : in_vectors_(q.mode == Requantization::pytorch && 0 <= q.out.zero_point &&
                    q.out.zero_point <= 255 && 0 <= q.clamp_lo && q.clamp_lo <= q.clamp_hi &&
                    q.clamp_hi <= 255),
        multiplier_(_mm256_set1_ps(multiplier)),
        zero_point_(_mm_set1_epi16(static_cast<int16_t>(q.out.zero_point))),
        lo_(_mm_set1_epi8(static_cast<char>(q.clamp_lo))),
        hi_(_mm_set1_epi8(static_cast<char>(q.clamp_hi))),
        requantize_(q.mode, multiplier),
        out_zero_point_(q.out.zero_point),
        clamp_lo_(q.clamp_lo),
        clamp_hi_(q.clamp_hi) {}

  // Stores the first `count` (at most 8 · kVectors) positions of `acc`.
  template <int64_t kVectors>
  [[gnu::always_inline]] void store(const __m256i* acc, int64_t count, uint8_t* target) const {
    if (in_vectors_) {
      const __m128i bytes = bytes_of<kVectors>(acc);
      // Fewer than 16: two stores, the second of the last bytes shifted
      // down, overlapping the first (through memory, the loads of such
      // bytes would wait on the store before them).
      const auto last = [&](int64_t size) {
        return _mm_shuffle_epi8(
            bytes, _mm_add_epi8(_mm_setr_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                _mm_set1_epi8(static_cast<char>(count - size))));
      };
      if (count == 16) {
        _mm_storeu_si128(reinterpret_cast<__m128i*>(target), bytes);
      } else if (count >= 8) {
        _mm_storel_epi64(reinterpret_cast<__m128i*>(target), bytes);
        _mm_storel_epi64(reinterpret_cast<__m128i*>(target + count - 8), last(8));
      } else if (count >= 4) {
        const int32_t first = _mm_cvtsi128_si32(bytes), end = _mm_cvtsi128_si32(last(4));
        std::memcpy(target, &first, 4);
        std::memcpy(target + count - 4, &end, 4);
      } else {
        alignas(16) uint8_t lanes[16];
        _mm_store_si128(reinterpret_cast<__m128i*>(lanes), bytes);
        for (int64_t i = 0; i < count; ++i) target[i] = lanes[i];
      }
      return;
    }
    alignas(32) int32_t sums[8 * kVectors];
    for (int64_t v = 0; v < kVectors; ++v)
      _mm256_store_si256(reinterpret_cast<__m256i*>(sums + 8 * v), acc[v]);
    for (int64_t i = 0; i < count; ++i)
      target[i] = saturate(requantize_(sums[i]) + out_zero_point_, clamp_lo_, clamp_hi_);
  }

  // Two vectors bound for different places, `count` positions of each:
  // one packing for both where it can.
  [[gnu::always_inline]] void store_two(const __m256i (&acc)[2], int64_t count, uint8_t* first,
                                        uint8_t* second) const {
    if (in_vectors_ && count == 8) {
      const __m128i bytes = bytes_of<2>(acc);
      _mm_storel_epi64(reinterpret_cast<__m128i*>(first), bytes);
      _mm_storel_epi64(reinterpret_cast<__m128i*>(second), _mm_unpackhi_epi64(bytes, bytes));
      return;
    }
    store<1>(&acc[0], count, first);
    store<1>(&acc[1], count, second);
  }

 private:
  template <int64_t kVectors>
  [[gnu::always_inline]] __m128i bytes_of(const __m256i* acc) const {
    __m128i words[2] = {_mm_setzero_si128(), _mm_setzero_si128()};
    for (int64_t v = 0; v < kVectors; ++v) {
      const __m256i scaled =
          _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_cvtepi32_ps(acc[v]), multiplier_));
      words[v] = _mm_adds_epi16(
          _mm_packs_epi32(_mm256_castsi256_si128(scaled), _mm256_extracti128_si256(scaled, 1)),
          zero_point_);
    }
    return _mm_min_epu8(_mm_max_epu8(_mm_packus_epi16(words[0], words[1]), lo_), hi_);
  }

  bool in_vectors_;
  __m256 multiplier_;
  __m128i zero_point_, lo_, hi_;
  Requantizer requantize_;
  int32_t out_zero_point_, clamp_lo_, clamp_hi_;
};

// Depthwise (one input channel per output channel). Each channel's input is
// first widened into a padded plane of int16 lanes (x as read, x_zp where a
// tap reads padding), rows of `pitch` lanes. Taps kx and kx + 1 of a kernel
// row then read adjacent lanes, so one 32-bit word of the plane holds both
// of a position's inputs, and vpmaddwd adds x·w' of the two taps in each
// 32-bit lane, exact as above (w' = w - w_zp, 0 past the kernel's width;
// x_zp·Σw' is taken from the bias once). A vector of 8 words is a plain
// load: every other output position at stride 1, 8 consecutive ones at
// stride 2. No shuffles in the loop.
//
// Stride 1 runs over the plane's positions flat, across row ends: output
// (oy, ox) is flat position oy·pitch + ox, and the tap (ky, kx) reads flat
// position + ky·pitch + kx. Vectors of 16 flat positions (their even and
// odd positions apart, interleaved again before the requantization) go to
// a staging row, whose columns past the map's are dropped. Stride 2 runs
// row by row, 8 columns a vector, the last overlapping the one before.

// The padded plane of a tile: rows from input row `row` and column `column`
// of the map (negative where the padding lies before the map), `rows` of
// `pitch` lanes, `slack` lanes after the last for vectors that read past it.
struct PaddedPlane {
  int64_t row, column, rows, pitch;
  static constexpr int64_t slack = 64;

  PaddedPlane(const Conv2dParams& p, const ConvGeometry& g, const Placement& out_at)
      : row(out_at.row0 * p.stride_h - p.pad_h),
        column(out_at.col0 * p.stride_w - p.pad_w),
        rows((g.out_h - 1) * p.stride_h + (p.kernel_h - 1) * p.dilation_h + 1),
        pitch((g.out_w - 1) * p.stride_w + p.kernel_w) {}
  int64_t lanes() const { return rows * pitch + slack; }
};

// The tap pairs of a channel: per pair, its lane offset in the plane and
// its two weights as one int32 broadcast.
struct TapPairs {
  int64_t count = 0;
  int64_t offset[kAvx2MaxTaps];
  __m256i weights[kAvx2MaxTaps];
};

// The sums of 8 words from `at` against every pair, from `start`. kPairs:
// the pair count when known at compile time (6: a 3x3 kernel), else 0.
template <int64_t kPairs>
[[gnu::always_inline]] inline __m256i pair_sums(const int16_t* at, const TapPairs& pairs,
                                                __m256i start) {
  __m256i acc = start;
  const int64_t count = kPairs != 0 ? kPairs : pairs.count;
#pragma GCC unroll 8
  for (int64_t j = 0; j < count; ++j)
    acc = _mm256_add_epi32(
        acc, _mm256_madd_epi16(
                 _mm256_loadu_si256(reinterpret_cast<const __m256i*>(at + pairs.offset[j])),
                 pairs.weights[j]));
  return acc;
}

// Stride 1: 32 flat positions a step (16 while fewer are left), into the
// staging rows (whose columns inside the map the caller copies out).
template <int64_t kPairs>
void depthwise_flat_avx2(const ConvGeometry& g, const PaddedPlane& pad, const int16_t* plane,
                         const TapPairs& pairs, __m256i start, const ByteStore& store,
                         uint8_t* staging) {
  const int64_t flat = (g.out_h - 1) * pad.pitch + g.out_w;
  const auto sixteen = [&](int64_t at) {
    const __m256i even = pair_sums<kPairs>(plane + at, pairs, start);
    const __m256i odd = pair_sums<kPairs>(plane + at + 1, pairs, start);
    const __m256i low = _mm256_unpacklo_epi32(even, odd);   // positions 0-3, 8-11
    const __m256i high = _mm256_unpackhi_epi32(even, odd);  // 4-7, 12-15
    const __m256i acc[2] = {_mm256_permute2x128_si256(low, high, 0x20),
                            _mm256_permute2x128_si256(low, high, 0x31)};
    store.store<2>(acc, 16, staging + at);
  };
  int64_t f = 0;
  for (; f + 32 <= flat; f += 32) {
    sixteen(f);
    sixteen(f + 16);
  }
  for (; f < flat; f += 16) sixteen(flat >= 16 ? std::min(f, flat - 16) : 0);
}

// Stride 2: 8 columns of a row a vector, the last overlapping the one before.
template <int64_t kPairs>
void depthwise_rows_s2_avx2(const Conv2dParams& p, const ConvGeometry& g, const PaddedPlane& pad,
                            const int16_t* plane, const TapPairs& pairs, __m256i start,
                            const ByteStore& store, uint8_t* target) {
  for (int64_t oy = 0; oy < g.out_h; ++oy) {
    const int16_t* row = plane + oy * p.stride_h * pad.pitch;
    int64_t ox = 0;
    for (; ox + 16 <= g.out_w; ox += 16) {
      const __m256i acc[2] = {pair_sums<kPairs>(row + 2 * ox, pairs, start),
                              pair_sums<kPairs>(row + 2 * ox + 16, pairs, start)};
      store.store<2>(acc, 16, target + oy * g.out_w + ox);
    }
    for (; ox < g.out_w; ox += 8) {
      const int64_t at = g.out_w >= 8 ? std::min(ox, g.out_w - 8) : 0;
      const __m256i acc = pair_sums<kPairs>(row + 2 * at, pairs, start);
      store.store<1>(&acc, std::min<int64_t>(8, g.out_w - at), target + oy * g.out_w + at);
    }
  }
}

bool depthwise_q_avx2(const QuantizedLayer& q, const Conv2dParams& p, const Tensor& in,
                      const Placement& in_at, const QuantizedWeights& w, Tensor& out,
                      const Placement& out_at) {
  const ConvGeometry g(p, in, in_at, out, out_at);
  if (g.in_per_group != 1 || g.out_per_group != 1 || g.taps > kAvx2MaxTaps || p.dilation_w != 1 ||
      (p.stride_w != 1 && p.stride_w != 2))
    return false;
  if (g.positions == 0) return true;
  const PaddedPlane pad(p, g, out_at);
  const uint8_t x_zp = static_cast<uint8_t>(q.in[0].zero_point);
  // Two planes: the next channel's is widened before this one's sums, so
  // that their loads do not wait on its stores.
  thread_local std::vector<int16_t> buffer;
  thread_local std::vector<uint8_t> staging;
  buffer.assign(2 * pad.lanes(), x_zp);
  const int64_t staged = g.out_h * pad.pitch + 16;
  staging.resize(2 * staged);
  const auto copy_out = [&](int64_t c) {  // channel c's staging rows, to the output
    for (int64_t oy = 0; oy < g.out_h; ++oy)
      copy_bytes(staging.data() + c % 2 * staged + oy * pad.pitch, g.out_w,
                 out.u8() + c * g.positions + oy * g.out_w);
  };
  // The padded rows and columns that lie in the map (and so in the tile).
  const int64_t first_row = std::max<int64_t>(0, -pad.row);
  const int64_t end_row = std::clamp<int64_t>(in_at.full_h - pad.row, first_row, pad.rows);
  const int64_t first_column = std::max<int64_t>(0, -pad.column);
  const int64_t end_column =
      std::clamp<int64_t>(in_at.full_w - pad.column, first_column, pad.pitch);
  const auto widen = [&](int64_t c) {
    const uint8_t* source = in.u8() + (out_at.channel0 + c - in_at.channel0) * g.in_plane;
    int16_t* plane = buffer.data() + c % 2 * pad.lanes();
    for (int64_t r = first_row; r < end_row; ++r)
      widen_bytes(
          source + (pad.row + r - in_at.row0) * g.in_w + pad.column + first_column - in_at.col0,
          end_column - first_column, plane + r * pad.pitch + first_column);
  };
  TapPairs pairs;
  for (int64_t ky = 0; ky < p.kernel_h; ++ky)
    for (int64_t kx = 0; kx < p.kernel_w; kx += 2)
      pairs.offset[pairs.count++] = ky * p.dilation_h * pad.pitch + kx;
  widen(0);
  for (int64_t c = 0; c < out.shape.c; ++c) {
    if (c + 1 < out.shape.c) widen(c + 1);
    const int16_t* plane = buffer.data() + c % 2 * pad.lanes();
    const int8_t* weight = w.weight + c * g.taps;
    const int32_t w_zp = w.zero_point[w.per_channel ? c : 0];
    int32_t weight_sum = 0;
    for (int64_t ky = 0, j = 0; ky < p.kernel_h; ++ky) {
      for (int64_t kx = 0; kx < p.kernel_w; kx += 2, ++j) {
        const int32_t low = weight[ky * p.kernel_w + kx] - w_zp;
        const int32_t high = kx + 1 < p.kernel_w ? weight[ky * p.kernel_w + kx + 1] - w_zp : 0;
        weight_sum += low + high;
        pairs.weights[j] = _mm256_set1_epi32(
            static_cast<int32_t>(static_cast<uint32_t>(static_cast<uint16_t>(low)) |
                                 (static_cast<uint32_t>(static_cast<uint16_t>(high)) << 16)));
      }
    }
    // bias + Σ (x - x_zp) w' = bias - x_zp Σw' + Σ x w', in wrapping int32.
    const __m256i start = _mm256_set1_epi32(
        static_cast<int32_t>(static_cast<uint32_t>(w.bias ? w.bias[c] : 0) -
                             static_cast<uint32_t>(x_zp) * static_cast<uint32_t>(weight_sum)));
    uint8_t* target = out.u8() + c * g.positions;
    const ByteStore store(q, channel_multiplier(q, w, c));
    const bool three = pairs.count == 6;  // a 3x3 kernel
    uint8_t* rows = staging.data() + c % 2 * staged;
    // Stride 1: the channel before's rows are copied out after this one's
    // sums, so that their loads do not wait on its stores.
    if (p.stride_w == 1 && three)
      depthwise_flat_avx2<6>(g, pad, plane, pairs, start, store, rows);
    else if (p.stride_w == 1)
      depthwise_flat_avx2<0>(g, pad, plane, pairs, start, store, rows);
    else if (three)
      depthwise_rows_s2_avx2<6>(p, g, pad, plane, pairs, start, store, target);
    else
      depthwise_rows_s2_avx2<0>(p, g, pad, plane, pairs, start, store, target);
    if (p.stride_w == 1 && c > 0) copy_out(c - 1);
  }
  if (p.stride_w == 1) copy_out(out.shape.c - 1);
  return true;
}

// General (not depthwise) convolutions: an implicit GEMM over vectors of
// 8 output positions, each a row's columns [ox, ox + 8) (the last of a row
// overlapping the one before, or reading past a row narrower than 8 whose
// extra lanes are not stored), taken kAvx2Vectors at a time. Their input is
// packed once for all output channels, as int16 pairs (x_k - x_zp, x_k+1 -
// x_zp) of consecutive k = ic·taps + tap of the depth, kAvx2Vectors vectors
// per pair; the weights once per call as int16 pairs (w_k, w_k+1), a table
// of kAvx2Rows channels per pair (pair_table()); both in buffers of the
// thread's, host memory outside the emulated device's (the table twice the
// layer's int8 weights). Then kAvx2Rows output channels at a time go over
// the pairs, one vpmaddwd per vector with the channels' pairs broadcast,
// their sums in registers over the whole depth (madd_rows()). The weight
// zero point is taken out at the end:
// Σ (x - x_zp)(w - w_zp) = Σ (x - x_zp)·w - w_zp·Σ (x - x_zp), the second Σ
// per position summed while packing (only when some w_zp is not 0). Every
// product is exact in int32 and the sums wrap as the reference's.
constexpr int64_t kAvx2Vectors = 2;

// An output vector: 8 positions from column ox of output row oy (`count` of
// them stored).
struct OutputVector {
  int64_t oy, ox, count;
};

// The weights of output channels [first, end) as int16 pairs (w_k, w_k+1)
// (w_depth = 0 for an odd depth), kAvx2Rows channels at a time: pair kp of
// channel first + b·kAvx2Rows + m at table[(b·pairs + kp)·kAvx2Rows + m]
// (channels past `end` 0), so that a block's broadcasts read one stream.
// Sixteen k of four channels at a time: vpmovsxbw, then a 4 x 8 transpose.
static_assert(kAvx2Rows == 4, "pair_table transposes 4 rows");
void pair_table(const QuantizedWeights& w, int64_t first, int64_t end, int64_t depth,
                int32_t* table) {
  const int64_t pairs = (depth + 1) / 2;
  for (int64_t c = first; c < end; c += kAvx2Rows, table += pairs * kAvx2Rows) {
    const int8_t* row[kAvx2Rows];
    for (int64_t m = 0; m < kAvx2Rows; ++m)
      row[m] = c + m < end ? w.weight + (c + m) * depth : nullptr;
    int64_t k = 0;
    if (c + kAvx2Rows <= end)
      for (; k + 16 <= depth; k += 16) {
        __m256i r[kAvx2Rows];
        for (int64_t m = 0; m < kAvx2Rows; ++m)
          r[m] =
              _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row[m] + k)));
        // Dwords: r[m] = pairs kp .. kp + 7 of row m; out: [kp][m].
        const __m256i t0 = _mm256_unpacklo_epi32(r[0], r[1]),
                      t1 = _mm256_unpackhi_epi32(r[0], r[1]);
        const __m256i t2 = _mm256_unpacklo_epi32(r[2], r[3]),
                      t3 = _mm256_unpackhi_epi32(r[2], r[3]);
        const __m256i u0 = _mm256_unpacklo_epi64(t0, t2), u1 = _mm256_unpackhi_epi64(t0, t2);
        const __m256i u2 = _mm256_unpacklo_epi64(t1, t3), u3 = _mm256_unpackhi_epi64(t1, t3);
        __m256i* to = reinterpret_cast<__m256i*>(table + k / 2 * kAvx2Rows);
        _mm256_storeu_si256(to + 0, _mm256_permute2x128_si256(u0, u1, 0x20));
        _mm256_storeu_si256(to + 1, _mm256_permute2x128_si256(u2, u3, 0x20));
        _mm256_storeu_si256(to + 2, _mm256_permute2x128_si256(u0, u1, 0x31));
        _mm256_storeu_si256(to + 3, _mm256_permute2x128_si256(u2, u3, 0x31));
      }
    for (; k < depth; k += 2)
      for (int64_t m = 0; m < kAvx2Rows; ++m) {
        const int32_t low = row[m] ? row[m][k] : 0;
        const int32_t high = row[m] && k + 1 < depth ? row[m][k + 1] : 0;
        table[k / 2 * kAvx2Rows + m] =
            static_cast<int32_t>(static_cast<uint32_t>(static_cast<uint16_t>(low)) |
                                 (static_cast<uint32_t>(static_cast<uint16_t>(high)) << 16));
      }
  }
}

// Packs the input of `count` (1 to kAvx2Vectors) vectors: pair kp of vector
// v at packed[kp * kAvx2Vectors + v]; with `sum_x`, sum_x[v] = Σ (x - x_zp)
// over the depth.
void pack_vectors(const QuantizedLayer& q, const Conv2dParams& p, const ConvGeometry& g,
                  const Tensor& in, const Placement& in_at, const Placement& out_at,
                  const GroupRange& range, const std::pair<int64_t, int64_t>* inside,
                  const OutputVector* vectors, int64_t count, __m256i* packed, __m256i* sum_x) {
  const uint8_t x_zp = static_cast<uint8_t>(q.in[0].zero_point);
  const __m256i zp16 = _mm256_set1_epi16(x_zp);
  const __m256i ones = _mm256_set1_epi16(1);
  // First the 8 bytes of every k, tap by tap (one way of reading per tap,
  // then every input plane), k + 1's beside k's; an odd depth's last k
  // pairs with x_zp.
  thread_local std::vector<uint64_t> bytes;
  if (bytes.size() < static_cast<size_t>(g.depth + 1))
    bytes.resize(static_cast<size_t>(g.depth + 1));
  std::memset(&bytes[g.depth], x_zp, sizeof(uint64_t));
  for (int64_t v = 0; v < count; ++v) {
    const OutputVector& o = vectors[v];
    for (int64_t ky = 0; ky < p.kernel_h; ++ky)
      for (int64_t kx = 0; kx < p.kernel_w; ++kx) {
        const int64_t tap = ky * p.kernel_w + kx;
        const int64_t iy = (out_at.row0 + o.oy) * p.stride_h - p.pad_h + ky * p.dilation_h;
        const int64_t offset = out_at.col0 * p.stride_w + kx * p.dilation_w - p.pad_w - in_at.col0;
        const uint8_t* plane = in.u8() + range.first_in * g.in_plane;
        uint64_t* to = bytes.data() + tap;
        const auto each_plane = [&](auto read_plane) {
          for (int64_t ic = 0; ic < g.in_per_group; ++ic, plane += g.in_plane, to += g.taps)
            _mm_storel_epi64(reinterpret_cast<__m128i*>(to), read_plane(plane));
        };
        // Inside the map and the tile's row: one load per plane.
        if (iy >= 0 && iy < in_at.full_h && o.ox >= inside[kx].first &&
            o.ox + 8 <= inside[kx].second && (o.ox + 8) * p.stride_w + offset <= g.in_w &&
            p.stride_w <= 2) {
          const int64_t at = (iy - in_at.row0) * g.in_w + offset + o.ox * p.stride_w;
          if (p.stride_w == 1) {
            each_plane([&](const uint8_t* from) {
              return _mm_loadl_epi64(reinterpret_cast<const __m128i*>(from + at));
            });
          } else {
            const __m128i even = _mm_set1_epi16(0x00ff);
            each_plane([&](const uint8_t* from) {
              return _mm_packus_epi16(
                  _mm_and_si128(_mm_loadu_si128(reinterpret_cast<const __m128i*>(from + at)), even),
                  _mm_setzero_si128());
            });
          }
          continue;
        }
        const TapRead read = tap_read(g, in_at, p.stride_w, iy, offset, o.ox, inside[kx].first,
                                      inside[kx].second, x_zp);
        if (read.mode == TapRead::padding)
          each_plane([&](const uint8_t*) { return read.fill; });
        else
          each_plane([&](const uint8_t* from) { return read_bytes(read, from, p.stride_w, o.ox); });
      }
    // Then the pairs: bytes k and k + 1 interleaved, widened, less x_zp.
    __m256i sum = _mm256_setzero_si256();
    for (int64_t kp = 0; kp < (g.depth + 1) / 2; ++kp) {
      const __m128i two = _mm_loadu_si128(reinterpret_cast<const __m128i*>(&bytes[2 * kp]));
      const __m256i pair = _mm256_sub_epi16(
          _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(two, _mm_unpackhi_epi64(two, two))), zp16);
      _mm256_store_si256(packed + kp * kAvx2Vectors + v, pair);
      if (sum_x) sum = _mm256_add_epi32(sum, _mm256_madd_epi16(pair, ones));
    }
    if (sum_x) sum_x[v] = sum;
  }
}

// Pairs [0, pairs) of kAvx2Rows channels x kVectors (1 or 2) vectors into
// named accumulators, in asm: with the intrinsics (or an array of
// accumulators around an asm statement) GCC 12 copies every sum to another
// register and back, one more instruction per vpmaddwd, and it reads the
// vectors from memory at every vpmaddwd (the loads then bound the loop).
// clang-format off
#define SPLITINFER_MADD_ROW(offset, a0, a1)                                  \
  "vpbroadcastd " #offset "(%[t]), %[w]\n\t"                                 \
  "vpmaddwd %[x0], %[w], %[p]\n\tvpaddd %[p], %[" #a0 "], %[" #a0 "]\n\t"  \
  "vpmaddwd %[x1], %[w], %[p]\n\tvpaddd %[p], %[" #a1 "], %[" #a1 "]\n\t"
#define SPLITINFER_MADD_ROW1(offset, a0)                                     \
  "vpbroadcastd " #offset "(%[t]), %[w]\n\t"                                 \
  "vpmaddwd %[x0], %[w], %[p]\n\tvpaddd %[p], %[" #a0 "], %[" #a0 "]\n\t"
// clang-format on
static_assert(kAvx2Vectors == 2);
template <int64_t kVectors>
[[gnu::always_inline]] inline void madd_rows(const __m256i* packed, const int32_t* table,
                                             int64_t pairs, __m256i (&acc)[kAvx2Rows][kVectors]) {
  if constexpr (kVectors == 2) {
    __m256i a00 = acc[0][0], a01 = acc[0][1], a10 = acc[1][0], a11 = acc[1][1], a20 = acc[2][0],
            a21 = acc[2][1], a30 = acc[3][0], a31 = acc[3][1];
    for (int64_t kp = 0; kp < pairs; ++kp, packed += kAvx2Vectors, table += kAvx2Rows) {
      __m256i x0, x1, weights, product;
      asm("vmovdqa (%[x]), %[x0]\n\tvmovdqa 32(%[x]), %[x1]\n\t"  //
          SPLITINFER_MADD_ROW(0, a00, a01) SPLITINFER_MADD_ROW(4, a10, a11)
              SPLITINFER_MADD_ROW(8, a20, a21) SPLITINFER_MADD_ROW(12, a30, a31)
          : [a00] "+x"(a00), [a01] "+x"(a01), [a10] "+x"(a10), [a11] "+x"(a11), [a20] "+x"(a20),
            [a21] "+x"(a21), [a30] "+x"(a30), [a31] "+x"(a31), [x0] "=&x"(x0), [x1] "=&x"(x1),
            [w] "=&x"(weights), [p] "=&x"(product)
          : [t] "r"(table), [x] "r"(packed),
            "m"(*reinterpret_cast<const int32_t(*)[kAvx2Rows]>(table)),
            "m"(*reinterpret_cast<const __m256i(*)[2]>(packed)));
    }
    acc[0][0] = a00, acc[0][1] = a01, acc[1][0] = a10, acc[1][1] = a11;
    acc[2][0] = a20, acc[2][1] = a21, acc[3][0] = a30, acc[3][1] = a31;
  } else {
    __m256i a0 = acc[0][0], a1 = acc[1][0], a2 = acc[2][0], a3 = acc[3][0];
    for (int64_t kp = 0; kp < pairs; ++kp, packed += kAvx2Vectors, table += kAvx2Rows) {
      __m256i x0, weights, product;
      asm("vmovdqa (%[x]), %[x0]\n\t"  //
          SPLITINFER_MADD_ROW1(0, a0) SPLITINFER_MADD_ROW1(4, a1) SPLITINFER_MADD_ROW1(8, a2)
              SPLITINFER_MADD_ROW1(12, a3)
          : [a0] "+x"(a0), [a1] "+x"(a1), [a2] "+x"(a2), [a3] "+x"(a3), [x0] "=&x"(x0),
            [w] "=&x"(weights), [p] "=&x"(product)
          : [t] "r"(table), [x] "r"(packed),
            "m"(*reinterpret_cast<const int32_t(*)[kAvx2Rows]>(table)), "m"(*packed));
    }
    acc[0][0] = a0, acc[1][0] = a1, acc[2][0] = a2, acc[3][0] = a3;
  }
}
#undef SPLITINFER_MADD_ROW
#undef SPLITINFER_MADD_ROW1

// Output channels [c, c + rows) (rows <= kAvx2Rows) of the packed vectors,
// their weights at `table` (pair_table()).
template <int64_t kVectors>
void conv_vectors_avx2(const QuantizedWeights& w, const ConvGeometry& g, const __m256i* packed,
                       const __m256i* sum_x, const OutputVector* vectors, const int32_t* table,
                       const ByteStore* stores, int64_t c, int64_t rows, Tensor& out) {
  __m256i acc[kAvx2Rows][kVectors];
  for (int64_t m = 0; m < kAvx2Rows; ++m) {
    const int64_t channel = c + std::min(m, rows - 1);  // rows past `rows`: computed, not stored
    for (int64_t v = 0; v < kVectors; ++v)
      acc[m][v] = _mm256_set1_epi32(w.bias ? w.bias[channel] : 0);
  }
  const int64_t pairs = (g.depth + 1) / 2;
  madd_rows<kVectors>(packed, table, pairs, acc);
  for (int64_t m = 0; m < rows; ++m) {
    const int64_t channel = c + m;
    const __m256i w_zp = _mm256_set1_epi32(w.zero_point[w.per_channel ? channel : 0]);
    // By value: an accumulator whose address escaped would live in memory.
    __m256i values[kVectors];
    for (int64_t v = 0; v < kVectors; ++v)
      values[v] =
          sum_x ? _mm256_sub_epi32(acc[m][v], _mm256_mullo_epi32(sum_x[v], w_zp)) : acc[m][v];
    uint8_t* plane = out.u8() + channel * g.positions;
    const auto at = [&](const OutputVector& o) { return plane + o.oy * g.out_w + o.ox; };
    if constexpr (kVectors == 2)
      stores[channel].store_two(values, vectors[0].count, at(vectors[0]), at(vectors[1]));
    else
      stores[channel].store<1>(values, vectors[0].count, at(vectors[0]));
  }
}

bool conv2d_q_avx2(const QuantizedLayer& q, const Conv2dParams& p, const Tensor& in,
                   const Placement& in_at, const QuantizedWeights& w, Tensor& out,
                   const Placement& out_at) {
  const ConvGeometry g(p, in, in_at, out, out_at);
  if (g.taps > kAvx2MaxTaps || p.kernel_w > 64) return false;
  if (g.positions == 0) return true;
  // Per kx: the output columns whose tap reads inside the map.
  std::pair<int64_t, int64_t> inside[64];
  for (int64_t kx = 0; kx < p.kernel_w; ++kx)
    inside[kx] =
        columns_inside(out_at.col0, g.out_w, p.stride_w, kx * p.dilation_w - p.pad_w, in_at.full_w);
  // The output vectors, row by row.
  thread_local std::vector<OutputVector> vectors;
  vectors.clear();
  for (int64_t oy = 0; oy < g.out_h; ++oy)
    for (int64_t column = 0; column < g.out_w; column += 8)
      vectors.push_back(
          {oy, g.out_w >= 8 ? std::min(column, g.out_w - 8) : 0, std::min<int64_t>(8, g.out_w)});
  bool weight_zero_points = false;
  for (int64_t c = 0; c < (w.per_channel ? out.shape.c : 1); ++c)
    weight_zero_points |= w.zero_point[c] != 0;
  struct alignas(32) Packed {
    uint8_t bytes[32];
  };
  thread_local std::vector<Packed> buffer;
  thread_local std::vector<int32_t> tables;
  thread_local std::vector<ByteStore> stores;
  stores.clear();
  for (int64_t c = 0; c < out.shape.c; ++c) stores.emplace_back(q, channel_multiplier(q, w, c));
  const int64_t pairs = (g.depth + 1) / 2;
  if (buffer.size() < static_cast<size_t>(pairs * kAvx2Vectors))
    buffer.resize(static_cast<size_t>(pairs * kAvx2Vectors));
  __m256i* packed = reinterpret_cast<__m256i*>(buffer.data());
  for_each_group(g, in_at, out, out_at, [&](const GroupRange& range) {
    const int64_t blocks = (range.end - range.first + kAvx2Rows - 1) / kAvx2Rows;
    if (tables.size() < static_cast<size_t>(blocks * pairs * kAvx2Rows))
      tables.resize(static_cast<size_t>(blocks * pairs * kAvx2Rows));
    pair_table(w, range.first, range.end, g.depth, tables.data());
    for (size_t first = 0; first < vectors.size(); first += kAvx2Vectors) {
      const int64_t count = std::min<int64_t>(kAvx2Vectors, vectors.size() - first);
      __m256i sum_x[kAvx2Vectors];
      pack_vectors(q, p, g, in, in_at, out_at, range, inside, &vectors[first], count, packed,
                   weight_zero_points ? sum_x : nullptr);
      for (int64_t c = range.first; c < range.end; c += kAvx2Rows) {
        const int64_t rows = std::min<int64_t>(kAvx2Rows, range.end - c);
        const int32_t* table = tables.data() + (c - range.first) / kAvx2Rows * pairs * kAvx2Rows;
        if (count == 2)
          conv_vectors_avx2<2>(w, g, packed, weight_zero_points ? sum_x : nullptr, &vectors[first],
                               table, stores.data(), c, rows, out);
        else
          conv_vectors_avx2<1>(w, g, packed, weight_zero_points ? sum_x : nullptr, &vectors[first],
                               table, stores.data(), c, rows, out);
      }
    }
  });
  return true;
}

// linear_q_portable()'s sums with vpmaddwd, 4 neurons at a time: the
// input once as int16 x - x_zp, each neuron's weights widened as read;
// Σ (x - x_zp)(w - w_zp) = Σ (x - x_zp)·w - w_zp·Σ (x - x_zp), every
// product exact and the sums wrapping as the portable kernel's.
void linear_q_avx2(const QuantizedLayer& q, const Tensor& in, const QuantizedWeights& w,
                   Tensor& out) {
  constexpr int64_t kRows = 4;
  const int64_t features = in.shape.c * in.shape.h * in.shape.w;
  const int64_t body = features / 16 * 16;
  const int32_t x_zp = q.in[0].zero_point;
  thread_local std::vector<int16_t> xs;
  xs.resize(static_cast<size_t>(features));
  uint32_t sum_x = 0;
  for (int64_t k = 0; k < features; ++k) {
    xs[k] = static_cast<int16_t>(in.u8()[k] - x_zp);
    sum_x += static_cast<uint32_t>(xs[k]);
  }
  for (int64_t c = 0; c < out.shape.c; c += kRows) {
    const int64_t rows = std::min<int64_t>(kRows, out.shape.c - c);
    const int8_t* weight[kRows];
    for (int64_t m = 0; m < kRows; ++m)
      weight[m] = w.weight + (c + std::min(m, rows - 1)) * features;
    __m256i acc[kRows];
    for (int64_t m = 0; m < kRows; ++m) acc[m] = _mm256_setzero_si256();
    for (int64_t k = 0; k < body; k += 16) {
      const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xs.data() + k));
      for (int64_t m = 0; m < kRows; ++m)
        acc[m] = _mm256_add_epi32(
            acc[m], _mm256_madd_epi16(x, _mm256_cvtepi8_epi16(_mm_loadu_si128(
                                             reinterpret_cast<const __m128i*>(weight[m] + k)))));
    }
    for (int64_t m = 0; m < rows; ++m) {
      const int64_t channel = c + m;
      const __m128i half =
          _mm_add_epi32(_mm256_castsi256_si128(acc[m]), _mm256_extracti128_si256(acc[m], 1));
      const __m128i quarter = _mm_add_epi32(half, _mm_unpackhi_epi64(half, half));
      uint32_t total = static_cast<uint32_t>(
          _mm_cvtsi128_si32(_mm_add_epi32(quarter, _mm_shuffle_epi32(quarter, 1))));
      for (int64_t k = body; k < features; ++k)
        total += static_cast<uint32_t>(xs[k] * weight[m][k]);
      total += static_cast<uint32_t>(w.bias ? w.bias[channel] : 0) -
               static_cast<uint32_t>(w.zero_point[w.per_channel ? channel : 0]) * sum_x;
      out.u8()[channel] = saturate(
          Requantizer(q.mode, channel_multiplier(q, w, channel))(static_cast<int32_t>(total)) +
              q.out.zero_point,
          q.clamp_lo, q.clamp_hi);
    }
  }
}

// quantize_reference()'s arithmetic 32 elements at a time, as
// quantize_avx512(): cvtps2dq rounds to nearest even and gives INT32_MIN
// where int32 cannot hold the value, as rne() does; the clamp to [-zp,
// 255 - zp] then saturates as saturate() would. In place (out in in's
// memory), each step's floats are all loaded before its bytes are stored,
// and those bytes hold floats already read. The last count % 32 elements
// by quantize_reference().
void quantize_avx2(const QuantizedLayer& q, const Tensor& in, Tensor& out) {
  const __m256 inverse = _mm256_set1_ps(1.0f / q.out.scale);
  const __m256i low = _mm256_set1_epi32(-q.out.zero_point),
                high = _mm256_set1_epi32(255 - q.out.zero_point),
                zero_point = _mm256_set1_epi32(q.out.zero_point);
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  const float* from = in.f32();
  uint8_t* to = out.u8();
  const int64_t count = out.shape.elements();
  int64_t i = 0;
  for (; i + 32 <= count; i += 32) {
    __m256i value[4];
    for (int k = 0; k < 4; ++k)
      value[k] = _mm256_add_epi32(
          _mm256_min_epi32(_mm256_max_epi32(_mm256_cvtps_epi32(_mm256_mul_ps(
                                                _mm256_loadu_ps(from + i + 8 * k), inverse)),
                                            low),
                           high),
          zero_point);
    // packs and packus work within 128-bit lanes: dwords 0, 4, 1, 5, ... of
    // the packed bytes are elements 0-3, 4-7, 8-11, ...
    const __m256i bytes = _mm256_packus_epi16(_mm256_packs_epi32(value[0], value[1]),
                                              _mm256_packs_epi32(value[2], value[3]));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(to + i),
                        _mm256_permutevar8x32_epi32(bytes, order));
  }
  if (i < count) {  // the last few, as a tensor of their own
    const Shape rest{1, 1, 1, count - i};
    const Tensor in_rest{rest, DType::f32, const_cast<float*>(from + i)};
    Tensor out_rest{rest, DType::u8, to + i};
    quantize_reference(q, in_rest, out_rest);
  }
}

// add_q_reference()'s arithmetic 8 elements at a time, as add_q_avx512():
// (x - a_zp)·a_mul + (y - b_zp)·b_mul is the reference's offset + x·a_mul +
// y·b_mul, exact in int32 (add_fits_int32()); the last count % 8 elements by
// add_q_reference().
bool add_q_avx2(const QuantizedLayer& q, const Tensor& a, const Tensor& b, Tensor& out) {
  const QnnpackAdd add(q);
  if (!add_fits_int32(q, add)) return false;
  const __m256i a_zp = _mm256_set1_epi32(q.in[0].zero_point),
                b_zp = _mm256_set1_epi32(q.in[1].zero_point);
  const __m256i a_mul = _mm256_set1_epi32(static_cast<int32_t>(add.a_mul)),
                b_mul = _mm256_set1_epi32(static_cast<int32_t>(add.b_mul));
  const int32_t mask_bits = static_cast<int32_t>((int64_t{1} << add.shift) - 1);
  const __m256i mask = _mm256_set1_epi32(mask_bits), threshold = _mm256_set1_epi32(mask_bits >> 1);
  const __m128i shift = _mm_cvtsi32_si128(add.shift);
  const __m256i low = _mm256_set1_epi32(q.clamp_lo - q.out.zero_point),
                high = _mm256_set1_epi32(q.clamp_hi - q.out.zero_point),
                zero_point = _mm256_set1_epi32(q.out.zero_point);
  const int64_t count = out.shape.elements();
  int64_t i = 0;
  for (; i + 8 <= count; i += 8) {
    const __m256i x = _mm256_sub_epi32(
        _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(a.u8() + i))), a_zp);
    const __m256i y = _mm256_sub_epi32(
        _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(b.u8() + i))), b_zp);
    const __m256i acc =
        _mm256_add_epi32(_mm256_mullo_epi32(x, a_mul), _mm256_mullo_epi32(y, b_mul));
    // remainder = (acc & mask) - (acc < 0); rounded = (acc >> shift) + (remainder > threshold)
    const __m256i remainder =
        _mm256_add_epi32(_mm256_and_si256(acc, mask), _mm256_srai_epi32(acc, 31));
    const __m256i rounded =
        _mm256_sub_epi32(_mm256_sra_epi32(acc, shift), _mm256_cmpgt_epi32(remainder, threshold));
    const __m256i value =
        _mm256_add_epi32(_mm256_min_epi32(_mm256_max_epi32(rounded, low), high), zero_point);
    const __m128i words =
        _mm_packus_epi32(_mm256_castsi256_si128(value), _mm256_extracti128_si256(value, 1));
    _mm_storel_epi64(reinterpret_cast<__m128i*>(out.u8() + i), _mm_packus_epi16(words, words));
  }
  if (i < count) {  // the last few, as a tensor of their own
    const Shape rest{1, 1, 1, count - i};
    const Tensor a_rest{rest, DType::u8, const_cast<uint8_t*>(a.u8() + i)},
        b_rest{rest, DType::u8, const_cast<uint8_t*>(b.u8() + i)};
    Tensor out_rest{rest, DType::u8, out.u8() + i};
    add_q_reference(q, a_rest, b_rest, out_rest);
  }
  return true;
}

// Max pooling of quint8 (the maximum of the taps that read the map, 0
// where none does, as maxpool()'s loop; the order of the taps does not
// matter to a maximum of bytes). Where every tap of 16 (rows narrower than
// 16: 8) consecutive output columns reads inside the map, and no load
// reads past the taps the reference reads (stride 2: the even bytes of
// twice as many), their maxima stay in a register over all the taps, the
// last vector of a row overlapping the one before; the few columns near
// the edges go tap by tap, byte by byte.
bool maxpool_avx2(const PoolParams& p, const Tensor& in, const Placement& in_at, Tensor& out,
                  const Placement& out_at) {
  if (p.stride_w > 2 || p.kernel_h > 16) return false;
  const int64_t in_w = in.shape.w, in_plane = in.shape.h * in.shape.w;
  const int64_t out_h = out.shape.h, out_w = out.shape.w, stride = p.stride_w;
  const PoolColumns columns(p, in_at, out_w, out_at);
  const int64_t first = columns.first, last = columns.last;
  const std::vector<int64_t>& offset = columns.offset;
  const int64_t width = last - first >= 16 ? 16 : 8;
  const int64_t end = last - first >= width ? last : first;  // the vectors' columns: [first, end)
  const __m128i even = _mm_set1_epi16(0x00ff);
  const auto load = [&](const uint8_t* from) {  // `width` taps from `from`
    if (stride == 1)
      return width == 16 ? _mm_loadu_si128(reinterpret_cast<const __m128i*>(from))
                         : _mm_loadl_epi64(reinterpret_cast<const __m128i*>(from));
    const __m128i low =
        _mm_and_si128(_mm_loadu_si128(reinterpret_cast<const __m128i*>(from)), even);
    return _mm_packus_epi16(
        low, width == 16
                 ? _mm_and_si128(_mm_loadu_si128(reinterpret_cast<const __m128i*>(from + 16)), even)
                 : low);
  };
  for (int64_t plane = 0; plane < out.shape.n * out.shape.c; ++plane) {
    const uint8_t* source = in.u8() + plane * in_plane;
    for (int64_t oy = 0; oy < out_h; ++oy) {
      uint8_t* best = out.u8() + (plane * out_h + oy) * out_w;
      const uint8_t* rows[16];
      int64_t count = 0;
      for (int64_t ky = 0; ky < p.kernel_h; ++ky) {
        const int64_t iy = (out_at.row0 + oy) * p.stride_h - p.pad_h + ky * p.dilation_h;
        if (iy >= 0 && iy < in_at.full_h) rows[count++] = source + (iy - in_at.row0) * in_w;
      }
      for (int64_t column = first; column < end; column += width) {
        const int64_t ox = std::min(column, end - width);
        __m128i value = _mm_setzero_si128();
        for (int64_t r = 0; r < count; ++r)
          for (int64_t kx = 0; kx < p.kernel_w; ++kx)
            value = _mm_max_epu8(value, load(rows[r] + offset[kx] + ox * stride));
        if (width == 16)
          _mm_storeu_si128(reinterpret_cast<__m128i*>(best + ox), value);
        else
          _mm_storel_epi64(reinterpret_cast<__m128i*>(best + ox), value);
      }
      for (const auto& [begin, stop] : {std::pair{int64_t{0}, first}, std::pair{end, out_w}}) {
        if (begin >= stop) continue;
        std::memset(best + begin, 0, static_cast<size_t>(stop - begin));
        for (int64_t r = 0; r < count; ++r)
          for (int64_t kx = 0; kx < p.kernel_w; ++kx)
            for (int64_t ox = std::max(begin, columns.inside[kx].first);
                 ox < std::min(stop, columns.inside[kx].second); ++ox)
              best[ox] = std::max(best[ox], rows[r][offset[kx] + ox * stride]);
      }
    }
  }
  return true;
}

}  // namespace
#endif  // SPLITINFER_INT8_AVX2

// ---- AVX512-VNNI kernels ----------------------------------------------------

#if SPLITINFER_INT8_VNNI
namespace {

// For the helpers of the register blocks: a call that is not inlined takes
// the accumulators' address, and GCC then keeps them in memory.
#define SPLITINFER_INLINE [[gnu::always_inline]] inline

// acc + the 16 dword sums of 4 products u8 x s8 (vpdpbusd). GCC 12 copies
// the accumulator to and from another register around every vpdpbusd of the
// intrinsic; the instruction itself accumulates in place.
SPLITINFER_INLINE __m512i dpbusd(__m512i acc, __m512i u8, __m512i s8) {
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ < 13
  asm("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(u8), "v"(s8));
  return acc;
#else
  return _mm512_dpbusd_epi32(acc, u8, s8);
#endif
}

// int32 with the reference's wrap-around (two's complement, modulo 2^32).
int32_t wrap(int64_t value) { return static_cast<int32_t>(static_cast<uint32_t>(value)); }

constexpr int64_t kChunkChannels = 256;  // output channels whose constants sit on the stack at once
constexpr int kMaxSegments = 4;          // input windows of one block of positions
constexpr int kMaxTapSegments = 128;     // (tap, segment) recipes of a block; more taps: portable
constexpr int kMaxRows = 6;  // output channels of a register block (4 accumulators each)

// base + offset as an address, for masked loads whose masked-off
// lanes may lie outside the tensor (they are never touched).
// (An integer, not pointer arithmetic: the address may lie outside the tensor.)
const void* address(const uint8_t* base, int64_t offset) {
  return reinterpret_cast<const void*>(  // NOLINT(performance-no-int-to-ptr)
      reinterpret_cast<uintptr_t>(base) + static_cast<uintptr_t>(offset));
}

// Bits [begin, end) of a 64-bit lane mask (clipped to [0, 64)).
__mmask64 lane_range(int64_t begin, int64_t end) {
  begin = std::max<int64_t>(begin, 0);
  end = std::min<int64_t>(end, 64);
  if (end <= begin) return 0;
  const uint64_t below_end = end == 64 ? ~uint64_t{0} : (uint64_t{1} << end) - 1;
  return below_end & ~((uint64_t{1} << begin) - 1);
}

SPLITINFER_INLINE int32_t load_int32(const int8_t* bytes) {
  int32_t value;
  std::memcpy(&value, bytes, sizeof value);
  return value;
}

// The first `count` (< 4) bytes of `bytes` as the low bytes of an int32, zeros above.
SPLITINFER_INLINE int32_t load_partial_int32(const int8_t* bytes, int64_t count) {
  uint32_t value = 0;
  for (int64_t i = 0; i < count; ++i)
    value |= static_cast<uint32_t>(static_cast<uint8_t>(bytes[i])) << (8 * i);
  return static_cast<int32_t>(value);
}

// The sum of the 16 int32 lanes (wrapping). Not _mm512_reduce_add_epi32 nor
// _mm512_extracti64x4_epi64: GCC 12's headers warn of an uninitialized value in them.
int32_t reduce_add(__m512i v) {
  alignas(64) uint32_t lanes[16];
  _mm512_store_si512(lanes, v);
  uint32_t sum = 0;
  for (uint32_t lane : lanes) sum += lane;
  return static_cast<int32_t>(sum);
}

// Σ of `count` int8 weights (wrapping int32).
int32_t sum_weights(const int8_t* weight, int64_t count) {
  if (count <= 32) {  // a depthwise channel's: cheaper than the vector's reduction
    int32_t sum = 0;
    for (int64_t i = 0; i < count; ++i) sum += weight[i];
    return sum;
  }
  const __m512i ones = _mm512_set1_epi8(1);
  __m512i sum = _mm512_setzero_si512();
  for (int64_t k = 0; k < count; k += 64)
    sum = dpbusd(sum, ones, _mm512_maskz_loadu_epi8(lane_range(0, count - k), weight + k));
  return reduce_add(sum);
}

// Requantization and clamp of one layer's output.
struct OutputFormat {
  Requantization mode;
  int32_t zero_point, lo, hi;
  // PyTorch mode with the zero point and the clamp in [0, 255]: pack64().
  bool packs;
  __m512i zero_point16, low, high;  // zp as int16; lo, hi as uint8

  explicit OutputFormat(const QuantizedLayer& q)
      : mode(q.mode),
        zero_point(q.out.zero_point),
        lo(q.clamp_lo),
        hi(q.clamp_hi),
        packs(q.mode == Requantization::pytorch && 0 <= q.out.zero_point &&
              q.out.zero_point <= 255 && 0 <= q.clamp_lo && q.clamp_lo <= q.clamp_hi &&
              q.clamp_hi <= 255),
        zero_point16(_mm512_set1_epi16(static_cast<int16_t>(q.out.zero_point))),
        low(_mm512_set1_epi8(static_cast<char>(q.clamp_lo))),
        high(_mm512_set1_epi8(static_cast<char>(q.clamp_hi))) {}
};

SPLITINFER_INLINE __m512i rne_scaled(__m512i acc, __m512 multiplier) {
  return _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_cvtepi32_ps(acc), multiplier));
}

// PyTorch mode for 64 accumulators: clamp(rne(float(acc) * M) + zp, lo, hi)
// as PyTorch's x86 kernels compute it: cvtps2dq (INT32_MIN where int32
// cannot hold the product), int16 saturation, + zp with int16 saturation,
// uint8 saturation, then the clamp. With zp, lo and hi in [0, 255] that is
// the reference's clamp of the exact sum (models/quantization.md 3.2). The
// packs leave accumulator j's dword 4L + i at byte 16L + 4j + i.
SPLITINFER_INLINE __m512i pack64(__m512i acc0, __m512i acc1, __m512i acc2, __m512i acc3,
                                 float multiplier, const OutputFormat& o) {
  const __m512 m = _mm512_set1_ps(multiplier);
  const __m512i low = _mm512_adds_epi16(
      _mm512_packs_epi32(rne_scaled(acc0, m), rne_scaled(acc1, m)), o.zero_point16);
  const __m512i high = _mm512_adds_epi16(
      _mm512_packs_epi32(rne_scaled(acc2, m), rne_scaled(acc3, m)), o.zero_point16);
  return _mm512_min_epu8(_mm512_max_epu8(_mm512_packus_epi16(low, high), o.low), o.high);
}

// Constants of up to kChunkChannels output channels of one group.
struct ChannelTerms {
  bool any_w_zp = false;
  int32_t offset[kChunkChannels];  // bias - x_zp·Σw + depth·x_zp·w_zp
  int32_t w_zp[kChunkChannels];
  float multiplier[kChunkChannels];

  ChannelTerms(const QuantizedLayer& q, const QuantizedWeights& w, int64_t first, int64_t count,
               int64_t depth) {
    const int64_t x_zp = q.in[0].zero_point;
    for (int64_t m = 0; m < count; ++m) {
      const int64_t c = first + m;
      const int64_t zp = w.zero_point[w.per_channel ? c : 0];
      const int64_t sum = sum_weights(w.weight + c * depth, depth);
      offset[m] = wrap((w.bias ? w.bias[c] : 0) - x_zp * sum + depth * x_zp * zp);
      w_zp[m] = static_cast<int32_t>(zp);
      multiplier[m] = channel_multiplier(q, w, c);
      any_w_zp = any_w_zp || zp != 0;
    }
  }
};

// Rows r0..r3 (64 positions each, one k per row) into the vpdpbusd layout:
// quad[j] holds, in dword 4L + i, the 4 k of position 16L + 4j + i.
SPLITINFER_INLINE void interleave4(__m512i r0, __m512i r1, __m512i r2, __m512i r3,
                                   __m512i (&quad)[4]) {
  const __m512i t0 = _mm512_unpacklo_epi8(r0, r1), t1 = _mm512_unpackhi_epi8(r0, r1);
  const __m512i t2 = _mm512_unpacklo_epi8(r2, r3), t3 = _mm512_unpackhi_epi8(r2, r3);
  quad[0] = _mm512_unpacklo_epi16(t0, t2);
  quad[1] = _mm512_unpackhi_epi16(t0, t2);
  quad[2] = _mm512_unpacklo_epi16(t1, t3);
  quad[3] = _mm512_unpackhi_epi16(t1, t3);
}

// Blocks of fewer than 64 positions (the last of a 14x14 or 28x28 map, the
// one block of a 7x7 map) in the narrow layout: positions 16j .. 16j + 15
// in quad[j], dword by dword, so that a block of n positions needs
// ceil(n / 16) accumulators per channel instead of 4 (BlockShape). A row
// of positions goes to it through byte d = 16L + 4j + i <- position
// 16j + 4L + i before interleave4(), and pack64()'s bytes come back to
// position order through the same permutation (it is its own inverse; the
// depthwise kernels' vectors of 16 consecutive positions use it too).
struct NarrowOrder {
  alignas(64) uint8_t bytes[64];
  NarrowOrder() {
    for (int d = 0; d < 64; ++d)
      bytes[d] = static_cast<uint8_t>(d % 16 / 4 * 16 + d / 16 * 4 + d % 4);
  }
};
const NarrowOrder kNarrowOrder;
SPLITINFER_INLINE __m512i narrow_order() { return _mm512_load_si512(kNarrowOrder.bytes); }

// How a block of `lanes` positions is computed: `quads` accumulators per
// channel (4 in interleave4's layout, fewer in the narrow one), and with
// `extra` one more position, the last, as a dot product along k (64 k per
// vpdpbusd) instead of a quad of its own: a 7x7 map's 49 positions take 3
// quads and one dot product where 4 quads would leave 15 lanes idle.
// (Without weight zero points only: the extra position has no Σx.)
struct BlockShape {
  int quads;
  bool extra;
  bool narrow() const { return quads < 4 || extra; }
};
BlockShape block_shape(int64_t lanes, bool sum_x) {
  if (!sum_x && lanes > 16 && lanes < 64 && lanes % 16 == 1)
    return {static_cast<int>(lanes / 16), true};
  return {lanes > 48 ? 4 : static_cast<int>((lanes + 15) / 16), false};
}

// Requantizes the positions of one output channel held in kQuads
// accumulators (interleave4's layout with 4, the narrow one with fewer) and
// stores the lanes of `mask` (lane l: position l): pack64() undoes the
// interleave.
template <int kQuads>
void store64(__m512i acc0, __m512i acc1, __m512i acc2, __m512i acc3, float multiplier,
             const OutputFormat& o, uint8_t* target, __mmask64 mask) {
  const __m512i zero = _mm512_setzero_si512();
  if (o.packs) {
    const __m512i bytes = pack64(acc0, kQuads > 1 ? acc1 : zero, kQuads > 2 ? acc2 : zero,
                                 kQuads > 3 ? acc3 : zero, multiplier, o);
    _mm512_mask_storeu_epi8(target, mask,
                            kQuads == 4 ? bytes : _mm512_permutexvar_epi8(narrow_order(), bytes));
    return;
  }
  alignas(64) int32_t values[4][16];
  _mm512_store_si512(values[0], acc0);
  _mm512_store_si512(values[1], acc1);
  _mm512_store_si512(values[2], acc2);
  _mm512_store_si512(values[3], acc3);
  const Requantizer requantize(o.mode, multiplier);
  for (int lane = 0; lane < 16 * kQuads; ++lane) {
    if (!(mask >> lane & 1)) continue;
    const int32_t value = kQuads == 4 ? values[lane % 16 / 4][lane / 16 * 4 + lane % 4]
                                      : values[lane / 16][lane % 16];
    target[lane] = saturate(requantize(value) + o.zero_point, o.lo, o.hi);
  }
}

// The register block: kRows output channels x 16·kQuads positions.
template <int kRows, bool kSumX, int kQuads = 4>
struct Block {
  __m512i acc[kRows][4];
  __m512i sum_x[4];

  [[gnu::always_inline]] Block(const ChannelTerms& t, int64_t m) {
#pragma GCC unroll 8
    for (int r = 0; r < kRows; ++r)
#pragma GCC unroll 8
      for (int j = 0; j < kQuads; ++j) acc[r][j] = _mm512_set1_epi32(t.offset[m + r]);
#pragma GCC unroll 8
    for (int j = 0; j < kQuads; ++j) sum_x[j] = _mm512_setzero_si512();
  }
  // 4 k of 64 positions, weights[r] the 4 k of output channel r.
  [[gnu::always_inline]] void add(const __m512i (&quad)[4], const int32_t* weights) {
#pragma GCC unroll 8
    for (int r = 0; r < kRows; ++r) {
      const __m512i weight = _mm512_set1_epi32(weights[r]);
#pragma GCC unroll 8
      for (int j = 0; j < kQuads; ++j) acc[r][j] = dpbusd(acc[r][j], quad[j], weight);
    }
    if constexpr (kSumX) {
      const __m512i ones = _mm512_set1_epi8(1);
#pragma GCC unroll 8
      for (int j = 0; j < kQuads; ++j) sum_x[j] = dpbusd(sum_x[j], quad[j], ones);
    }
  }
  // Weights [kRows, depth]: the 4 k at `weight` of each row.
  [[gnu::always_inline]] void add(const __m512i (&quad)[4], const int8_t* weight, int64_t depth) {
    int32_t weights[kRows];
#pragma GCC unroll 8
    for (int r = 0; r < kRows; ++r) weights[r] = load_int32(weight + r * depth);
    add(quad, weights);
  }
  // The last depth % 4 k (rows past depth are zeros).
  [[gnu::always_inline]] void add_tail(const __m512i (&quad)[4], const int8_t* weight,
                                       int64_t depth, int64_t k) {
    int32_t weights[kRows];
#pragma GCC unroll 8
    for (int r = 0; r < kRows; ++r)
      weights[r] = load_partial_int32(weight + r * depth + k, depth - k);
    add(quad, weights);
  }
  [[gnu::always_inline]] void store(const ChannelTerms& t, int64_t m, const OutputFormat& o,
                                    uint8_t* target, int64_t plane, __mmask64 mask) {
#pragma GCC unroll 8
    for (int r = 0; r < kRows; ++r) {
      if constexpr (kSumX) {
        const __m512i w_zp = _mm512_set1_epi32(t.w_zp[m + r]);
#pragma GCC unroll 8
        for (int j = 0; j < kQuads; ++j)
          acc[r][j] = _mm512_sub_epi32(acc[r][j], _mm512_mullo_epi32(sum_x[j], w_zp));
      }
      const __m512i zero = _mm512_setzero_si512();
      store64<kQuads>(acc[r][0], kQuads > 1 ? acc[r][1] : zero, kQuads > 2 ? acc[r][2] : zero,
                      kQuads > 3 ? acc[r][3] : zero, t.multiplier[m + r], o, target + r * plane,
                      mask);
    }
  }
};

// Calls body.template operator()<R>(m) over [0, count) in blocks of kMaxRows
// output channels, then one block of the rest.
template <int R, class Body>
void rows_tail(int64_t rows, int64_t m, Body& body) {
  if constexpr (R > 0) {
    if (rows == R)
      body.template operator()<R>(m);
    else
      rows_tail<R - 1>(rows, m, body);
  }
}
// Calls body.template operator()<Q>() for Q = quads (1 to 4).
template <class Body>
void by_quads(int quads, Body&& body) {
  switch (quads) {
    case 1:
      return body.template operator()<1>();
    case 2:
      return body.template operator()<2>();
    case 3:
      return body.template operator()<3>();
    default:
      return body.template operator()<4>();
  }
}

template <int kRowsPerBlock, class Body>
void for_row_blocks(int64_t count, Body&& body) {
  int64_t m = 0;
  for (; m + kRowsPerBlock <= count; m += kRowsPerBlock) body.template operator()<kRowsPerBlock>(m);
  rows_tail<kRowsPerBlock - 1>(count - m, m, body);
}

// ---- pointwise: 1x1, stride 1, output positions = input positions ----

template <int kRows, bool kSumX>
void pointwise_block(const uint8_t* x, int64_t in_plane, int64_t depth, const int8_t* weight,
                     const ChannelTerms& t, int64_t m, __mmask64 mask, const OutputFormat& o,
                     uint8_t* target, int64_t out_plane) {
  Block<kRows, kSumX> block(t, m);
  __m512i quad[4];
  int64_t k = 0;
  for (; k + 4 <= depth; k += 4, x += 4 * in_plane) {
    interleave4(_mm512_maskz_loadu_epi8(mask, x), _mm512_maskz_loadu_epi8(mask, x + in_plane),
                _mm512_maskz_loadu_epi8(mask, x + 2 * in_plane),
                _mm512_maskz_loadu_epi8(mask, x + 3 * in_plane), quad);
    block.add(quad, weight + k, depth);
  }
  if (k < depth) {
    __m512i rows[4];
    for (int64_t i = 0; i < 4; ++i)
      rows[i] =
          k + i < depth ? _mm512_maskz_loadu_epi8(mask, x + i * in_plane) : _mm512_setzero_si512();
    interleave4(rows[0], rows[1], rows[2], rows[3], quad);
    block.add_tail(quad, weight, depth, k);
  }
  block.store(t, m, o, target, out_plane, mask);
}

// ---- general convolutions: an implicit GEMM over blocks of 64 positions ----
//
// A block is up to 64 consecutive output positions of the tile (row-major),
// in lanes 0..63, cut into up to kMaxSegments segments whose input bytes, for
// any one tap, lie within a 64-byte window of the input plane. A tap of a
// segment is then one masked load (the positions read consecutive bytes: a
// row of a stride-1 conv, or whole rows when the input tile is as wide as the
// output) or a load and a vpermb; lanes that read padding keep x_zp.

struct BlockRecipe {
  int64_t first = 0;  // output position of lane 0
  int lanes = 0;      // positions in the block
  int segments = 0;
  uint32_t in_order = 0;  // bit s: segment s reads consecutive bytes
  __m512i index;          // byte of each lane within its segment's window
  // Per (tap, segment), tap-major: window start (bytes from the plane's
  // start; for in-order segments minus the segment's first lane), the lanes
  // that read the map (not padding), the window bytes inside the plane.
  int64_t start[kMaxTapSegments];
  __mmask64 valid[kMaxTapSegments];
  __mmask64 inside[kMaxTapSegments];
};

// `phase_w` > 0: the input tile is in column phases (column_phases(),
// stride 2 only): each row its even columns, then its odd ones, `phase_w` bytes each
// (g.in_w = 2·phase_w), so that consecutive positions of a row read
// consecutive bytes for every tap.
void build_block(const Conv2dParams& p, const ConvGeometry& g, const Placement& in_at,
                 const Placement& out_at, int64_t first, int max_segments, BlockRecipe& b,
                 int64_t phase_w = 0) {
  // Output position (oy, ox) of the tile reads tap (0, 0) at byte
  // oy * stride_h * in_w + ox * stride_w (its pattern) past position 0's
  // (ox with phases).
  const int64_t row_step = p.stride_h * g.in_w;
  const int64_t column_step = phase_w > 0 ? 1 : p.stride_w;
  alignas(64) uint8_t index[64] = {};
  int64_t window[kMaxSegments];
  __mmask64 segment_lanes[kMaxSegments];
  int lane = 0, segment = 0;
  int64_t position = first, oy = first / g.out_w, ox = first % g.out_w;
  b.in_order = 0;
  while (lane < 64 && position < g.positions && segment < max_segments) {
    const int64_t base = oy * row_step + ox * column_step;
    int64_t low = base, high = base;
    bool in_order = true;
    int count = 0;  // positions in the segment
    // Extend while the segment's bytes stay within a 64-byte window.
    for (int64_t y = oy, x = ox; lane + count < 64 && position + count < g.positions;) {
      const int64_t offset = y * row_step + x * column_step;
      const int64_t new_low = std::min(low, offset), new_high = std::max(high, offset);
      if (new_high - new_low > 63) break;
      low = new_low, high = new_high;
      in_order = in_order && offset == base + count;
      index[lane + count] = static_cast<uint8_t>(offset - base);  // rebased below
      ++count;
      if (++x == g.out_w) x = 0, ++y;
    }
    for (int i = 0; i < count; ++i)
      index[lane + i] = static_cast<uint8_t>(index[lane + i] + base - low);
    window[segment] = in_order ? base - lane : low;
    segment_lanes[segment] = lane_range(lane, lane + count);
    if (in_order) b.in_order |= 1u << segment;
    lane += count;
    position += count;
    ox += count;
    oy += ox / g.out_w, ox %= g.out_w;
    ++segment;
  }
  b.first = first;
  b.lanes = lane;
  b.segments = segment;
  b.index = _mm512_load_si512(index);
  // Lanes whose tap row ky (column kx) lies in the map, run by run of the
  // block's positions within one output row.
  __mmask64 row_valid[kMaxTapSegments], column_valid[kMaxTapSegments];
  std::fill(row_valid, row_valid + p.kernel_h, 0);
  std::fill(column_valid, column_valid + p.kernel_w, 0);
  int64_t run_y = first / g.out_w, run_x = first % g.out_w;
  for (int l = 0; l < lane; ++run_y, run_x = 0) {
    const int64_t run = std::min<int64_t>(lane - l, g.out_w - run_x);
    const __mmask64 run_lanes = lane_range(l, l + run);
    for (int64_t ky = 0; ky < p.kernel_h; ++ky) {
      const int64_t iy = (out_at.row0 + run_y) * p.stride_h - p.pad_h + ky * p.dilation_h;
      if (iy >= 0 && iy < in_at.full_h) row_valid[ky] |= run_lanes;
    }
    for (int64_t kx = 0; kx < p.kernel_w; ++kx) {
      const auto [valid_first, valid_last] = columns_inside(
          out_at.col0, g.out_w, p.stride_w, kx * p.dilation_w - p.pad_w, in_at.full_w);
      column_valid[kx] |= lane_range(l + valid_first - run_x, l + valid_last - run_x) & run_lanes;
    }
    l += static_cast<int>(run);
  }
  for (int64_t ky = 0; ky < p.kernel_h; ++ky) {
    for (int64_t kx = 0; kx < p.kernel_w; ++kx) {
      // Tap (ky, kx) of tile position 0, from the input tile's first byte (maybe outside it).
      const int64_t column = out_at.col0 * p.stride_w - p.pad_w + kx * p.dilation_w - in_at.col0;
      const int64_t phase = column & 1;  // (two's complement: 1 for odd negatives too)
      const int64_t origin =
          (out_at.row0 * p.stride_h - p.pad_h + ky * p.dilation_h - in_at.row0) * g.in_w +
          (phase_w > 0 ? phase * phase_w + (column - phase) / 2 : column);
      const int64_t tap = ky * p.kernel_w + kx;
      for (int s = 0; s < segment; ++s) {
        const int64_t e = tap * segment + s;
        b.start[e] = origin + window[s];
        b.valid[e] = row_valid[ky] & column_valid[kx] & segment_lanes[s];
        b.inside[e] = lane_range(-b.start[e], g.in_plane - b.start[e]);
      }
    }
  }
}

// One k (a tap of an input channel's plane) of the block's 64 lanes.
SPLITINFER_INLINE __m512i gather(const BlockRecipe& b, const uint8_t* plane, int64_t tap,
                                 __m512i x_zp) {
  __m512i row = x_zp;
  const int64_t base = tap * b.segments;
  for (int s = 0; s < b.segments; ++s) {
    const void* window = address(plane, b.start[base + s]);
    if (b.in_order >> s & 1)
      row = _mm512_mask_loadu_epi8(row, b.valid[base + s], window);
    else
      row = _mm512_mask_permutexvar_epi8(row, b.valid[base + s], b.index,
                                         _mm512_maskz_loadu_epi8(b.inside[base + s], window));
  }
  return row;
}

template <int kRows, bool kSumX>
void general_block(const BlockRecipe& b, const uint8_t* planes, const ConvGeometry& g, __m512i x_zp,
                   const int8_t* weight, const ChannelTerms& t, int64_t m, const OutputFormat& o,
                   uint8_t* target, int64_t out_plane) {
  Block<kRows, kSumX> block(t, m);
  const uint8_t* plane = planes;
  int64_t tap = 0;
  const auto next = [&]() __attribute__((always_inline)) {
    const __m512i row = gather(b, plane, tap, x_zp);
    if (++tap == g.taps) tap = 0, plane += g.in_plane;
    return row;
  };
  __m512i quad[4];
  int64_t k = 0;
  for (; k + 4 <= g.depth; k += 4) {
    const __m512i r0 = next(), r1 = next(), r2 = next(), r3 = next();
    interleave4(r0, r1, r2, r3, quad);
    block.add(quad, weight + k, g.depth);
  }
  if (k < g.depth) {
    __m512i rows[4];
    for (int64_t i = 0; i < 4; ++i) rows[i] = k + i < g.depth ? next() : _mm512_setzero_si512();
    interleave4(rows[0], rows[1], rows[2], rows[3], quad);
    block.add_tail(quad, weight, g.depth, k);
  }
  block.store(t, m, o, target, out_plane, lane_range(0, b.lanes));
}

// A block's taps are gathered once into the stack, in interleave4's layout,
// kPackDepth k at a time, for all of the chunk's output channels (gathering
// them again for every kRows channels cost more than the vpdpbusd: a block's
// k is up to four loads and permutes and a quarter of interleave4, for 4 x
// kRows vpdpbusd). Deeper convolutions go kPackDepth k at a time, each
// channel's 64 sums waiting between them in `partial` (int32 sums wrap the
// same in any order, so the result is the same).
constexpr int64_t kPackDepth = 512;  // 32 KiB of packed taps

// kNarrow: in the narrow layout (BlockShape::narrow()).
template <bool kNarrow>
void pack_block(const BlockRecipe& b, const uint8_t* planes, const ConvGeometry& g, __m512i x_zp,
                int64_t k0, int64_t k1, __m512i (*packed)[4]) {
  const uint8_t* plane = planes + k0 / g.taps * g.in_plane;
  int64_t tap = k0 % g.taps;
  const __m512i order = narrow_order();
  for (int64_t k = k0; k < k1; k += 4) {
    __m512i rows[4];
#pragma GCC unroll 4
    for (int64_t i = 0; i < 4; ++i) {
      if (k + i >= k1) {
        rows[i] = _mm512_setzero_si512();
        continue;
      }
      rows[i] = gather(b, plane, tap, x_zp);
      if constexpr (kNarrow) rows[i] = _mm512_permutexvar_epi8(order, rows[i]);
      if (++tap == g.taps) tap = 0, plane += g.in_plane;
    }
    interleave4(rows[0], rows[1], rows[2], rows[3], packed[(k - k0) / 4]);
  }
}

// The same for a pointwise convolution: k is an input channel's plane.
template <bool kNarrow>
void pack_pointwise(const uint8_t* x, int64_t in_plane, int64_t k0, int64_t k1, __mmask64 mask,
                    __m512i (*packed)[4]) {
  const __m512i order = narrow_order();
  for (int64_t k = k0; k < k1; k += 4) {
    __m512i rows[4];
#pragma GCC unroll 4
    for (int64_t i = 0; i < 4; ++i) {
      rows[i] = k + i < k1 ? _mm512_maskz_loadu_epi8(mask, x + (k + i) * in_plane)
                           : _mm512_setzero_si512();
      if constexpr (kNarrow) rows[i] = _mm512_permutexvar_epi8(order, rows[i]);
    }
    interleave4(rows[0], rows[1], rows[2], rows[3], packed[(k - k0) / 4]);
  }
}

// k in [k0, k1) of kRows channels from m (weight: channel m's row): from
// the channel terms (k0 = 0) or `partial`; stored as output (k1 = depth) or
// back to `partial`.
// kExtra: position 16·kQuads of the block too (BlockShape), its k bytes
// at `x_extra` (k0..k1), its sums between passes in partial[channel][3]
// (kQuads < 4).
template <int kRows, bool kSumX, int kQuads, bool kExtra>
void packed_block(const __m512i (*packed)[4], const ConvGeometry& g, const int8_t* weight,
                  int64_t k0, int64_t k1, __m512i (*partial)[4], const ChannelTerms& t, int64_t m,
                  const OutputFormat& o, uint8_t* target, int64_t out_plane, __mmask64 mask,
                  const uint8_t* x_extra) {
  static_assert(!(kExtra && (kSumX || kQuads == 4)), "no Σx for the extra position, nor room");
  if constexpr (kExtra) {
    __m512i dot[kRows];
#pragma GCC unroll 8
    for (int r = 0; r < kRows; ++r) dot[r] = k0 > 0 ? partial[m + r][3] : _mm512_setzero_si512();
    for (int64_t k = k0; k < k1; k += 64) {
      const __mmask64 lanes = lane_range(0, k1 - k);
      const __m512i x = _mm512_maskz_loadu_epi8(lanes, x_extra + (k - k0));
#pragma GCC unroll 8
      for (int r = 0; r < kRows; ++r)
        dot[r] = dpbusd(dot[r], x, _mm512_maskz_loadu_epi8(lanes, weight + r * g.depth + k));
    }
#pragma GCC unroll 8
    for (int r = 0; r < kRows; ++r) {
      if (k1 < g.depth) {
        partial[m + r][3] = dot[r];
        continue;
      }
      const int32_t acc = static_cast<int32_t>(static_cast<uint32_t>(t.offset[m + r]) +
                                               static_cast<uint32_t>(reduce_add(dot[r])));
      target[r * out_plane + 16 * kQuads] =
          saturate(Requantizer(o.mode, t.multiplier[m + r])(acc) + o.zero_point, o.lo, o.hi);
    }
    mask &= lane_range(0, 16 * kQuads);
  }
  Block<kRows, kSumX, kQuads> block(t, m);
  if (k0 > 0)
#pragma GCC unroll 8
    for (int r = 0; r < kRows; ++r)
#pragma GCC unroll 4
      for (int j = 0; j < kQuads; ++j) block.acc[r][j] = partial[m + r][j];
  int64_t k = k0;
  for (; k + 4 <= k1; k += 4) {
    // The next kRows channels' weights for these k, a cache line per 16 k:
    // their rows lie `depth` apart, too short a stream in each pass for the
    // hardware's prefetcher.
    if ((k - k0) % 64 == 0)
#pragma GCC unroll 8
      for (int r = 0; r < kRows; ++r)
        _mm_prefetch(static_cast<const char*>(address(reinterpret_cast<const uint8_t*>(weight),
                                                      (kRows + r) * g.depth + k)),
                     _MM_HINT_T0);
    block.add(packed[(k - k0) / 4], weight + k, g.depth);
  }
  if (k < k1) block.add_tail(packed[(k - k0) / 4], weight, g.depth, k);
  if (k1 == g.depth) {
    block.store(t, m, o, target, out_plane, mask);
    return;
  }
#pragma GCC unroll 8
  for (int r = 0; r < kRows; ++r)
#pragma GCC unroll 4
    for (int j = 0; j < kQuads; ++j) partial[m + r][j] = block.acc[r][j];
}

// ---- depthwise: one input channel per output channel ----
//
// 16 positions of an output row per vector, up to 4 vectors at once. For
// kernel row ky, the 4 taps kx = 4j..4j+3 of position i are bytes
// i*stride + kx*dilation of a 64-byte window of the input row: one vpermb
// gathers them as vpdpbusd's quads, and the weights of those taps (0 past
// the kernel's width) are one int32. Two output rows at a time share the
// input rows both read (stride a multiple of the dilation). A tile whose
// input plane fits in 64 bytes (7x7 maps) is one register: every tap of
// every position is one masked vpermb of it.

constexpr int64_t kMaxRowVectors = 64;  // output rows up to 1024 columns

struct DepthwisePlan {
  __m512i index[4];  // per quad of kernel columns
  // The whole-plane form: per kernel row and vector, the plane byte of each
  // (position, tap) and which of them lie in the map.
  __m512i plane_index[4][4];
  __mmask64 plane_valid[4][4];
  // Per 16-position vector v of an output row: its window's first byte
  // (tile column (col0 + 16v) * stride - pad - in.col0) and the window bytes
  // inside the tile's row.
  int64_t window[kMaxRowVectors];
  __mmask64 inside[kMaxRowVectors];
  int64_t row_vectors;
  // One quad of columns (KW <= 4): byte 4·ky + kx of a channel's weights
  // as vpdpbusd operands is its weight ky·KW + kx (0 past KW).
  __m512i weight_index;
  __mmask64 weight_lanes = 0;
  int quads;  // ceil(KW / 4)
  bool whole_plane;

  static bool fits(const Conv2dParams& p, const ConvGeometry& g) {
    return p.kernel_w <= 16 && p.kernel_h <= 16 &&
           15 * p.stride_w + (p.kernel_w - 1) * p.dilation_w <= 63 &&
           g.out_w <= 16 * kMaxRowVectors;
  }
  DepthwisePlan(const Conv2dParams& p, const ConvGeometry& g, const Placement& in_at,
                const Placement& out_at)
      : row_vectors((g.out_w + 15) / 16),
        quads(static_cast<int>((p.kernel_w + 3) / 4)),
        whole_plane(g.in_plane <= 64 && g.positions <= 64 && p.kernel_h <= 4 && p.kernel_w <= 4) {
    alignas(64) uint8_t bytes[64];
    for (int j = 0; j < quads; ++j) {
      for (int lane = 0; lane < 64; ++lane) {
        const int64_t kx = 4 * j + lane % 4;
        bytes[lane] =
            kx < p.kernel_w ? static_cast<uint8_t>(lane / 4 * p.stride_w + kx * p.dilation_w) : 0;
      }
      index[j] = _mm512_load_si512(bytes);
    }
    for (int lane = 0; lane < 64; ++lane) {
      const int64_t ky = lane / 4, kx = lane % 4;
      bytes[lane] = 0;
      if (ky >= p.kernel_h || kx >= p.kernel_w) continue;
      bytes[lane] = static_cast<uint8_t>(ky * p.kernel_w + kx);
      weight_lanes |= __mmask64{1} << lane;
    }
    weight_index = _mm512_load_si512(bytes);
    for (int64_t v = 0; v < row_vectors; ++v) {
      window[v] = (out_at.col0 + 16 * v) * p.stride_w - p.pad_w - in_at.col0;
      inside[v] = lane_range(-window[v], g.in_w - window[v]);
    }
    if (!whole_plane) return;
    for (int64_t ky = 0; ky < p.kernel_h; ++ky) {
      for (int c = 0; c < 4; ++c) {
        uint64_t valid = 0;
        for (int lane = 0; lane < 64; ++lane) {
          const int64_t position = 16 * c + lane / 4, kx = lane % 4;
          bytes[lane] = 0;
          if (position >= g.positions || kx >= p.kernel_w) continue;
          const int64_t iy =
              (out_at.row0 + position / g.out_w) * p.stride_h - p.pad_h + ky * p.dilation_h;
          const int64_t ix =
              (out_at.col0 + position % g.out_w) * p.stride_w - p.pad_w + kx * p.dilation_w;
          if (iy < 0 || iy >= in_at.full_h || ix < 0 || ix >= in_at.full_w) continue;
          bytes[lane] = static_cast<uint8_t>((iy - in_at.row0) * g.in_w + ix - in_at.col0);
          valid |= uint64_t{1} << lane;
        }
        plane_index[ky][c] = _mm512_load_si512(bytes);
        plane_valid[ky][c] = valid;
      }
    }
  }
};

// One output channel's constants and weights (as vpdpbusd operands).
template <int kQuads>
struct DepthwiseChannel {
  const uint8_t* plane;  // the input channel
  int32_t offset, w_zp;
  float multiplier;
  int32_t weights[16][kQuads];  // per kernel row: taps 4j..4j+3, 0 past the kernel's width
  int32_t ones[kQuads];         // 1 for each tap of the quad, for Σx

  DepthwiseChannel(const Conv2dParams& p, const DepthwisePlan& plan, const uint8_t* plane,
                   const int8_t* weight, const ChannelTerms& t, int64_t m)
      : plane(plane), offset(t.offset[m]), w_zp(t.w_zp[m]), multiplier(t.multiplier[m]) {
    if constexpr (kQuads == 1) {
      // All kernel rows (KH <= 16, checked by fits()) in one permute.
      const __m512i bytes = _mm512_maskz_loadu_epi8(lane_range(0, p.kernel_h * p.kernel_w), weight);
      _mm512_storeu_si512(
          weights, _mm512_maskz_permutexvar_epi8(plan.weight_lanes, plan.weight_index, bytes));
      ones[0] =
          static_cast<int32_t>(p.kernel_w == 4 ? 0x01010101u : (1u << (8 * p.kernel_w)) / 255u);
      return;
    }
    for (int j = 0; j < kQuads; ++j) {
      const int64_t count = std::min<int64_t>(4, p.kernel_w - 4 * j);
      for (int64_t ky = 0; ky < p.kernel_h; ++ky)
        weights[ky][j] = load_partial_int32(weight + ky * p.kernel_w + 4 * j, count);
      ones[j] = static_cast<int32_t>(count == 4 ? 0x01010101u : (1u << (8 * count)) / 255u);
    }
  }
};

// Requantizes 4 vectors of 16 consecutive positions and stores `count` of them.
SPLITINFER_INLINE void store_positions(const __m512i (&acc)[4], const __m512i (&sum_x)[4],
                                       bool sums, int32_t w_zp, float multiplier,
                                       const OutputFormat& o, uint8_t* target, int64_t count) {
  __m512i values[4];
  const __m512i zp = _mm512_set1_epi32(w_zp);
#pragma GCC unroll 4
  for (int c = 0; c < 4; ++c)
    values[c] = sums ? _mm512_sub_epi32(acc[c], _mm512_mullo_epi32(sum_x[c], zp)) : acc[c];
  if (o.packs) {
    const __m512i bytes = pack64(values[0], values[1], values[2], values[3], multiplier, o);
    _mm512_mask_storeu_epi8(target, lane_range(0, count),
                            _mm512_permutexvar_epi8(narrow_order(), bytes));
    return;
  }
  alignas(64) int32_t lanes[4][16];
#pragma GCC unroll 4
  for (int c = 0; c < 4; ++c) _mm512_store_si512(lanes[c], values[c]);
  const Requantizer requantize(o.mode, multiplier);
  for (int64_t i = 0; i < count; ++i)
    target[i] = saturate(requantize(lanes[i / 16][i % 16]) + o.zero_point, o.lo, o.hi);
}

// Input row t (in dilations from the first that kRows output rows, `step`
// dilations apart, read): where it starts in the plane, the lanes a load
// of it takes (none outside the map: all x_zp), and which of the rows read
// it, as their kernel row t - r·step.
template <int kRows>
struct InputRow {
  int64_t offset;
  __mmask64 mask;
  int64_t ky[kRows];
  bool uses[kRows];

  SPLITINFER_INLINE InputRow(const Conv2dParams& p, const ConvGeometry& g, const Placement& in_at,
                             int64_t base, int64_t t, int64_t step) {
    const int64_t iy = base + t * p.dilation_h;
    const bool valid = iy >= 0 && iy < in_at.full_h;
    offset = valid ? (iy - in_at.row0) * g.in_w : 0;
    mask = valid ? ~__mmask64{0} : 0;
#pragma GCC unroll 4
    for (int r = 0; r < kRows; ++r) {
      ky[r] = t - r * step;
      uses[r] = ky[r] >= 0 && ky[r] < p.kernel_h;
    }
  }
};

// kRows output rows from `oy`, whose kernel rows lie `step` dilations apart.
template <int kQuads, int kRows, bool kSumX>
SPLITINFER_INLINE void depthwise_rows(const Conv2dParams& p, const ConvGeometry& g,
                                      const Placement& in_at, const Placement& out_at,
                                      const DepthwisePlan& plan, const DepthwiseChannel<kQuads>& ch,
                                      int64_t oy, int64_t step, __m512i x_zp, const OutputFormat& o,
                                      uint8_t* target) {
  const int64_t input_rows = p.kernel_h + (kRows - 1) * step;
  const int64_t base = (out_at.row0 + oy) * p.stride_h - p.pad_h;
  for (int64_t v0 = 0; v0 < plan.row_vectors; v0 += 4) {
    const int64_t vectors = std::min<int64_t>(4, plan.row_vectors - v0);
    __m512i acc[kRows][4], sum_x[kRows][4];
#pragma GCC unroll 4
    for (int r = 0; r < kRows; ++r)
#pragma GCC unroll 4
      for (int c = 0; c < 4; ++c)
        acc[r][c] = _mm512_set1_epi32(ch.offset), sum_x[r][c] = _mm512_setzero_si512();
    for (int64_t t = 0; t < input_rows; ++t) {
      const InputRow<kRows> in_row(p, g, in_at, base, t, step);
      const uint8_t* row = ch.plane + in_row.offset;
      const __mmask64 row_mask = in_row.mask;
      const bool* uses = in_row.uses;
      __m512i w[kRows][kQuads];
#pragma GCC unroll 4
      for (int r = 0; r < kRows; ++r)
#pragma GCC unroll 4
        for (int j = 0; j < kQuads; ++j)
          w[r][j] = _mm512_set1_epi32(uses[r] ? ch.weights[in_row.ky[r]][j] : 0);
#pragma GCC unroll 4
      for (int c = 0; c < 4; ++c) {
        if (c >= vectors) break;
        const __m512i bytes = _mm512_mask_loadu_epi8(x_zp, plan.inside[v0 + c] & row_mask,
                                                     address(row, plan.window[v0 + c]));
#pragma GCC unroll 4
        for (int j = 0; j < kQuads; ++j) {
          const __m512i quad = _mm512_permutexvar_epi8(plan.index[j], bytes);
#pragma GCC unroll 4
          for (int r = 0; r < kRows; ++r) {
            if (!uses[r]) continue;
            acc[r][c] = dpbusd(acc[r][c], quad, w[r][j]);
            if constexpr (kSumX)
              sum_x[r][c] = dpbusd(sum_x[r][c], quad, _mm512_set1_epi32(ch.ones[j]));
          }
        }
      }
    }
#pragma GCC unroll 4
    for (int r = 0; r < kRows; ++r)
      store_positions(acc[r], sum_x[r], kSumX, ch.w_zp, ch.multiplier, o,
                      target + (oy + r) * g.out_w + 16 * v0,
                      std::min<int64_t>(64, g.out_w - 16 * v0));
  }
}

// The flat form, for stride 1 on tiles as wide as the map (one node, or a
// split by rows) of up to 16384 positions (128x128): output position
// q = oy·W + ox reads the plane byte q + shift[ky] + kx·dilation, so 16
// consecutive positions are one window whatever rows they span (a 14- or
// 28-wide map fills its vectors). Window bytes outside the plane (padding
// rows) load as x_zp, and so do taps that cross a row end (padding
// columns), by masks made once per tile for every channel (40 KiB of stack).
constexpr int64_t kFlatVectors = 1024;  // of 16 positions
constexpr int64_t kFlatRows = 4;       // kernel rows

struct DepthwiseFlat {
  int64_t shift[kFlatRows] = {};
  // Per vector of 16 positions: the taps (lane 4i + kx) inside the map's
  // columns, and per kernel row the window bytes inside the plane.
  __mmask64 inside[kFlatVectors];
  __mmask64 load[kFlatRows][kFlatVectors];

  static bool fits(const Conv2dParams& p, const ConvGeometry& g, const Placement& in_at,
                   const Placement& out_at) {
    const int64_t w = g.in_w;
    return p.stride_h == 1 && p.stride_w == 1 && p.kernel_w <= 4 && p.kernel_h <= kFlatRows &&
           in_at.col0 == 0 && out_at.col0 == 0 && w == in_at.full_w && g.out_w == w &&
           // a lane's column byte, a vector (up to 15 columns) on, before it wraps
           out_at.full_w == w && w + p.pad_w + 3 * p.dilation_w + 16 < 256 &&
           15 + 3 * p.dilation_w <= 63 && g.positions <= 16 * kFlatVectors;
  }

  DepthwiseFlat(const Conv2dParams& p, const ConvGeometry& g, const Placement& in_at,
                const Placement& out_at) {
    const int64_t w = g.in_w, vectors = (g.positions + 15) / 16;
    for (int64_t ky = 0; ky < p.kernel_h; ++ky) {
      shift[ky] = (out_at.row0 - p.pad_h + ky * p.dilation_h - in_at.row0) * w - p.pad_w;
      for (int64_t v = 0; v < vectors; ++v)
        load[ky][v] = lane_range(-(16 * v + shift[ky]), g.in_plane - (16 * v + shift[ky]));
    }
    // Lane (i, kx) of vector v holds column(16v + i) + kx·dilation: a tap
    // reads the map where that lies in [pad, W + pad).
    alignas(64) uint8_t columns[64], wraps[64];
    for (int lane = 0; lane < 64; ++lane) {
      const int64_t kx_offset = lane % 4 * p.dilation_w;
      columns[lane] = static_cast<uint8_t>(lane / 4 % w + kx_offset);
      wraps[lane] = static_cast<uint8_t>(w + kx_offset);
    }
    __m512i column = _mm512_load_si512(columns);
    const __m512i wrap = _mm512_load_si512(wraps);
    const __m512i low = _mm512_set1_epi8(static_cast<char>(p.pad_w));
    const __m512i high = _mm512_set1_epi8(static_cast<char>(w + p.pad_w));
    const __m512i width = _mm512_set1_epi8(static_cast<char>(w));
    const __m512i step = _mm512_set1_epi8(static_cast<char>(16 % w));
    for (int64_t v = 0; v < vectors; ++v) {
      inside[v] = _mm512_cmpge_epu8_mask(column, low) & _mm512_cmplt_epu8_mask(column, high);
      column = _mm512_add_epi8(column, step);
      column = _mm512_mask_sub_epi8(column, _mm512_cmpge_epu8_mask(column, wrap), column, width);
    }
  }
};

// kChannels channels at once (their windows share the masks). Not inlined
// (nor the other forms): a profile (jobs/profile) then names the depthwise loops.
template <int kChannels, bool kSumX>
[[gnu::noinline]] void depthwise_flat(const Conv2dParams& p, const ConvGeometry& g,
                                      const DepthwiseFlat& f, const DepthwisePlan& plan,
                                      const DepthwiseChannel<1>* const* ch, uint8_t* const* target,
                                      __m512i x_zp, const OutputFormat& o) {
  for (int64_t q0 = 0; q0 < g.positions; q0 += 64) {
    const int64_t count = std::min<int64_t>(64, g.positions - q0), v0 = q0 / 16;
    const int64_t vectors = (count + 15) / 16;
    __m512i acc[kChannels][4], sum_x[kChannels][4];
#pragma GCC unroll 2
    for (int k = 0; k < kChannels; ++k)
#pragma GCC unroll 4
      for (int c = 0; c < 4; ++c)
        acc[k][c] = _mm512_set1_epi32(ch[k]->offset), sum_x[k][c] = _mm512_setzero_si512();
    for (int64_t ky = 0; ky < p.kernel_h; ++ky) {
      __m512i w[kChannels];
#pragma GCC unroll 2
      for (int k = 0; k < kChannels; ++k) w[k] = _mm512_set1_epi32(ch[k]->weights[ky][0]);
      const int64_t start = q0 + f.shift[ky];
#pragma GCC unroll 4
      for (int c = 0; c < 4; ++c) {
        if (c >= vectors) break;
        const __mmask64 load = f.load[ky][v0 + c], inside = f.inside[v0 + c];
#pragma GCC unroll 2
        for (int k = 0; k < kChannels; ++k) {
          const __m512i bytes =
              _mm512_mask_loadu_epi8(x_zp, load, address(ch[k]->plane, start + 16 * c));
          const __m512i quad = _mm512_mask_permutexvar_epi8(x_zp, inside, plan.index[0], bytes);
          acc[k][c] = dpbusd(acc[k][c], quad, w[k]);
          if constexpr (kSumX)
            sum_x[k][c] = dpbusd(sum_x[k][c], quad, _mm512_set1_epi32(ch[k]->ones[0]));
        }
      }
    }
#pragma GCC unroll 2
    for (int k = 0; k < kChannels; ++k)
      store_positions(acc[k], sum_x[k], kSumX, ch[k]->w_zp, ch[k]->multiplier, o, target[k] + q0,
                      count);
  }
}

// Rows of up to 32 outputs (two vectors; stride 2 on maps up to 64 wide),
// kChannels channels at once: one channel's few sums per row would wait on
// each other. As depthwise_rows() otherwise, for kernels up to 4 wide.
template <int kChannels, int kRows, bool kSumX>
SPLITINFER_INLINE void narrow_rows(const Conv2dParams& p, const ConvGeometry& g,
                                   const Placement& in_at, const Placement& out_at,
                                   const DepthwisePlan& plan, const DepthwiseChannel<1>* const* ch,
                                   uint8_t* const* target, int64_t oy, int64_t step, __m512i x_zp,
                                   const OutputFormat& o) {
  const int64_t input_rows = p.kernel_h + (kRows - 1) * step;
  const int64_t base = (out_at.row0 + oy) * p.stride_h - p.pad_h;
  const int64_t vectors = plan.row_vectors;
  __m512i acc[kChannels][kRows][2], sum_x[kChannels][kRows][2];
#pragma GCC unroll 2
  for (int k = 0; k < kChannels; ++k)
#pragma GCC unroll 2
    for (int r = 0; r < kRows; ++r)
#pragma GCC unroll 2
      for (int c = 0; c < 2; ++c)
        acc[k][r][c] = _mm512_set1_epi32(ch[k]->offset), sum_x[k][r][c] = _mm512_setzero_si512();
  for (int64_t t = 0; t < input_rows; ++t) {
    const InputRow<kRows> in_row(p, g, in_at, base, t, step);
    const int64_t row = in_row.offset;
    const __mmask64 row_mask = in_row.mask;
    const bool* uses = in_row.uses;
    __m512i w[kChannels][kRows];
#pragma GCC unroll 2
    for (int r = 0; r < kRows; ++r)
#pragma GCC unroll 2
      for (int k = 0; k < kChannels; ++k)
        w[k][r] = _mm512_set1_epi32(uses[r] ? ch[k]->weights[in_row.ky[r]][0] : 0);
#pragma GCC unroll 2
    for (int c = 0; c < 2; ++c) {
      if (c >= vectors) break;
#pragma GCC unroll 2
      for (int k = 0; k < kChannels; ++k) {
        const __m512i bytes = _mm512_mask_loadu_epi8(x_zp, plan.inside[c] & row_mask,
                                                     address(ch[k]->plane + row, plan.window[c]));
        const __m512i quad = _mm512_permutexvar_epi8(plan.index[0], bytes);
#pragma GCC unroll 2
        for (int r = 0; r < kRows; ++r) {
          if (!uses[r]) continue;
          acc[k][r][c] = dpbusd(acc[k][r][c], quad, w[k][r]);
          if constexpr (kSumX)
            sum_x[k][r][c] = dpbusd(sum_x[k][r][c], quad, _mm512_set1_epi32(ch[k]->ones[0]));
        }
      }
    }
  }
  const __m512i zero = _mm512_setzero_si512();
#pragma GCC unroll 2
  for (int k = 0; k < kChannels; ++k)
#pragma GCC unroll 2
    for (int r = 0; r < kRows; ++r) {
      const __m512i sums[4] = {acc[k][r][0], acc[k][r][1], zero, zero};
      const __m512i xs[4] = {sum_x[k][r][0], sum_x[k][r][1], zero, zero};
      store_positions(sums, xs, kSumX, ch[k]->w_zp, ch[k]->multiplier, o,
                      target[k] + (oy + r) * g.out_w, g.out_w);
    }
}

template <int kChannels, bool kSumX>
[[gnu::noinline]] void depthwise_narrow(const Conv2dParams& p, const ConvGeometry& g,
                                        const Placement& in_at, const Placement& out_at,
                                        const DepthwisePlan& plan,
                                        const DepthwiseChannel<1>* const* ch,
                                        uint8_t* const* target, __m512i x_zp,
                                        const OutputFormat& o) {
  const int64_t step = p.stride_h % p.dilation_h == 0 ? p.stride_h / p.dilation_h : 0;
  int64_t oy = 0;
  if (step > 0 && step < p.kernel_h)
    for (; oy + 2 <= g.out_h; oy += 2)
      narrow_rows<kChannels, 2, kSumX>(p, g, in_at, out_at, plan, ch, target, oy, step, x_zp, o);
  for (; oy < g.out_h; ++oy)
    narrow_rows<kChannels, 1, kSumX>(p, g, in_at, out_at, plan, ch, target, oy, 0, x_zp, o);
}

template <int kQuads, bool kSumX>
[[gnu::noinline]] void depthwise_channel(const Conv2dParams& p, const ConvGeometry& g,
                                         const Placement& in_at, const Placement& out_at,
                                         const DepthwisePlan& plan,
                                         const DepthwiseChannel<kQuads>& ch, __m512i x_zp,
                                         const OutputFormat& o, uint8_t* target) {
  if constexpr (kQuads == 1) {
    if (plan.whole_plane) {
      const __m512i plane = _mm512_maskz_loadu_epi8(lane_range(0, g.in_plane), ch.plane);
      __m512i acc[4], sum_x[4];
#pragma GCC unroll 4
      for (int c = 0; c < 4; ++c)
        acc[c] = _mm512_set1_epi32(ch.offset), sum_x[c] = _mm512_setzero_si512();
      for (int64_t ky = 0; ky < p.kernel_h; ++ky) {
        const __m512i w = _mm512_set1_epi32(ch.weights[ky][0]);
#pragma GCC unroll 4
        for (int c = 0; c < 4; ++c) {
          const __m512i quad = _mm512_mask_permutexvar_epi8(x_zp, plan.plane_valid[ky][c],
                                                            plan.plane_index[ky][c], plane);
          acc[c] = dpbusd(acc[c], quad, w);
          if constexpr (kSumX) sum_x[c] = dpbusd(sum_x[c], quad, _mm512_set1_epi32(ch.ones[0]));
        }
      }
      store_positions(acc, sum_x, kSumX, ch.w_zp, ch.multiplier, o, target, g.positions);
      return;
    }
  }
  // Output rows oy and oy + 1 read kernel rows `step` dilations apart when
  // the stride is a multiple of the dilation: they share input rows.
  const int64_t step = p.stride_h % p.dilation_h == 0 ? p.stride_h / p.dilation_h : 0;
  int64_t oy = 0;
  if (step > 0 && step < p.kernel_h)
    for (; oy + 2 <= g.out_h; oy += 2)
      depthwise_rows<kQuads, 2, kSumX>(p, g, in_at, out_at, plan, ch, oy, step, x_zp, o, target);
  for (; oy < g.out_h; ++oy)
    depthwise_rows<kQuads, 1, kSumX>(p, g, in_at, out_at, plan, ch, oy, 0, x_zp, o, target);
}

// The input tile with each row's even columns first, then its odd ones,
// `phase_w` bytes each (the odd half one short of it for an odd width; its
// last byte is never read inside the map), in a buffer of this thread's
// that grows to the largest tile seen: one vpermt2b per 64 bytes of each half.
const uint8_t* column_phases(const Tensor& in, int64_t phase_w) {
  thread_local std::vector<uint8_t> buffer;
  const int64_t width = in.shape.w, rows = in.shape.n * in.shape.c * in.shape.h;
  if (buffer.size() < static_cast<size_t>(rows * 2 * phase_w))
    buffer.resize(static_cast<size_t>(rows * 2 * phase_w));
  alignas(64) uint8_t even[64], odd[64];
  for (int i = 0; i < 64; ++i) even[i] = static_cast<uint8_t>(2 * i), odd[i] = even[i] + 1;
  const __m512i even_index = _mm512_load_si512(even), odd_index = _mm512_load_si512(odd);
  const uint8_t* from = in.u8();
  uint8_t* to = buffer.data();
  for (int64_t row = 0; row < rows; ++row, from += width, to += 2 * phase_w) {
    for (int64_t x = 0; x < width; x += 128) {
      const __m512i low = _mm512_maskz_loadu_epi8(lane_range(0, width - x), from + x);
      const __m512i high = _mm512_maskz_loadu_epi8(lane_range(0, width - x - 64), from + x + 64);
      _mm512_mask_storeu_epi8(to + x / 2, lane_range(0, phase_w - x / 2),
                              _mm512_permutex2var_epi8(low, even_index, high));
      _mm512_mask_storeu_epi8(to + phase_w + x / 2, lane_range(0, width / 2 - x / 2),
                              _mm512_permutex2var_epi8(low, odd_index, high));
    }
  }
  return buffer.data();
}

void conv2d_q_vnni(const QuantizedLayer& q, const Conv2dParams& p, const Tensor& in,
                   const Placement& in_at, const QuantizedWeights& w, Tensor& out,
                   const Placement& out_at) {
  const ConvGeometry g(p, in, in_at, out, out_at);
  if (g.positions == 0 || out.shape.c == 0) return;
  const OutputFormat o(q);
  const __m512i x_zp = _mm512_set1_epi8(static_cast<char>(q.in[0].zero_point));
  const bool pointwise = p.kernel_h == 1 && p.kernel_w == 1 && p.stride_h == 1 && p.stride_w == 1 &&
                         p.pad_h == 0 && p.pad_w == 0 && in_at.row0 == out_at.row0 &&
                         in_at.col0 == out_at.col0 && in.shape.h == g.out_h &&
                         in.shape.w == g.out_w;

  if (g.in_per_group == 1 && DepthwisePlan::fits(p, g)) {
    const DepthwisePlan plan(p, g, in_at, out_at);
    std::optional<DepthwiseFlat> flat;
    if (plan.quads == 1 && !plan.whole_plane && DepthwiseFlat::fits(p, g, in_at, out_at))
      flat.emplace(p, g, in_at, out_at);
    const bool narrow = plan.quads == 1 && !plan.whole_plane && plan.row_vectors <= 2;
    // Each output channel reads the one input channel of its group: chunks
    // run across groups (one channel each, in a depthwise layer).
    const auto plane = [&](int64_t c) {
      return in.u8() + ((out_at.channel0 + c) / g.out_per_group - in_at.channel0) * g.in_plane;
    };
    for (int64_t first = 0; first < out.shape.c; first += kChunkChannels) {
      const int64_t count = std::min(kChunkChannels, out.shape.c - first);
      const ChannelTerms t(q, w, first, count, g.depth);
      if (flat || narrow) {
        const auto run_pair = [&]<int kChannels>(int64_t m) {
          const DepthwiseChannel<1>* ch[kChannels];
          uint8_t* target[kChannels];
          std::optional<DepthwiseChannel<1>> channel[kChannels];
          bool sums = false;
          for (int k = 0; k < kChannels; ++k) {
            const int64_t c = first + m + k;
            ch[k] = &channel[k].emplace(p, plan, plane(c), w.weight + c * g.depth, t, m + k);
            target[k] = out.u8() + c * g.positions;
            sums = sums || ch[k]->w_zp != 0;
          }
          if (flat && sums)
            depthwise_flat<kChannels, true>(p, g, *flat, plan, ch, target, x_zp, o);
          else if (flat)
            depthwise_flat<kChannels, false>(p, g, *flat, plan, ch, target, x_zp, o);
          else if (sums)
            depthwise_narrow<kChannels, true>(p, g, in_at, out_at, plan, ch, target, x_zp, o);
          else
            depthwise_narrow<kChannels, false>(p, g, in_at, out_at, plan, ch, target, x_zp, o);
        };
        int64_t m = 0;
        for (; m + 2 <= count; m += 2) run_pair.template operator()<2>(m);
        if (m < count) run_pair.template operator()<1>(m);
        continue;
      }
      const auto run = [&]<int kQuads>() {
        for (int64_t m = 0; m < count; ++m) {
          const int64_t c = first + m;
          const DepthwiseChannel<kQuads> ch(p, plan, plane(c), w.weight + c * g.depth, t, m);
          uint8_t* target = out.u8() + c * g.positions;
          if (ch.w_zp != 0)
            depthwise_channel<kQuads, true>(p, g, in_at, out_at, plan, ch, x_zp, o, target);
          else
            depthwise_channel<kQuads, false>(p, g, in_at, out_at, plan, ch, x_zp, o, target);
        }
      };
      switch (plan.quads) {
        case 1:
          run.template operator()<1>();
          break;
        case 2:
          run.template operator()<2>();
          break;
        case 3:
          run.template operator()<3>();
          break;
        default:
          run.template operator()<4>();
          break;
      }
    }
    return;
  }
  if (!pointwise && g.taps > kMaxTapSegments)
    return conv2d_q_portable(q, p, in, in_at, w, out, out_at);

  const int max_segments =
      static_cast<int>(std::min<int64_t>(kMaxSegments, kMaxTapSegments / g.taps));
  // Stride 2 across, kernels 5 or more wide (the 7x7 stem): the blocks
  // read the input in column phases (gp), a tap's bytes for a row's
  // positions then consecutive (one masked load per segment instead of a
  // load and a permute, and segments of 64 positions). Narrower kernels
  // gather too few taps per input byte for the copy to pay (measured: 3x3
  // and 1x1 stride-2 layers of resnet18 10-50% slower with it).
  ConvGeometry gp = g;
  const uint8_t* input = in.u8();
  int64_t phase_w = 0;
  if (!pointwise && p.stride_w == 2 && p.dilation_w == 1 && p.kernel_w >= 5) {
    phase_w = (g.in_w + 1) / 2;
    gp.in_w = 2 * phase_w;
    gp.in_plane = in.shape.h * gp.in_w;
    input = column_phases(in, phase_w);
  }
  for_each_group(g, in_at, out, out_at, [&](const GroupRange& range) {
    const uint8_t* planes = input + range.first_in * gp.in_plane;
    for (int64_t first = range.first; first < range.end; first += kChunkChannels) {
      const int64_t count = std::min(kChunkChannels, range.end - first);
      const ChannelTerms t(q, w, first, count, g.depth);
      const int8_t* weight = w.weight + first * g.depth;
      uint8_t* target = out.u8() + first * g.positions;
      alignas(64) __m512i partial[kChunkChannels][4];  // 64 KiB: sums between passes
      const auto by_blocks = [&]<bool kSumX>() {
        constexpr int kRows = kSumX ? kMaxRows - 1 : kMaxRows;  // sum_x takes 4 registers
        alignas(64) __m512i packed[kPackDepth / 4][4];
        alignas(64) uint8_t x_extra[kPackDepth];
        // The packed k of the chunk's channels, kRows at a time, for a block of
        // `shape` at output position `position`.
        const auto run_blocks = [&](const BlockShape& shape, int64_t k0, int64_t k1,
                                    int64_t position, __mmask64 mask) {
          if (shape.extra)  // the extra position, 16·quads: quad[quads]'s dword 0
            for (int64_t s = 0; s < (k1 - k0 + 3) / 4; ++s)
              std::memcpy(x_extra + 4 * s, &packed[s][shape.quads], 4);
          const auto rows = [&]<int Q, bool kExtra>() {
            for_row_blocks<kRows>(count, [&]<int R>(int64_t m) {
              packed_block<R, kSumX, Q, kExtra>(packed, g, weight + m * g.depth, k0, k1, partial, t,
                                                m, o, target + m * g.positions + position,
                                                g.positions, mask, x_extra);
            });
          };
          if constexpr (!kSumX)
            if (shape.extra)
              return by_quads(shape.quads, [&]<int Q>() {
                if constexpr (Q < 4) rows.template operator()<Q, true>();
              });
          by_quads(shape.quads, [&]<int Q>() { rows.template operator()<Q, false>(); });
        };
        if (pointwise) {
          for (int64_t position = 0; position < g.positions; position += 64) {
            const __mmask64 mask = lane_range(0, g.positions - position);
            if (kSumX && g.depth > kPackDepth) {
              for_row_blocks<kRows>(count, [&]<int R>(int64_t m) {
                pointwise_block<R, kSumX>(planes + position, g.in_plane, g.depth,
                                          weight + m * g.depth, t, m, mask, o,
                                          target + m * g.positions + position, g.positions);
              });
              continue;
            }
            const BlockShape shape = block_shape(g.positions - position, kSumX);
            for (int64_t k0 = 0; k0 < g.depth; k0 += kPackDepth) {
              const int64_t k1 = std::min(g.depth, k0 + kPackDepth);
              if (shape.narrow())
                pack_pointwise<true>(planes + position, g.in_plane, k0, k1, mask, packed);
              else
                pack_pointwise<false>(planes + position, g.in_plane, k0, k1, mask, packed);
              run_blocks(shape, k0, k1, position, mask);
            }
          }
          return;
        }
        BlockRecipe b;
        for (int64_t position = 0; position < g.positions; position += b.lanes) {
          build_block(p, gp, in_at, out_at, position, max_segments, b, phase_w);
          // Sums over several passes of kPackDepth: without weight zero points
          // (sum_x would wait too), else each kRows channels gather their taps.
          if (kSumX && g.depth > kPackDepth) {
            for_row_blocks<kRows>(count, [&]<int R>(int64_t m) {
              general_block<R, kSumX>(b, planes, gp, x_zp, weight + m * g.depth, t, m, o,
                                      target + m * g.positions + position, g.positions);
            });
            continue;
          }
          const BlockShape shape = block_shape(b.lanes, kSumX);
          for (int64_t k0 = 0; k0 < g.depth; k0 += kPackDepth) {
            const int64_t k1 = std::min(g.depth, k0 + kPackDepth);
            if (shape.narrow())
              pack_block<true>(b, planes, gp, x_zp, k0, k1, packed);
            else
              pack_block<false>(b, planes, gp, x_zp, k0, k1, packed);
            run_blocks(shape, k0, k1, position, lane_range(0, b.lanes));
          }
        }
      };
      if (t.any_w_zp)
        by_blocks.template operator()<true>();
      else
        by_blocks.template operator()<false>();
    }
  });
}

// Lane 4i + r of the result: the sum of v[4i + r]'s 16 lanes (wrapping),
// for 16 vectors: pairs of lanes added within 128-bit blocks, then blocks.
__m512i reduce_add16(const __m512i (&v)[16]) {
  __m512i quarter[4];
#pragma GCC unroll 4
  for (int i = 0; i < 4; ++i) {
    const __m512i* x = v + 4 * i;
    // Per 128-bit block: ab = [a0 + a2, b0 + b2, a1 + a3, b1 + b3], and
    // then [Σa, Σb, Σc, Σd] over the block.
    const __m512i ab =
        _mm512_add_epi32(_mm512_unpacklo_epi32(x[0], x[1]), _mm512_unpackhi_epi32(x[0], x[1]));
    const __m512i cd =
        _mm512_add_epi32(_mm512_unpacklo_epi32(x[2], x[3]), _mm512_unpackhi_epi32(x[2], x[3]));
    // Block j: x[0..3]'s sums over block j.
    quarter[i] = _mm512_add_epi32(_mm512_unpacklo_epi64(ab, cd), _mm512_unpackhi_epi64(ab, cd));
  }
  const __m512i q01 = _mm512_add_epi32(_mm512_shuffle_i32x4(quarter[0], quarter[1], 0x88),
                                       _mm512_shuffle_i32x4(quarter[0], quarter[1], 0xdd));
  const __m512i q23 = _mm512_add_epi32(_mm512_shuffle_i32x4(quarter[2], quarter[3], 0x88),
                                       _mm512_shuffle_i32x4(quarter[2], quarter[3], 0xdd));
  return _mm512_add_epi32(_mm512_shuffle_i32x4(q01, q23, 0x88),
                          _mm512_shuffle_i32x4(q01, q23, 0xdd));
}

// 16 neurons at once (8 with Σw, where x has a zero point: 32 vectors of
// sums would not stay in registers), each input vector loaded once for all
// of them, their sums reduced together.
template <bool kSumW>
void linear_q_rows(const QuantizedLayer& q, const QuantizedWeights& w, const uint8_t* x,
                   int64_t features, int64_t sum_x, int64_t c, int64_t rows, uint8_t* out) {
  constexpr int kRows = kSumW ? 8 : 16;
  const __m512i ones = _mm512_set1_epi8(1);
  __m512i dot[16], sum_w[16];
#pragma GCC unroll 16
  for (int r = 0; r < 16; ++r) dot[r] = sum_w[r] = _mm512_setzero_si512();
  const int8_t* weight = w.weight + c * features;
  for (int64_t k = 0; k < features; k += 64) {
    const __mmask64 mask = lane_range(0, features - k);
    const __m512i values = _mm512_maskz_loadu_epi8(mask, x + k);
#pragma GCC unroll 16
    for (int r = 0; r < kRows; ++r) {
      if (r >= rows) break;
      const __m512i weights = _mm512_maskz_loadu_epi8(mask, weight + r * features + k);
      dot[r] = dpbusd(dot[r], values, weights);
      if constexpr (kSumW) sum_w[r] = dpbusd(sum_w[r], ones, weights);
    }
  }
  alignas(64) int32_t dots[16], sums[16];
  _mm512_store_si512(dots, reduce_add16(dot));
  _mm512_store_si512(sums, kSumW ? reduce_add16(sum_w) : _mm512_setzero_si512());
  const int64_t x_zp = q.in[0].zero_point;
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t channel = c + r;
    const int64_t w_zp = w.zero_point[w.per_channel ? channel : 0];
    const int32_t acc = wrap(int64_t{w.bias ? w.bias[channel] : 0} + dots[r] - w_zp * sum_x -
                             x_zp * sums[r] + features * x_zp * w_zp);
    out[channel] =
        saturate(Requantizer(q.mode, channel_multiplier(q, w, channel))(acc) + q.out.zero_point,
                 q.clamp_lo, q.clamp_hi);
  }
}

void linear_q_vnni(const QuantizedLayer& q, const Tensor& in, const QuantizedWeights& w,
                   Tensor& out) {
  const int64_t features = in.shape.c * in.shape.h * in.shape.w;
  const uint8_t* x = in.u8();
  const __m512i ones = _mm512_set1_epi8(1);
  __m512i sum = _mm512_setzero_si512();
  for (int64_t k = 0; k < features; k += 64)
    sum = dpbusd(sum, _mm512_maskz_loadu_epi8(lane_range(0, features - k), x + k), ones);
  const int64_t sum_x = reduce_add(sum);
  if (q.in[0].zero_point != 0)
    for (int64_t c = 0; c < out.shape.c; c += 8)
      linear_q_rows<true>(q, w, x, features, sum_x, c, std::min<int64_t>(8, out.shape.c - c),
                          out.u8());
  else
    for (int64_t c = 0; c < out.shape.c; c += 16)
      linear_q_rows<false>(q, w, x, features, sum_x, c, std::min<int64_t>(16, out.shape.c - c),
                           out.u8());
}

// The reference's loop in 16 lanes: rne(x * (1 / scale)) is cvtps2dq of
// the float32 product (INT32_MIN for NaN and what int32 cannot hold), then
// clamped so that + zp stays in [0, 255]. Reads floats i..i+15 before
// writing bytes i..i+15: `out` may be `in`'s memory.
void quantize_avx512(const QuantizedLayer& q, const Tensor& in, Tensor& out) {
  const __m512 inverse = _mm512_set1_ps(1.0f / q.out.scale);
  const __m512i low = _mm512_set1_epi32(-q.out.zero_point),
                high = _mm512_set1_epi32(255 - q.out.zero_point),
                zero_point = _mm512_set1_epi32(q.out.zero_point);
  const float* from = in.f32();
  uint8_t* to = out.u8();
  const int64_t count = out.shape.elements();
  for (int64_t i = 0; i < count; i += 16) {
    const __mmask16 mask = static_cast<__mmask16>(lane_range(0, count - i));
    const __m512i rounded =
        _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_maskz_loadu_ps(mask, from + i), inverse));
    const __m512i value =
        _mm512_add_epi32(_mm512_min_epi32(_mm512_max_epi32(rounded, low), high), zero_point);
    _mm_mask_storeu_epi8(to + i, mask, _mm512_cvtepi32_epi8(value));
  }
}

// qnnpack's add in int32 lanes (add_fits_int32()); otherwise the reference runs.
bool add_q_avx512(const QuantizedLayer& q, const Tensor& a, const Tensor& b, Tensor& out) {
  const QnnpackAdd add(q);
  if (!add_fits_int32(q, add)) return false;
  const __m512i a_zp = _mm512_set1_epi32(q.in[0].zero_point),
                b_zp = _mm512_set1_epi32(q.in[1].zero_point);
  const __m512i a_mul = _mm512_set1_epi32(static_cast<int32_t>(add.a_mul)),
                b_mul = _mm512_set1_epi32(static_cast<int32_t>(add.b_mul));
  const int32_t mask_bits = static_cast<int32_t>((int64_t{1} << add.shift) - 1);
  const __m512i mask = _mm512_set1_epi32(mask_bits), threshold = _mm512_set1_epi32(mask_bits >> 1);
  const __m128i shift = _mm_cvtsi32_si128(add.shift);
  const __m512i low = _mm512_set1_epi32(q.clamp_lo - q.out.zero_point),
                high = _mm512_set1_epi32(q.clamp_hi - q.out.zero_point),
                zero_point = _mm512_set1_epi32(q.out.zero_point), one = _mm512_set1_epi32(1);
  const int64_t count = out.shape.elements();
  for (int64_t i = 0; i < count; i += 16) {
    const __mmask16 lanes = static_cast<__mmask16>(lane_range(0, count - i));
    const __m512i x =
        _mm512_sub_epi32(_mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(lanes, a.u8() + i)), a_zp);
    const __m512i y =
        _mm512_sub_epi32(_mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(lanes, b.u8() + i)), b_zp);
    const __m512i acc =
        _mm512_add_epi32(_mm512_mullo_epi32(x, a_mul), _mm512_mullo_epi32(y, b_mul));
    // remainder = (acc & mask) - (acc < 0); rounded = (acc >> shift) + (remainder > threshold)
    const __m512i remainder =
        _mm512_add_epi32(_mm512_and_si512(acc, mask), _mm512_srai_epi32(acc, 31));
    const __m512i rounded = _mm512_mask_add_epi32(_mm512_sra_epi32(acc, shift),
                                                  _mm512_cmpgt_epi32_mask(remainder, threshold),
                                                  _mm512_sra_epi32(acc, shift), one);
    const __m512i value =
        _mm512_add_epi32(_mm512_min_epi32(_mm512_max_epi32(rounded, low), high), zero_point);
    _mm_mask_storeu_epi8(out.u8() + i, lanes, _mm512_cvtepi32_epi8(value));
  }
  return true;
}

// Rows of `chunk` outputs (64, or fewer when the windows of 64 would span
// more than 128 input bytes): per kernel row, two masked loads of the input
// row (bytes outside the tile's row read 0: padding never wins, and an
// all-padding window gives 0 as in the reference), one vpermt2b and one max
// per kernel column.
bool maxpool_avx512(const PoolParams& p, const Tensor& in, const Placement& in_at, Tensor& out,
                    const Placement& out_at) {
  if (p.kernel_w > 16 || (p.kernel_w - 1) * p.dilation_w > 127 - 15 * p.stride_w) return false;
  const int64_t chunk =
      std::min<int64_t>(64, (127 - (p.kernel_w - 1) * p.dilation_w) / p.stride_w + 1);
  __m512i index[16];
  for (int64_t kx = 0; kx < p.kernel_w; ++kx) {
    alignas(64) uint8_t bytes[64];
    for (int64_t i = 0; i < 64; ++i)
      bytes[i] = i < chunk ? static_cast<uint8_t>(i * p.stride_w + kx * p.dilation_w) : 0;
    index[kx] = _mm512_load_si512(bytes);
  }
  const int64_t in_w = in.shape.w, in_plane = in.shape.h * in.shape.w;
  const int64_t out_h = out.shape.h, out_w = out.shape.w;
  for (int64_t plane = 0; plane < out.shape.n * out.shape.c; ++plane) {
    const uint8_t* source = in.u8() + plane * in_plane;
    for (int64_t oy = 0; oy < out_h; ++oy) {
      uint8_t* target = out.u8() + (plane * out_h + oy) * out_w;
      for (int64_t ox0 = 0; ox0 < out_w; ox0 += chunk) {
        // Window byte b: tile column (col0 + ox0) * stride - pad - in.col0 + b.
        const int64_t window = (out_at.col0 + ox0) * p.stride_w - p.pad_w - in_at.col0;
        const __mmask64 low = lane_range(-window, in_w - window),
                        high = lane_range(-window - 64, in_w - window - 64);
        __m512i best = _mm512_setzero_si512();
        for (int64_t ky = 0; ky < p.kernel_h; ++ky) {
          const int64_t iy = (out_at.row0 + oy) * p.stride_h - p.pad_h + ky * p.dilation_h;
          if (iy < 0 || iy >= in_at.full_h) continue;
          const uint8_t* row = source + (iy - in_at.row0) * in_w;
          const __m512i first = _mm512_maskz_loadu_epi8(low, address(row, window));
          const __m512i second = _mm512_maskz_loadu_epi8(high, address(row, window + 64));
          for (int64_t kx = 0; kx < p.kernel_w; ++kx)
            best = _mm512_max_epu8(best, _mm512_permutex2var_epi8(first, index[kx], second));
        }
        _mm512_mask_storeu_epi8(target + ox0, lane_range(0, std::min(chunk, out_w - ox0)), best);
      }
    }
  }
  return true;
}

#undef SPLITINFER_INLINE

}  // namespace
#endif  // SPLITINFER_INT8_VNNI

// ---- dispatch ---------------------------------------------------------------

uint64_t conv2d_q_scratch_bytes(const Shape&) { return 0; }

bool quantized_kernels_use_vnni() { return SPLITINFER_INT8_VNNI; }

void conv2d_q(const QuantizedLayer& q, const Conv2dParams& p, const Tensor& in,
              const Placement& in_at, const QuantizedWeights& w, Tensor& out,
              const Placement& out_at) {
#if SPLITINFER_INT8_VNNI
  conv2d_q_vnni(q, p, in, in_at, w, out, out_at);
#else
#if SPLITINFER_INT8_AVX2
  if (depthwise_q_avx2(q, p, in, in_at, w, out, out_at)) return;
  if (conv2d_q_avx2(q, p, in, in_at, w, out, out_at)) return;
#endif
  conv2d_q_portable(q, p, in, in_at, w, out, out_at);
#endif
}

void quantize(const QuantizedLayer& q, const Tensor& in, Tensor& out) {
#if SPLITINFER_INT8_VNNI
  if (q.out.zero_point >= 0 && q.out.zero_point <= 255) return quantize_avx512(q, in, out);
#elif SPLITINFER_INT8_AVX2
  if (q.out.zero_point >= 0 && q.out.zero_point <= 255) return quantize_avx2(q, in, out);
#endif
  quantize_reference(q, in, out);
}

void add_q(const QuantizedLayer& q, const Tensor& a, const Tensor& b, Tensor& out) {
#if SPLITINFER_INT8_VNNI
  if (add_q_avx512(q, a, b, out)) return;
#elif SPLITINFER_INT8_AVX2
  if (add_q_avx2(q, a, b, out)) return;
#endif
  add_q_reference(q, a, b, out);
}

void maxpool_q(const PoolParams& p, const Tensor& in, const Placement& in_at, Tensor& out,
               const Placement& out_at) {
#if SPLITINFER_INT8_VNNI
  if (in.dtype == DType::u8 && maxpool_avx512(p, in, in_at, out, out_at)) return;
#elif SPLITINFER_INT8_AVX2
  if (in.dtype == DType::u8 && maxpool_avx2(p, in, in_at, out, out_at)) return;
#endif
  maxpool(p, in, in_at, out, out_at);
}

void linear_q(const QuantizedLayer& q, const Tensor& in, const QuantizedWeights& w, Tensor& out) {
#if SPLITINFER_INT8_VNNI
  linear_q_vnni(q, in, w, out);
#elif SPLITINFER_INT8_AVX2
  linear_q_avx2(q, in, w, out);
#else
  linear_q_portable(q, in, w, out);
#endif
}

}  // namespace splitinfer
