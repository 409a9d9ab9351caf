#include "conv2d.hpp"

#include <algorithm>
#include <array>
#include <cstring>
#include <utility>
#include <vector>

#include "float_vector.hpp"
#include "gemm.hpp"

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace splitinfer {
namespace {

bool is_pointwise(const Conv2dParams& p, const Tensor& in, const Placement& in_at,
                  const Tensor& out, const Placement& out_at) {
  return p.kernel_h == 1 && p.kernel_w == 1 && p.stride_h == 1 && p.stride_w == 1 && p.pad_h == 0 &&
         p.pad_w == 0 && in_at.row0 == out_at.row0 && in_at.col0 == out_at.col0 &&
         in.shape.h == out.shape.h && in.shape.w == out.shape.w;
}

bool is_depthwise(const Conv2dParams& p, const Tensor& in, const Placement& in_at,
                  const Tensor& out, const Placement& out_at) {
  return p.groups == in_at.channels(in) && p.groups == out_at.channels(out);
}

// Output positions are gathered kChunk at a time: the columns of a chunk
// ([patch, kChunk] floats) are one contiguous panel for the GEMM, and the
// scratch holds one chunk, not the whole map's patches.
constexpr int64_t kChunk = 64;

// im2col's segments are short (a row of a chunk): copied and zeroed inline,
// 16 floats at a time, not by a memmove or memset call each, which would
// cost more than the copy.
inline void copy_floats(const float* from, int64_t count, float* to) {
  int64_t i = 0;
  for (; i + 16 <= count; i += 16) std::memcpy(to + i, from + i, 16 * sizeof(float));
#if defined(__AVX512F__)
  const __mmask16 rest = static_cast<__mmask16>((1u << (count - i)) - 1);
  _mm512_mask_storeu_ps(to + i, rest, _mm512_maskz_loadu_ps(rest, from + i));
#else
  for (; i < count; ++i) to[i] = from[i];
#endif
}

inline void fill_zeros(float* to, int64_t count) {
  int64_t i = 0;
  const float zeros[16] = {};
  for (; i + 16 <= count; i += 16) std::memcpy(to + i, zeros, sizeof(zeros));
#if defined(__AVX512F__)
  _mm512_mask_storeu_ps(to + i, static_cast<__mmask16>((1u << (count - i)) - 1),
                        _mm512_setzero_ps());
#else
  for (; i < count; ++i) to[i] = 0.0f;
#endif
}

// A convolution reads its columns from a band: a zero-padded copy of the
// input that a few output rows read, split by stride phase. Plane (ic, a, b)
// of the band holds input (row0 + i * stride_h + a, col0 + j * stride_w + b)
// at [i, j], so tap (ky, kx) of output (oy, ox) is plane (ic, ky * dilation_h
// % stride_h, kx * dilation_w % stride_w) at [oy + ky * dilation_h / stride_h,
// ox + kx * dilation_w / stride_w]. Output position (oy, ox) sits at oy *
// width + ox, so every tap's column is the band shifted by a constant and the
// GEMM reads the band in place (gemm_in_depth_order_at_offsets): no im2col
// copy of each input value per tap. The GEMM also computes the width - out_w
// positions between rows that no output has; they cost lanes, so the band is
// used only while they are under a quarter of its positions. Its sums go to a
// staging matrix [output channels, positions] whose real positions are then
// copied out.

// The band's positions are whole vectors of this many floats (a multiple of
// the GEMM's on every target, so the scratch is the same on all), and a
// vector's worth of zeros follows its planes for the last read.
constexpr int64_t kBandVector = 16;
static_assert(kBandVector % kGemmLanes == 0);

struct Band {
  int64_t rows = 0;       // output rows per band
  int64_t height = 0;     // rows per plane: rows + the kernel's reach in strides
  int64_t width = 0;      // columns per plane: out_w + the kernel's reach in strides
  int64_t positions = 0;  // GEMM positions of a full band, whole vectors
  int64_t planes = 0;     // input channels (of one group) x stride_h x stride_w
  int64_t plane_floats() const { return height * width; }
  int64_t floats() const { return planes * plane_floats() + kBandVector; }  // + the last read's
};

// About this many GEMM positions per band: a few 64-position panels, with the
// band and the staging matrix a small part of the cache.
constexpr int64_t kBandPositions = 128;

int64_t band_width(const Conv2dParams& p, int64_t out_w) {
  return out_w + (p.kernel_w - 1) * p.dilation_w / p.stride_w;
}

bool reads_band(const Conv2dParams& p, int64_t out_w) {
  return out_w * 4 >= band_width(p, out_w) * 3;
}

Band band_of(const Conv2dParams& p, int64_t out_h, int64_t out_w, int64_t channels) {
  Band band;
  band.width = band_width(p, out_w);
  band.rows = std::clamp((kBandPositions + band.width - 1) / band.width, int64_t{1}, out_h);
  band.height = band.rows + (p.kernel_h - 1) * p.dilation_h / p.stride_h;
  band.positions =
      ((band.rows - 1) * band.width + out_w + kBandVector - 1) / kBandVector * kBandVector;
  band.planes = channels * p.stride_h * p.stride_w;
  return band;
}

// Scratch floats of the band path: column offsets (int64, as 2 floats each),
// the band, the staging matrix.
int64_t band_scratch_floats(const Band& band, int64_t patch, int64_t out_channels) {
  return 2 * patch + band.floats() + out_channels * band.positions;
}

// Fills the band of output rows [row, row + rows) (of the tile) for the
// group's input channels from `first_channel`, padding as zeros; plane rows
// past the ones these rows read are zeroed (a last, shorter band).
void fill_band(const Band& band, const Conv2dParams& p, const Tensor& in, const Placement& in_at,
               const Placement& out_at, int64_t n, int64_t first_channel, int64_t row, int64_t rows,
               float* to) {
  const int64_t rows_read = rows + band.height - band.rows;
  const int64_t first_row = (out_at.row0 + row) * p.stride_h - p.pad_h;
  const int64_t first_column = out_at.col0 * p.stride_w - p.pad_w;
  for (int64_t plane = 0; plane < band.planes; ++plane) {
    const int64_t c = plane / (p.stride_h * p.stride_w);
    const int64_t a = plane / p.stride_w % p.stride_h, b = plane % p.stride_w;
    const float* channel =
        in.f32() + ((n * in.shape.c + first_channel + c) * in.shape.h) * in.shape.w;
    // Plane columns [inside_first, inside_last) read input columns inside the
    // tile; the others are padding, or columns no output reads (past a
    // phase's last one, say), and zero either way. Rows likewise.
    const auto [inside_first, inside_last] =
        columns_inside(0, band.width, p.stride_w, first_column + b - in_at.col0, in.shape.w);
    for (int64_t i = 0; i < band.height; ++i) {
      float* dst = to + plane * band.plane_floats() + i * band.width;
      const int64_t iy = first_row + i * p.stride_h + a - in_at.row0;  // in the tile
      if (i >= rows_read || iy < 0 || iy >= in.shape.h) {
        fill_zeros(dst, band.width);
        continue;
      }
      // Tile column of plane column j: first_column + j * stride_w + b - col0.
      const float* src = channel + iy * in.shape.w + first_column + b - in_at.col0;
      fill_zeros(dst, inside_first);
      if (p.stride_w == 1)
        copy_floats(src + inside_first, inside_last - inside_first, dst + inside_first);
      else
        for (int64_t j = inside_first; j < inside_last; ++j) dst[j] = src[j * p.stride_w];
      fill_zeros(dst + inside_last, band.width - inside_last);
    }
  }
  fill_zeros(to + band.planes * band.plane_floats(), kBandVector);
}

// Gathers, for one group, the input patch of output positions [first,
// first + count) (row-major over the output tile): col [ICg*KH*KW, count],
// zero where the patch reads padding.
void im2col(const Conv2dParams& p, const Tensor& in, const Placement& in_at, int64_t n,
            int64_t first_channel, int64_t channels, const Tensor& out, const Placement& out_at,
            int64_t first, int64_t count, float* col) {
  const int64_t out_w = out.shape.w;
  for (int64_t ky = 0; ky < p.kernel_h; ++ky) {
    for (int64_t kx = 0; kx < p.kernel_w; ++kx) {
      // Input column of output column ox: (col0 + ox) * stride + kx * dilation - pad.
      const int64_t column0 = out_at.col0 * p.stride_w + kx * p.dilation_w - p.pad_w;
      const auto [inside_first, inside_last] =
          columns_inside(out_at.col0, out_w, p.stride_w, kx * p.dilation_w - p.pad_w, in_at.full_w);
      for (int64_t ic = 0; ic < channels; ++ic) {
        const float* plane =
            in.f32() + ((n * in.shape.c + first_channel + ic) * in.shape.h) * in.shape.w;
        float* dst = col + ((ic * p.kernel_h + ky) * p.kernel_w + kx) * count;
        // The chunk, one output row's segment at a time.
        for (int64_t position = first; position < first + count;) {
          const int64_t oy = position / out_w, ox0 = position % out_w;
          const int64_t ox1 = std::min(out_w, ox0 + (first + count - position));
          float* row_dst = dst + (position - first) - ox0;  // indexed by ox
          position += ox1 - ox0;
          const int64_t iy = (out_at.row0 + oy) * p.stride_h - p.pad_h + ky * p.dilation_h;
          if (iy < 0 || iy >= in_at.full_h) {
            fill_zeros(row_dst + ox0, ox1 - ox0);
            continue;
          }
          const float* src = plane + (iy - in_at.row0) * in.shape.w + column0 - in_at.col0;
          const int64_t lo = std::clamp(inside_first, ox0, ox1);
          const int64_t hi = std::clamp(inside_last, lo, ox1);
          fill_zeros(row_dst + ox0, lo - ox0);
          if (p.stride_w == 1)
            copy_floats(src + lo, hi - lo, row_dst + lo);
          else
            for (int64_t ox = lo; ox < hi; ++ox) row_dst[ox] = src[ox * p.stride_w];
          fill_zeros(row_dst + hi, ox1 - hi);
        }
      }
    }
  }
}

// Depthwise: each output element starts from its channel's bias and adds
// its taps in (ky, kx) order, skipping the ones that read padding. For
// strides 1 and 2 a row's columns go kGemmLanes at a time with the sums in
// registers (the input read as whole vectors, stride 2 as two vectors' even
// lanes): where every tap reads inside the map, up to 4 vectors at once so
// that their multiply-adds overlap; near the map's edges in masked vectors
// whose lanes add only the taps that read the map. Larger strides go one
// column at a time. All with the same multiply-adds (float_vector.hpp), so
// a column gets the same bits in whichever way a tile reaches it. Targets
// with lane masks take strides 1 and 2 through depthwise_masked() below.

// Lanes 0, 2, 4, ... of a followed by b: x[2i] of the floats a, b hold.
template <size_t... kLane>
inline FloatVector even_lanes(FloatVector a, FloatVector b, std::index_sequence<kLane...>) {
  return __builtin_shufflevector(a, b, (2 * kLane)...);
}
inline FloatVector even_lanes(FloatVector a, FloatVector b) {
  return even_lanes(a, b, std::make_index_sequence<kGemmLanes>{});
}

// The input vector of tap column `x` (stride 1 or 2).
template <int64_t kStride>
inline FloatVector tap_vector(const float* x) {
  FloatVector value;
  std::memcpy(&value, x, sizeof(value));
  if constexpr (kStride == 2) {
    FloatVector odd;
    std::memcpy(&odd, x + kGemmLanes, sizeof(odd));
    value = even_lanes(value, odd);
  }
  return value;
}

// kCount vectors of output columns from column `first`: rows[ky] points at
// input column 0 of output column 0 in input row ky (rows [ky_first,
// ky_last) read inside the map), taps[ky * kernel_w + kx].
template <int64_t kCount, int64_t kStride>
inline void depthwise_vectors(const float* const* rows, int64_t ky_first, int64_t ky_last,
                              int64_t kernel_w, int64_t dilation_w, const float* taps, float start,
                              int64_t first, Epilogue epilogue, float* dst) {
  constexpr int64_t kLanes = kGemmLanes;
  FloatVector sum[kCount];
  for (int64_t v = 0; v < kCount; ++v) sum[v] = broadcast(start);
  for (int64_t ky = ky_first; ky < ky_last; ++ky) {
    const float* row = rows[ky] + first * kStride;
    for (int64_t kx = 0; kx < kernel_w; ++kx) {
      const FloatVector w = broadcast(taps[ky * kernel_w + kx]);
      const float* x = row + kx * dilation_w;
#pragma GCC unroll 4
      for (int64_t v = 0; v < kCount; ++v)
        sum[v] = multiply_add(sum[v], w, tap_vector<kStride>(x + v * kLanes * kStride));
    }
  }
#pragma GCC unroll 4
  for (int64_t v = 0; v < kCount; ++v) {
    const FloatVector value = epilogue_of(epilogue, sum[v]);
    std::memcpy(dst + first + v * kLanes, &value, sizeof(value));
  }
}

// Vectors from column `first`, the last ending at `end` (overlapping the
// one before it, whose columns it computes again to the same bits).
template <int64_t kStride>
void depthwise_row_vectors(const float* const* rows, int64_t ky_first, int64_t ky_last,
                           int64_t kernel_w, int64_t dilation_w, const float* taps, float start,
                           int64_t first, int64_t end, Epilogue epilogue, float* dst) {
  constexpr int64_t kLanes = kGemmLanes;
  int64_t at = first;
  for (; at + 4 * kLanes <= end; at += 4 * kLanes)
    depthwise_vectors<4, kStride>(rows, ky_first, ky_last, kernel_w, dilation_w, taps, start, at,
                                  epilogue, dst);
  switch ((end - at) / kLanes) {
    case 3:
      depthwise_vectors<3, kStride>(rows, ky_first, ky_last, kernel_w, dilation_w, taps, start, at,
                                    epilogue, dst);
      break;
    case 2:
      depthwise_vectors<2, kStride>(rows, ky_first, ky_last, kernel_w, dilation_w, taps, start, at,
                                    epilogue, dst);
      break;
    case 1:
      depthwise_vectors<1, kStride>(rows, ky_first, ky_last, kernel_w, dilation_w, taps, start, at,
                                    epilogue, dst);
      break;
    default:
      break;
  }
  if ((end - first) % kLanes != 0)
    depthwise_vectors<1, kStride>(rows, ky_first, ky_last, kernel_w, dilation_w, taps, start,
                                  end - kLanes, epilogue, dst);
}

typedef int32_t LaneMask __attribute__((vector_size(kGemmLanes * sizeof(int32_t))));

// The floats at `from` in the lanes `mask` sets (all bits), 0 in the others,
// which are not read (so they may lie outside the tile).
inline FloatVector load_lanes(const float* from, LaneMask mask) {
#if SPLITINFER_FLOAT_AVX512
  const __mmask16 lanes =
      _mm512_cmpneq_epi32_mask(reinterpret_cast<__m512i>(mask), _mm512_setzero_si512());
  return reinterpret_cast<FloatVector>(_mm512_maskz_loadu_ps(lanes, from));
#elif SPLITINFER_FLOAT_AVX
  return reinterpret_cast<FloatVector>(_mm256_maskload_ps(from, reinterpret_cast<__m256i>(mask)));
#else
  FloatVector value{};
  for (int64_t lane = 0; lane < kGemmLanes; ++lane)
    if (mask[lane]) value[lane] = from[lane];
  return value;
#endif
}

// `a` in the lanes `mask` sets, `b` in the others.
inline FloatVector select(LaneMask mask, FloatVector a, FloatVector b) {
#if SPLITINFER_FLOAT_AVX512
  const __mmask16 lanes =
      _mm512_cmpneq_epi32_mask(reinterpret_cast<__m512i>(mask), _mm512_setzero_si512());
  return reinterpret_cast<FloatVector>(
      _mm512_mask_blend_ps(lanes, reinterpret_cast<__m512>(b), reinterpret_cast<__m512>(a)));
#elif SPLITINFER_FLOAT_AVX
  return reinterpret_cast<FloatVector>(_mm256_blendv_ps(
      reinterpret_cast<__m256>(b), reinterpret_cast<__m256>(a), reinterpret_cast<__m256>(mask)));
#else
  return mask ? a : b;
#endif
}

// The lanes `mask` sets of `value` to `to` (the others are not written).
// Not by indexing the vector's lanes: a vector whose lanes are indexed lives
// on the stack, stored and loaded again at every multiply-add.
inline void store_lanes(float* to, FloatVector value, LaneMask mask) {
#if SPLITINFER_FLOAT_AVX512
  _mm512_mask_storeu_ps(
      to, _mm512_cmpneq_epi32_mask(reinterpret_cast<__m512i>(mask), _mm512_setzero_si512()),
      reinterpret_cast<__m512>(value));
#elif SPLITINFER_FLOAT_AVX
  _mm256_maskstore_ps(to, reinterpret_cast<__m256i>(mask), reinterpret_cast<__m256>(value));
#else
  float lanes[kGemmLanes];
  std::memcpy(lanes, &value, sizeof(lanes));
  for (int64_t lane = 0; lane < kGemmLanes; ++lane)
    if (mask[lane]) to[lane] = lanes[lane];
#endif
}

// Up to kGemmLanes output columns from `first` near the map's edges (those
// `stored` sets), where some taps read padding: a lane adds tap kx only
// where reads[kx] is set (it reads the map), as depthwise_vectors() and the
// reference do, and reads nothing where it is not.
// Stride 2: spread[2 * kx] and spread[2 * kx + 1] are the lanes of the two
// raw vectors that hold the columns reads[kx] sets (raw lane r of the two
// holds column first + r / 2 when r is even).
template <int64_t kStride>
void depthwise_edge(const float* const* rows, int64_t ky_first, int64_t ky_last,
                    const Conv2dParams& p, const LaneMask* reads, const LaneMask* spread,
                    LaneMask stored, const float* taps, float start, int64_t first,
                    Epilogue epilogue, float* dst) {
  constexpr int64_t kLanes = kGemmLanes;
  FloatVector sum = broadcast(start);
  for (int64_t ky = ky_first; ky < ky_last; ++ky)
    for (int64_t kx = 0; kx < p.kernel_w; ++kx) {
      const float* x = rows[ky] + first * kStride + kx * p.dilation_w;
      FloatVector value;
      if constexpr (kStride == 1)
        value = load_lanes(x, reads[kx]);
      else
        value =
            even_lanes(load_lanes(x, spread[2 * kx]), load_lanes(x + kLanes, spread[2 * kx + 1]));
      const FloatVector added = multiply_add(sum, broadcast(taps[ky * p.kernel_w + kx]), value);
      sum = select(reads[kx], added, sum);
    }
  store_lanes(dst + first, epilogue_of(epilogue, sum), stored);
}

// Where the target has lane masks (AVX-512, AVX2's vector masks, and the
// plain-vector test build of wide targets), strides 1 and 2 go through one
// masked-vector kernel:
// each vector of output columns reads its taps at a fixed distance from a
// base of its own, and a table of lane masks per vector and tap, made once
// per call for every channel, says which lanes add the tap (it reads the
// map). The same multiply-adds in the same (ky, kx) order as
// depthwise_vectors() and depthwise_edge(), so a column gets the same bits
// however a tile reaches it, with up to 8 vectors in flight (the one-vector
// edge path waits for each multiply-add in turn). A vector is a row's
// columns, or, with stride 1 on a tile as wide as its input (the whole map,
// or a band of whole rows, as one node or a row split computes it), any 16
// positions of the flat plane across the rows' ends: the input of position
// y * w + x for a tap lies a fixed distance from it, so every vector is full
// but the last, even on maps narrower than a vector. Blocks go row band by
// row band, their input rows read in order; output rows that read padding
// rows are blocks of their own, so that the rest, away from the left and
// right edges, are whole: every lane adds every tap, without masks.
#if SPLITINFER_FLOAT_AVX512 && defined(__FMA__)
#define SPLITINFER_MASKED_DEPTHWISE 1
using Lanes = __mmask16;
inline Lanes no_lanes() { return 0; }
inline bool has_lane(Lanes lanes, int64_t lane) { return (lanes >> lane) & 1; }
inline Lanes read_lanes(const Lanes* from) { return _load_mask16(const_cast<Lanes*>(from)); }
inline void set_lane(Lanes& lanes, int64_t lane) {
  lanes = static_cast<Lanes>(lanes | (1u << lane));
}
inline bool all_lanes(Lanes lanes) { return lanes == 0xffff; }
constexpr bool kFlatDepthwise = true;
inline FloatVector load_lanes(const float* from, Lanes lanes) {
  return reinterpret_cast<FloatVector>(_mm512_maskz_loadu_ps(lanes, from));
}
inline FloatVector add_lanes(FloatVector sum, FloatVector w, FloatVector x, Lanes lanes) {
  return reinterpret_cast<FloatVector>(_mm512_mask3_fmadd_ps(reinterpret_cast<__m512>(w),
                                                             reinterpret_cast<__m512>(x),
                                                             reinterpret_cast<__m512>(sum), lanes));
}
inline void store_lanes(float* to, FloatVector value, Lanes lanes) {
  _mm512_mask_storeu_ps(to, lanes, reinterpret_cast<__m512>(value));
}
#elif SPLITINFER_FLOAT_AVX && defined(__FMA__)
// AVX2: a vector's lanes kept as 8 bits (a 32nd of a vector mask's bytes),
// a vector mask from a table of all 256 for the masked loads and blends
// above.
#define SPLITINFER_MASKED_DEPTHWISE 1
using Lanes = uint8_t;
const std::array<LaneMask, 256> kLaneMasks = [] {
  std::array<LaneMask, 256> masks{};
  for (int bits = 0; bits < 256; ++bits)
    for (int64_t lane = 0; lane < kGemmLanes; ++lane)
      masks[bits][lane] = (bits >> lane) & 1 ? -1 : 0;
  return masks;
}();
inline Lanes no_lanes() { return 0; }
inline bool has_lane(Lanes lanes, int64_t lane) { return (lanes >> lane) & 1; }
inline LaneMask read_lanes(const Lanes* from) { return kLaneMasks[*from]; }
inline void set_lane(Lanes& lanes, int64_t lane) {
  lanes = static_cast<Lanes>(lanes | (1u << lane));
}
inline bool all_lanes(Lanes lanes) { return lanes == 0xff; }
// Rows of vectors rather than flat runs across row ends, so that most blocks
// lie away from the map's left and right edges: whole.
constexpr bool kFlatDepthwise = false;
inline FloatVector add_lanes(FloatVector sum, FloatVector w, FloatVector x, LaneMask lanes) {
  return select(lanes, multiply_add(sum, w, x), sum);
}
// A whole vector in one store, the others lane by lane: AVX2's masked
// store (vmaskmovps) takes tens of cycles on AMD's cores.
inline void store_lanes(float* to, FloatVector value, Lanes lanes) {
  if (lanes == 0xff) {
    std::memcpy(to, &value, sizeof(value));
    return;
  }
  float values[kGemmLanes];
  std::memcpy(values, &value, sizeof(values));
  for (int64_t lane = 0; lane < kGemmLanes; ++lane)
    if (has_lane(lanes, lane)) to[lane] = values[lane];
}
#elif defined(SPLITINFER_GENERIC_LANES)
#define SPLITINFER_MASKED_DEPTHWISE 1  // the wide targets' lane logic, tested in plain vector code
using Lanes = LaneMask;
inline Lanes no_lanes() { return Lanes{}; }
inline bool has_lane(const Lanes& lanes, int64_t lane) { return lanes[lane] != 0; }
inline Lanes read_lanes(const Lanes* from) { return *from; }
inline void set_lane(Lanes& lanes, int64_t lane) { lanes[lane] = -1; }
inline bool all_lanes(const Lanes& lanes) {
  for (int64_t lane = 0; lane < kGemmLanes; ++lane)
    if (!lanes[lane]) return false;
  return true;
}
constexpr bool kFlatDepthwise = true;
inline FloatVector add_lanes(FloatVector sum, FloatVector w, FloatVector x, Lanes lanes) {
  return select(lanes, multiply_add(sum, w, x), sum);
}
#else
#define SPLITINFER_MASKED_DEPTHWISE 0
#endif

#if SPLITINFER_MASKED_DEPTHWISE
constexpr int kMaskedBlock = 8;  // vectors in flight

// Up to kMaskedBlock vectors a fixed step apart in the input and the output
// (flat: one after the other; else the same columns of consecutive rows).
// Their masks lie at lanes[at + t * count + j] for tap t and vector j, for
// stride 2 also spread[2 * (at + t * count + j) + h] for the two raw vectors
// h (raw lane r holds column r / 2 when r is even), stored[at / taps + j].
struct MaskedBlock {
  int64_t in_base, out_base, in_step, out_step, at;
  int count;
  bool whole = false;  // every lane of every vector reads every tap and is stored
};

struct DepthwiseLanes {
  int64_t taps = 0;
  std::vector<MaskedBlock> blocks;
  std::vector<int64_t> offset;  // per tap, from a vector's input base
  std::vector<Lanes> reads, spread, stored;
};

// kWhole: a whole block (MaskedBlock::whole), the same multiply-adds
// without masks.
template <int kCount, int64_t kStride, bool kFlat, bool kWhole>
inline void depthwise_masked_block(const float* x, const float* taps, const DepthwiseLanes& m,
                                   const MaskedBlock& b, float start, Epilogue epilogue,
                                   float* dst) {
  constexpr int64_t kLanes = kGemmLanes;
  FloatVector sum[kCount];
  for (int j = 0; j < kCount; ++j) sum[j] = broadcast(start);
  const float* base = x + b.in_base;
  const Lanes* reads = m.reads.data() + b.at;
  const Lanes* spread = kStride == 2 ? m.spread.data() + 2 * b.at : nullptr;
  for (int64_t t = 0; t < m.taps; ++t, reads += kCount, spread += kStride == 2 ? 2 * kCount : 0) {
    const FloatVector w = broadcast(taps[t]);
    const float* at = base + m.offset[t];
#pragma GCC unroll 8
    for (int j = 0; j < kCount; ++j) {
      const float* from = at + j * (kFlat ? kLanes : b.in_step);
      if constexpr (kWhole) {
        sum[j] = multiply_add(sum[j], w, tap_vector<kStride>(from));
        continue;
      }
      const auto lanes = read_lanes(reads + j);
      FloatVector value;
      if constexpr (kStride == 1)
        value = load_lanes(from, lanes);
      else
        value = even_lanes(load_lanes(from, read_lanes(spread + 2 * j)),
                           load_lanes(from + kLanes, read_lanes(spread + 2 * j + 1)));
      sum[j] = add_lanes(sum[j], w, value, lanes);
    }
  }
  const Lanes* stored = m.stored.data() + b.at / m.taps;
#pragma GCC unroll 8
  for (int j = 0; j < kCount; ++j) {
    float* to = dst + b.out_base + j * b.out_step;
    const FloatVector value = epilogue_of(epilogue, sum[j]);
    if constexpr (kWhole)
      std::memcpy(to, &value, sizeof(value));
    else
      store_lanes(to, value, stored[j]);
  }
}

// Not inlined: a profile (jobs/profile) then names a channel's depthwise
// loops, wherever the compiler placed its blocks.
template <int64_t kStride, bool kFlat>
[[gnu::noinline]] void depthwise_masked_plane(const float* x, const float* taps,
                                              const DepthwiseLanes& m, float start,
                                              Epilogue epilogue, float* dst) {
  for (const MaskedBlock& b : m.blocks) {
    switch (b.count) {
#define SPLITINFER_MASKED_BLOCK(k)                                                           \
  case k:                                                                                    \
    if (b.whole)                                                                             \
      depthwise_masked_block<k, kStride, kFlat, true>(x, taps, m, b, start, epilogue, dst);  \
    else                                                                                     \
      depthwise_masked_block<k, kStride, kFlat, false>(x, taps, m, b, start, epilogue, dst); \
    break;
      SPLITINFER_MASKED_BLOCK(1)
      SPLITINFER_MASKED_BLOCK(2)
      SPLITINFER_MASKED_BLOCK(3)
      SPLITINFER_MASKED_BLOCK(4)
      SPLITINFER_MASKED_BLOCK(5)
      SPLITINFER_MASKED_BLOCK(6)
      SPLITINFER_MASKED_BLOCK(7)
      SPLITINFER_MASKED_BLOCK(8)
#undef SPLITINFER_MASKED_BLOCK
      default:
        break;
    }
  }
}

void depthwise_masked(const Conv2dParams& p, const Tensor& in, const Placement& in_at,
                      const float* weight, const float* bias, Tensor& out, const Placement& out_at,
                      int64_t row_begin, int64_t row_end, Epilogue epilogue,
                      const std::vector<std::pair<int64_t, int64_t>>& inside) {
  constexpr int64_t kLanes = kGemmLanes;
  const int64_t w = out.shape.w, in_w = in.shape.w, stride = p.stride_w;
  const int64_t rows = row_end - row_begin;
  const bool flat = kFlatDepthwise && p.stride_h == 1 && stride == 1 && in_w == w;
  DepthwiseLanes m;
  m.taps = p.kernel_h * p.kernel_w;
  // The input (in the tile's plane) of output row 0, column 0 and each tap.
  m.offset.resize(m.taps);
  for (int64_t ky = 0; ky < p.kernel_h; ++ky)
    for (int64_t kx = 0; kx < p.kernel_w; ++kx)
      m.offset[ky * p.kernel_w + kx] =
          (out_at.row0 * p.stride_h - p.pad_h - in_at.row0 + ky * p.dilation_h) * in_w +
          out_at.col0 * stride - p.pad_w - in_at.col0 + kx * p.dilation_w;
  // A lane reads tap (ky, kx) where its row reads kernel row ky inside the
  // map and its column kernel column kx: per vector, the lanes of each row
  // and each column, then their intersections.
  std::vector<Lanes> row_lanes(p.kernel_h), column_lanes(p.kernel_w);
  const auto add_block = [&](int64_t y, int64_t x, int count) {
    MaskedBlock b{y * p.stride_h * in_w + x * stride,
                  y * w + x,
                  flat ? kLanes : p.stride_h * in_w,
                  flat ? kLanes : w,
                  static_cast<int64_t>(m.stored.size()) * m.taps,
                  count};
    m.blocks.push_back(b);
    m.reads.resize(m.reads.size() + count * m.taps, no_lanes());
    m.stored.resize(m.stored.size() + count, no_lanes());
    for (int j = 0; j < count; ++j) {
      std::fill(row_lanes.begin(), row_lanes.end(), no_lanes());
      std::fill(column_lanes.begin(), column_lanes.end(), no_lanes());
      // Vector j's lanes: along its row (flat: on into the next rows).
      int64_t vy = flat ? y + (x + j * kLanes) / w : y + j;
      int64_t vx = flat ? (x + j * kLanes) % w : x;
      for (int64_t lane = 0; lane < kLanes; ++lane, ++vx) {
        if (vx == w) {
          if (!flat) break;
          vx = 0;
          ++vy;
        }
        if (vy >= row_end) break;
        set_lane(m.stored[b.at / m.taps + j], lane);
        for (int64_t ky = 0; ky < p.kernel_h; ++ky) {
          const int64_t iy = (out_at.row0 + vy) * p.stride_h - p.pad_h + ky * p.dilation_h;
          if (iy >= 0 && iy < in_at.full_h) set_lane(row_lanes[ky], lane);
        }
        for (int64_t kx = 0; kx < p.kernel_w; ++kx)
          if (vx >= inside[kx].first && vx < inside[kx].second) set_lane(column_lanes[kx], lane);
      }
      for (int64_t ky = 0; ky < p.kernel_h; ++ky)
        for (int64_t kx = 0; kx < p.kernel_w; ++kx)
          m.reads[b.at + (ky * p.kernel_w + kx) * count + j] =
              static_cast<Lanes>(row_lanes[ky] & column_lanes[kx]);
    }
    bool whole = true;
    for (int64_t k = b.at; k < b.at + count * m.taps && whole; ++k) whole = all_lanes(m.reads[k]);
    for (int j = 0; j < count && whole; ++j) whole = all_lanes(m.stored[b.at / m.taps + j]);
    m.blocks.back().whole = whole;
  };
  // Whether every kernel row of output row y reads inside the map: rows
  // that do not go in blocks of their own, so that the others' can be whole.
  const auto rows_inside = [&](int64_t y) {
    for (int64_t ky = 0; ky < p.kernel_h; ++ky) {
      const int64_t iy = (out_at.row0 + y) * p.stride_h - p.pad_h + ky * p.dilation_h;
      if (iy < 0 || iy >= in_at.full_h) return false;
    }
    return true;
  };
  {
    const int64_t vectors =
        flat ? (rows * w + kLanes - 1) / kLanes : (w + kLanes - 1) / kLanes * rows;
    m.reads.reserve(vectors * m.taps);
    m.stored.reserve(vectors);
    m.blocks.reserve(vectors / kMaskedBlock + (w + kLanes - 1) / kLanes + 1);
  }
  if (flat) {
    const int64_t vectors = (rows * w + kLanes - 1) / kLanes;
    for (int64_t v = 0; v < vectors; v += kMaskedBlock) {
      const int64_t position = row_begin * w + v * kLanes;
      add_block(position / w, position % w,
                static_cast<int>(std::min<int64_t>(kMaskedBlock, vectors - v)));
    }
  } else {
    for (int64_t y = row_begin; y < row_end;) {
      int count = 1;
      if (rows_inside(y))
        while (count < kMaskedBlock && y + count < row_end && rows_inside(y + count)) ++count;
      for (int64_t x = 0; x < w; x += kLanes) add_block(y, x, count);
      y += count;
    }
  }
  if (stride == 2) {
    m.spread.assign(2 * m.reads.size(), no_lanes());
    for (size_t k = 0; k < m.reads.size(); ++k)
      for (int64_t lane = 0; lane < kLanes; ++lane)
        if (has_lane(m.reads[k], lane))
          set_lane(m.spread[2 * k + (2 * lane) / kLanes], (2 * lane) % kLanes);
  }
  for (int64_t n = 0; n < out.shape.n; ++n)
    for (int64_t c = 0; c < out.shape.c; ++c) {
      const int64_t in_c = out_at.channel0 + c - in_at.channel0;
      const float* plane = in.f32() + (n * in.shape.c + in_c) * in.shape.h * in_w;
      const float* taps = weight + c * m.taps;
      const float start = bias ? bias[c] : 0.0f;
      float* dst = out.f32() + (n * out.shape.c + c) * out.shape.h * w;
      if (flat)
        depthwise_masked_plane<1, true>(plane, taps, m, start, epilogue, dst);
      else if (stride == 1)
        depthwise_masked_plane<1, false>(plane, taps, m, start, epilogue, dst);
      else
        depthwise_masked_plane<2, false>(plane, taps, m, start, epilogue, dst);
    }
}
#endif

void depthwise(const Conv2dParams& p, const Tensor& in, const Placement& in_at, const float* weight,
               const float* bias, Tensor& out, const Placement& out_at, int64_t row_begin,
               int64_t row_end, Epilogue epilogue) {
  constexpr int64_t kLanes = kGemmLanes;
  const int64_t out_h = out.shape.h, out_w = out.shape.w, stride = p.stride_w;
  // Per kx, the output columns whose tap reads inside the map; all of them: `all`.
  std::vector<std::pair<int64_t, int64_t>> inside(p.kernel_w);
  std::pair<int64_t, int64_t> all{0, out_w};
  for (int64_t kx = 0; kx < p.kernel_w; ++kx) {
    inside[kx] =
        columns_inside(out_at.col0, out_w, stride, kx * p.dilation_w - p.pad_w, in_at.full_w);
    all = {std::max(all.first, inside[kx].first), std::min(all.second, inside[kx].second)};
  }
#if SPLITINFER_MASKED_DEPTHWISE
  if (stride <= 2)
    return depthwise_masked(p, in, in_at, weight, bias, out, out_at, row_begin, row_end, epilogue,
                            inside);
#endif
  // Input column (in the tile) of output column 0 and tap kx = 0.
  const int64_t column0 = out_at.col0 * stride - p.pad_w - in_at.col0;
  // A vector at column ox reads stride * kLanes floats from each tap's
  // column: up to the last of the row for ox below `vector_end`.
  int64_t vector_end = all.second;
  while (vector_end > all.first &&
         vector_end * stride + column0 + (p.kernel_w - 1) * p.dilation_w > in.shape.w)
    --vector_end;
  // Strides 1 and 2: whole vectors over [left, right), masked vectors over
  // [0, left) and [right, out_w) (a vector's worth each at least, if the
  // map has it); larger strides: one column at a time.
  int64_t left = 0, right = 0;
  if (stride <= 2) {
    left = all.first > 0 ? std::min(out_w, (all.first + kLanes - 1) / kLanes * kLanes) : 0;
    right = vector_end == out_w ? out_w : std::max(left, std::min(vector_end, out_w - kLanes));
    if (right - left < kLanes) right = left;
  }
  // The masked vectors' lanes that add each tap column kx.
  const int64_t chunks = (left + kLanes - 1) / kLanes + (out_w - right + kLanes - 1) / kLanes;
  std::vector<LaneMask> reads(chunks * p.kernel_w), stored(chunks);
  std::vector<LaneMask> spread(stride == 2 ? 2 * chunks * p.kernel_w : 0);
  std::vector<int64_t> chunk_first(chunks);
  for (int64_t chunk = 0, ox = 0; chunk < chunks; ++chunk) {
    if (ox >= left && ox < right) ox = right;
    chunk_first[chunk] = ox;
    const int64_t end = ox < left ? left : out_w;
    for (int64_t l = 0; l < kLanes; ++l) stored[chunk][l] = ox + l < end ? -1 : 0;
    for (int64_t kx = 0; kx < p.kernel_w; ++kx)
      for (int64_t l = 0; l < kLanes; ++l) {
        const int64_t column = ox + l;
        reads[chunk * p.kernel_w + kx][l] =
            column < end && column >= inside[kx].first && column < inside[kx].second ? -1 : 0;
      }
    if (stride == 2)
      for (int64_t kx = 0; kx < p.kernel_w; ++kx) {
        const LaneMask& columns = reads[chunk * p.kernel_w + kx];
        LaneMask& low = spread[2 * (chunk * p.kernel_w + kx)];
        LaneMask& high = spread[2 * (chunk * p.kernel_w + kx) + 1];
        for (int64_t l = 0; l < kLanes; ++l) {
          low[l] = l % 2 == 0 ? columns[l / 2] : 0;
          high[l] = l % 2 == 0 ? columns[(l + kLanes) / 2] : 0;
        }
      }
    ox = std::min(end, ox + kLanes);
  }
  std::vector<const float*> rows(p.kernel_h);
  for (int64_t n = 0; n < out.shape.n; ++n) {
    for (int64_t c = 0; c < out.shape.c; ++c) {
      const int64_t in_c =
          out_at.channel0 + c - in_at.channel0;  // one input channel per output channel
      const float* plane = in.f32() + ((n * in.shape.c + in_c) * in.shape.h) * in.shape.w;
      const float* taps = weight + c * p.kernel_h * p.kernel_w;
      const float start = bias ? bias[c] : 0.0f;
      for (int64_t oy = row_begin; oy < row_end; ++oy) {
        float* dst = out.f32() + ((n * out.shape.c + c) * out_h + oy) * out_w;
        // The taps' rows inside the map: ky in [ky_first, ky_last).
        int64_t ky_first = p.kernel_h, ky_last = 0;
        for (int64_t ky = 0; ky < p.kernel_h; ++ky) {
          const int64_t iy = (out_at.row0 + oy) * p.stride_h - p.pad_h + ky * p.dilation_h;
          if (iy < 0 || iy >= in_at.full_h) continue;
          ky_first = std::min(ky_first, ky);
          ky_last = ky + 1;
          rows[ky] = plane + (iy - in_at.row0) * in.shape.w + column0;
        }
        if (stride > 2) {
          for (int64_t x = 0; x < out_w; ++x) {
            float sum = start;
            for (int64_t ky = ky_first; ky < ky_last; ++ky)
              for (int64_t kx = 0; kx < p.kernel_w; ++kx)
                if (x >= inside[kx].first && x < inside[kx].second)
                  sum = multiply_add(sum, taps[ky * p.kernel_w + kx],
                                     rows[ky][x * stride + kx * p.dilation_w]);
            dst[x] = sum;
          }
          apply_epilogue(epilogue, dst, out_w);
          continue;
        }
        for (int64_t chunk = 0; chunk < chunks; ++chunk) {
          if (stride == 1)
            depthwise_edge<1>(rows.data(), ky_first, ky_last, p, &reads[chunk * p.kernel_w],
                              nullptr, stored[chunk], taps, start, chunk_first[chunk], epilogue,
                              dst);
          else
            depthwise_edge<2>(rows.data(), ky_first, ky_last, p, &reads[chunk * p.kernel_w],
                              &spread[2 * chunk * p.kernel_w], stored[chunk], taps, start,
                              chunk_first[chunk], epilogue, dst);
        }
        if (stride == 1)
          depthwise_row_vectors<1>(rows.data(), ky_first, ky_last, p.kernel_w, p.dilation_w, taps,
                                   start, left, right, epilogue, dst);
        else
          depthwise_row_vectors<2>(rows.data(), ky_first, ky_last, p.kernel_w, p.dilation_w, taps,
                                   start, left, right, epilogue, dst);
      }
    }
  }
}

}  // namespace

std::pair<int64_t, int64_t> columns_inside(int64_t out_col0, int64_t count, int64_t stride,
                                           int64_t offset, int64_t full) {
  // Steps over the few columns that read padding (no divisions: kernels call
  // this for every row and tap).
  int64_t first = 0, last = count;
  while (first < last && (out_col0 + first) * stride + offset < 0) ++first;
  while (last > first && (out_col0 + last - 1) * stride + offset >= full) --last;
  return {first, last};
}

int64_t window_output_size(int64_t input, int64_t kernel, int64_t stride, int64_t pad,
                           int64_t dilation) {
  const int64_t span = input + 2 * pad - dilation * (kernel - 1) - 1;
  return span < 0 ? 0 : span / stride + 1;  // 0: the window does not fit, as PyTorch refuses
}

void conv2d_reference(const Conv2dParams& p, const Tensor& in, const Placement& in_at,
                      const float* weight, const float* bias, Tensor& out,
                      const Placement& out_at) {
  const int64_t in_per_group = in_at.channels(in) / p.groups;
  const int64_t out_per_group = out_at.channels(out) / p.groups;
  for (int64_t n = 0; n < out.shape.n; ++n)
    for (int64_t oc = 0; oc < out.shape.c; ++oc) {
      const int64_t group = (out_at.channel0 + oc) / out_per_group;
      const int64_t first_input = group * in_per_group - in_at.channel0;  // in the tile
      for (int64_t oy = 0; oy < out.shape.h; ++oy)
        for (int64_t ox = 0; ox < out.shape.w; ++ox) {
          float sum = bias ? bias[oc] : 0.0f;
          for (int64_t ic = 0; ic < in_per_group; ++ic)
            for (int64_t ky = 0; ky < p.kernel_h; ++ky) {
              const int64_t iy = (out_at.row0 + oy) * p.stride_h - p.pad_h + ky * p.dilation_h;
              if (iy < 0 || iy >= in_at.full_h) continue;
              for (int64_t kx = 0; kx < p.kernel_w; ++kx) {
                const int64_t ix = (out_at.col0 + ox) * p.stride_w - p.pad_w + kx * p.dilation_w;
                if (ix < 0 || ix >= in_at.full_w) continue;
                sum += in.at(n, first_input + ic, iy - in_at.row0, ix - in_at.col0) *
                       weight[((oc * in_per_group + ic) * p.kernel_h + ky) * p.kernel_w + kx];
              }
            }
          out.at(n, oc, oy, ox) = sum;
        }
    }
}

uint64_t conv2d_scratch_bytes(const Conv2dParams& p, const Shape& in, const Shape& out,
                              int64_t in_channels, int64_t out_channels) {
  if (in_channels == 0) in_channels = in.c;
  if (out_channels == 0) out_channels = out.c;
  const bool pointwise = p.kernel_h == 1 && p.kernel_w == 1 && p.stride_h == 1 && p.stride_w == 1 &&
                         p.pad_h == 0 && p.pad_w == 0 && in.h == out.h && in.w == out.w;
  const bool depthwise_conv = p.groups == in_channels && p.groups == out_channels;
  if (pointwise || depthwise_conv) return 0;
  const int64_t patch = in_channels / p.groups * p.kernel_h * p.kernel_w;
  if (reads_band(p, out.w)) {
    const Band band = band_of(p, out.h, out.w, in_channels / p.groups);
    const int64_t out_rows = std::min(out.c, out_channels / p.groups);  // one group's, in the tile
    return static_cast<uint64_t>(band_scratch_floats(band, patch, out_rows)) * sizeof(float);
  }
  return static_cast<uint64_t>(patch * std::min(out.h * out.w, kChunk)) * sizeof(float);
}

void conv2d(const Conv2dParams& p, const Tensor& in, const Placement& in_at, const float* weight,
            const float* bias, Tensor& out, const Placement& out_at, float* scratch,
            int64_t row_begin, int64_t row_end, Epilogue epilogue) {
  if (row_end < 0) row_end = out.shape.h;
  if (row_begin >= row_end) return;
  if (is_depthwise(p, in, in_at, out, out_at))
    return depthwise(p, in, in_at, weight, bias, out, out_at, row_begin, row_end, epilogue);
  const bool pointwise = is_pointwise(p, in, in_at, out, out_at);
  const int64_t in_per_group = in_at.channels(in) / p.groups;
  const int64_t out_per_group = out_at.channels(out) / p.groups;
  const int64_t patch = in_per_group * p.kernel_h * p.kernel_w;
  const int64_t positions = out.shape.h * out.shape.w;
  // The tile's output channels [first, last) may cover parts of several groups.
  const int64_t first = out_at.channel0, last = out_at.channel0 + out.shape.c;
  const bool band_path = !pointwise && reads_band(p, out.shape.w);
  // Band path: the scratch holds the column offsets, the band, the staging.
  const Band band = band_path ? band_of(p, out.shape.h, out.shape.w, in_per_group) : Band{};
  int64_t* offsets = band_path ? reinterpret_cast<int64_t*>(scratch) : nullptr;
  float* band_floats = band_path ? scratch + 2 * patch : nullptr;
  float* staging = band_path ? band_floats + band.floats() : nullptr;
  if (band_path)
    for (int64_t ic = 0; ic < in_per_group; ++ic)
      for (int64_t ky = 0; ky < p.kernel_h; ++ky)
        for (int64_t kx = 0; kx < p.kernel_w; ++kx) {
          const int64_t y = ky * p.dilation_h, x = kx * p.dilation_w;
          const int64_t plane = (ic * p.stride_h + y % p.stride_h) * p.stride_w + x % p.stride_w;
          offsets[(ic * p.kernel_h + ky) * p.kernel_w + kx] =
              plane * band.plane_floats() + y / p.stride_h * band.width + x / p.stride_w;
        }
  for (int64_t n = 0; n < out.shape.n; ++n)
    for (int64_t group = first / out_per_group; group * out_per_group < last; ++group) {
      const int64_t begin = std::max(first, group * out_per_group);     // global output channels
      const int64_t end = std::min(last, (group + 1) * out_per_group);  // of this group in the tile
      const int64_t first_input = group * in_per_group - in_at.channel0;  // in the input tile
      const float* group_weight = weight + (begin - first) * patch;
      const float* group_bias = bias ? bias + (begin - first) : nullptr;
      float* group_out = out.f32() + (n * out.shape.c + begin - first) * positions;
      // The positions of rows [row_begin, row_end).
      const int64_t first_position = row_begin * out.shape.w, last_position = row_end * out.shape.w;
      if (pointwise) {  // the input planes are the columns [patch, positions]
        gemm_in_depth_order(group_weight,
                            in.f32() + (n * in.shape.c + first_input) * positions + first_position,
                            group_bias, group_out + first_position, end - begin, patch,
                            last_position - first_position, positions, positions, epilogue);
        continue;
      }
      if (band_path) {
        for (int64_t row = row_begin; row < row_end; row += band.rows) {
          const int64_t rows = std::min(band.rows, row_end - row);
          fill_band(band, p, in, in_at, out_at, n, first_input, row, rows, band_floats);
          gemm_in_depth_order_at_offsets(group_weight, band_floats, offsets, group_bias, staging,
                                         end - begin, patch, (rows - 1) * band.width + out.shape.w,
                                         band.positions, epilogue);
          for (int64_t oc = 0; oc < end - begin; ++oc)
            for (int64_t oy = 0; oy < rows; ++oy)
              copy_floats(staging + oc * band.positions + oy * band.width, out.shape.w,
                          group_out + oc * positions + (row + oy) * out.shape.w);
        }
        continue;
      }
      for (int64_t position = first_position; position < last_position; position += kChunk) {
        const int64_t count = std::min(kChunk, last_position - position);
        im2col(p, in, in_at, n, first_input, in_per_group, out, out_at, position, count,
               scratch);  // [patch, count]
        gemm_in_depth_order(group_weight, scratch, group_bias, group_out + position, end - begin,
                            patch, count, count, positions, epilogue);
      }
    }
}

}  // namespace splitinfer
