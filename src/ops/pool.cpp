#include "pool.hpp"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <type_traits>
#include <utility>
#include <vector>

#include "conv2d.hpp"
#include "intrinsics.hpp"

namespace splitinfer {

int64_t pool_output_size(int64_t input, int64_t kernel, int64_t stride, int64_t pad,
                         int64_t dilation, bool ceil_mode) {
  const int64_t span = input + 2 * pad - dilation * (kernel - 1) - 1;
  if (span < 0) return 0;  // the window does not fit, as PyTorch refuses
  int64_t size = (ceil_mode ? (span + stride - 1) / stride : span / stride) + 1;
  if (ceil_mode && (size - 1) * stride >= input + pad) --size;
  return size;
}

PoolColumns::PoolColumns(const PoolParams& p, const Placement& in_at, int64_t out_w,
                         const Placement& out_at)
    : offset(p.kernel_w), inside(p.kernel_w), last(out_w) {
  for (int64_t kx = 0; kx < p.kernel_w; ++kx) {
    offset[kx] = out_at.col0 * p.stride_w + kx * p.dilation_w - p.pad_w - in_at.col0;
    inside[kx] =
        columns_inside(out_at.col0, out_w, p.stride_w, kx * p.dilation_w - p.pad_w, in_at.full_w);
    first = std::max(first, inside[kx].first);
    last = std::min(last, inside[kx].second - (p.stride_w == 2 ? 1 : 0));
  }
}

namespace {

// best[ox] = taps[ox * stride] where that is larger or NaN, for ox in
// [first, last): the taps of one kernel column over an output row.
template <typename T>
void max_into(T* best, const T* taps, int64_t stride, int64_t first, int64_t last) {
  int64_t ox = first;
#if defined(__AVX512F__)
  if constexpr (std::is_same_v<T, float>) {
    if (stride == 2) {  // 16 taps from two vectors of the row, evens picked out
      const __m512i evens =
          _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
      for (; ox < last; ox += 16) {
        const int64_t lanes = std::min<int64_t>(16, last - ox), read = 2 * lanes - 1;
        const auto mask = [](int64_t count) {
          return static_cast<__mmask16>(count >= 16 ? 0xffff
                                                    : (1u << std::max<int64_t>(count, 0)) - 1);
        };
        const float* from = taps + 2 * ox;
        // The second vector only when its taps are needed (no pointer past the row).
        const __m512 high =
            read > 16 ? _mm512_maskz_loadu_ps(mask(read - 16), from + 16) : _mm512_setzero_ps();
        const __m512 value =
            _mm512_permutex2var_ps(_mm512_maskz_loadu_ps(mask(read), from), evens, high);
        const __mmask16 real = mask(lanes);
        const __m512 old = _mm512_maskz_loadu_ps(real, best + ox);
        const __mmask16 wins = _mm512_cmp_ps_mask(value, old, _CMP_GT_OQ) |
                               _mm512_cmp_ps_mask(value, value, _CMP_UNORD_Q);
        _mm512_mask_storeu_ps(best + ox, real & wins, value);
      }
      return;
    }
  }
#endif
  for (; ox < last; ++ox) {
    const T value = taps[ox * stride];
    best[ox] = (value > best[ox] || value != value) ? value : best[ox];
  }
}

#if defined(__AVX512F__)
// base + offset floats as an address, for masked loads whose masked-off
// lanes may lie outside the row (they are never touched).
const float* float_address(const float* base, int64_t offset) {
  return reinterpret_cast<const float*>(  // NOLINT(performance-no-int-to-ptr)
      reinterpret_cast<uintptr_t>(base) + static_cast<uintptr_t>(offset * 4));
}

// max_pool() for float32 and horizontal strides 1 and 2, the maxima of up
// to 4 vectors of an output row kept in registers through every tap: the
// same order of taps (ky, then kx), and per tap the same choice (value >
// best, or value NaN: max(value, best), then NaN lanes taken). Taps outside
// the map load as -inf, which never wins: per kernel column and vector, the
// lanes that read the map, made once per tile.
constexpr int64_t kPoolColumns = 8;   // kernel width
constexpr int64_t kPoolVectors = 64;  // output rows up to 1024 wide

struct PoolLanes {
  // Per kernel column and 16-output vector: the loads' lanes (stride 2:
  // two loads, the evens of 32 floats).
  __mmask16 low[kPoolColumns][kPoolVectors], high[kPoolColumns][kPoolVectors];
  int64_t offset[kPoolColumns];  // tile column of output column 0's tap

  static bool fits(const PoolParams& p, int64_t out_w) {
    return p.stride_w <= 2 && p.kernel_w <= kPoolColumns && out_w <= 16 * kPoolVectors;
  }
  PoolLanes(const PoolParams& p, const Placement& in_at, int64_t out_w, const Placement& out_at) {
    const int64_t vectors = (out_w + 15) / 16;
    for (int64_t kx = 0; kx < p.kernel_w; ++kx) {
      offset[kx] = out_at.col0 * p.stride_w + kx * p.dilation_w - p.pad_w - in_at.col0;
      const auto [first, last] =
          columns_inside(out_at.col0, out_w, p.stride_w, kx * p.dilation_w - p.pad_w, in_at.full_w);
      for (int64_t v = 0; v < vectors; ++v) {
        const int64_t ox = 16 * v;
        if (p.stride_w == 1) {
          low[kx][v] = lanes16(first - ox, last - ox), high[kx][v] = 0;
        } else {
          const int64_t begin = 2 * (first - ox), end = 2 * (last - ox) - 1;
          low[kx][v] = lanes16(begin, end), high[kx][v] = lanes16(begin - 16, end - 16);
        }
      }
    }
  }
};

template <int kVectors>
void max_pool_block(const PoolParams& p, const PoolLanes& lanes, const float* plane,
                    const Shape& in_shape, const Placement& in_at, float* out, int64_t oy,
                    int64_t v0, int64_t out_w, const Placement& out_at) {
  const __m512 lowest = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  const __m512i evens =
      _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  __m512 best[kVectors];
#pragma GCC unroll 4
  for (int c = 0; c < kVectors; ++c) best[c] = lowest;
  for (int64_t ky = 0; ky < p.kernel_h; ++ky) {
    const int64_t iy = (out_at.row0 + oy) * p.stride_h - p.pad_h + ky * p.dilation_h;
    if (iy < 0 || iy >= in_at.full_h) continue;
    const float* row = plane + (iy - in_at.row0) * in_shape.w;
    for (int64_t kx = 0; kx < p.kernel_w; ++kx) {
#pragma GCC unroll 4
      for (int c = 0; c < kVectors; ++c) {
        const int64_t v = v0 + c, ox = 16 * v;
        __m512 value;
        if (p.stride_w == 1) {
          value = _mm512_mask_loadu_ps(lowest, lanes.low[kx][v],
                                       float_address(row, lanes.offset[kx] + ox));
        } else {
          const float* from = float_address(row, lanes.offset[kx] + 2 * ox);
          value = _mm512_permutex2var_ps(
              _mm512_mask_loadu_ps(lowest, lanes.low[kx][v], from), evens,
              _mm512_mask_loadu_ps(lowest, lanes.high[kx][v], float_address(from, 16)));
        }
        const __mmask16 nan = _mm512_cmp_ps_mask(value, value, _CMP_UNORD_Q);
        best[c] = _mm512_mask_mov_ps(_mm512_max_ps(value, best[c]), nan, value);
      }
    }
  }
#pragma GCC unroll 4
  for (int c = 0; c < kVectors; ++c) {
    const int64_t ox = 16 * (v0 + c);
    _mm512_mask_storeu_ps(out + ox, lanes16(0, out_w - ox), best[c]);
  }
}

void max_pool_fast(const PoolParams& p, const float* in, const Shape& in_shape,
                   const Placement& in_at, float* out, const Shape& out_shape,
                   const Placement& out_at) {
  const int64_t out_w = out_shape.w, vectors = (out_w + 15) / 16;
  const PoolLanes lanes(p, in_at, out_w, out_at);
  for (int64_t nc = 0; nc < out_shape.n * out_shape.c; ++nc) {
    const float* plane = in + nc * in_shape.h * in_shape.w;
    for (int64_t oy = 0; oy < out_shape.h; ++oy) {
      float* row = out + (nc * out_shape.h + oy) * out_w;
      int64_t v = 0;
      for (; v + 4 <= vectors; v += 4)
        max_pool_block<4>(p, lanes, plane, in_shape, in_at, row, oy, v, out_w, out_at);
      switch (vectors - v) {
        case 3:
          max_pool_block<3>(p, lanes, plane, in_shape, in_at, row, oy, v, out_w, out_at);
          break;
        case 2:
          max_pool_block<2>(p, lanes, plane, in_shape, in_at, row, oy, v, out_w, out_at);
          break;
        case 1:
          max_pool_block<1>(p, lanes, plane, in_shape, in_at, row, oy, v, out_w, out_at);
          break;
        default:
          break;
      }
    }
  }
}
#endif

#if defined(__AVX2__) && !defined(__AVX512F__)
// AVX2, float32, strides 1 and 2: where every tap of 8 consecutive output
// columns reads inside the map (and no load reads past the taps the plain
// loop reads), the 8 maxima stay in a register over all the taps, in the
// plain loop's order (ky, then kx) and with its comparisons; the few
// columns near the edges go through the plain loop.
bool max_pool_avx2(const PoolParams& p, const float* in, const Shape& in_shape,
                   const Placement& in_at, float* out, const Shape& out_shape,
                   const Placement& out_at) {
  if (p.stride_w != 1 && p.stride_w != 2) return false;
  const int64_t out_w = out_shape.w, stride = p.stride_w;
  const PoolColumns columns(p, in_at, out_w, out_at);
  const int64_t first = columns.first, last = columns.last;
  const std::vector<int64_t>& offset = columns.offset;
  // Vectors from `first`, the last ending at `last` (overlapping the one
  // before it: its columns come out the same again).
  const int64_t end = last - first >= 8 ? last : first;
  const float lowest = -std::numeric_limits<float>::infinity();
  // value > best || value is NaN ? value : best. vmaxps(value, best) gives
  // best where the two are equal or either is NaN: only a NaN value needs
  // the blend.
  const auto keep = [](__m256 best, __m256 value) {
    return _mm256_blendv_ps(_mm256_max_ps(value, best), value,
                            _mm256_cmp_ps(value, value, _CMP_UNORD_Q));
  };
  const auto load = [stride](const float* from) {
    if (stride == 1) return _mm256_loadu_ps(from);
    // Floats 0, 2, 8, 10 | 4, 6, 12, 14 of the 16, then in order.
    const __m256 evens = _mm256_shuffle_ps(_mm256_loadu_ps(from), _mm256_loadu_ps(from + 8), 0x88);
    return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(evens), 0xd8));
  };
  for (int64_t nc = 0; nc < out_shape.n * out_shape.c; ++nc) {
    const float* plane = in + nc * in_shape.h * in_shape.w;
    for (int64_t oy = 0; oy < out_shape.h; ++oy) {
      float* best = out + (nc * out_shape.h + oy) * out_w;
      const float* rows[16];
      int64_t count = 0;
      for (int64_t ky = 0; ky < p.kernel_h; ++ky) {
        const int64_t iy = (out_at.row0 + oy) * p.stride_h - p.pad_h + ky * p.dilation_h;
        if (iy >= 0 && iy < in_at.full_h) rows[count++] = plane + (iy - in_at.row0) * in_shape.w;
      }
      for (int64_t column = first; column < end; column += 8) {
        const int64_t ox = std::min(column, end - 8);
        __m256 value = _mm256_set1_ps(lowest);
        for (int64_t r = 0; r < count; ++r)
          for (int64_t kx = 0; kx < p.kernel_w; ++kx)
            value = keep(value, load(rows[r] + offset[kx] + ox * stride));
        _mm256_storeu_ps(best + ox, value);
      }
      // The other columns, tap by tap.
      for (const auto& [begin, stop] : {std::pair{int64_t{0}, first}, std::pair{end, out_w}}) {
        if (begin >= stop) continue;
        std::fill(best + begin, best + stop, lowest);
        for (int64_t r = 0; r < count; ++r)
          for (int64_t kx = 0; kx < p.kernel_w; ++kx)
            max_into(best, rows[r] + offset[kx], stride, std::max(begin, columns.inside[kx].first),
                     std::min(stop, columns.inside[kx].second));
      }
    }
  }
  return true;
}
#endif

// NaN propagates, as in PyTorch; padding never wins. Every output element
// meets its taps in the same order (ky, then kx) as a plain loop would, tap by
// tap over a whole output row, so the loops vectorize and NaN payloads agree.
template <typename T>
void max_pool(const PoolParams& p, const T* in, const Shape& in_shape, const Placement& in_at,
              T* out, const Shape& out_shape, const Placement& out_at) {
  const T lowest = std::numeric_limits<T>::has_infinity ? -std::numeric_limits<T>::infinity()
                                                        : std::numeric_limits<T>::lowest();
  const int64_t out_w = out_shape.w;
#if defined(__AVX512F__)
  if constexpr (std::is_same_v<T, float>)
    if (PoolLanes::fits(p, out_w))
      return max_pool_fast(p, in, in_shape, in_at, out, out_shape, out_at);
#elif defined(__AVX2__)
  if constexpr (std::is_same_v<T, float>)
    if (p.kernel_h <= 16 && max_pool_avx2(p, in, in_shape, in_at, out, out_shape, out_at)) return;
#endif
  for (int64_t nc = 0; nc < out_shape.n * out_shape.c; ++nc) {
    const T* plane = in + nc * in_shape.h * in_shape.w;
    for (int64_t oy = 0; oy < out_shape.h; ++oy) {
      T* best = out + (nc * out_shape.h + oy) * out_w;
      std::fill(best, best + out_w, lowest);
      for (int64_t ky = 0; ky < p.kernel_h; ++ky) {
        const int64_t iy = (out_at.row0 + oy) * p.stride_h - p.pad_h + ky * p.dilation_h;
        if (iy < 0 || iy >= in_at.full_h) continue;
        const T* row = plane + (iy - in_at.row0) * in_shape.w;
        for (int64_t kx = 0; kx < p.kernel_w; ++kx) {
          // Input column of output column ox: (col0 + ox) * stride + kx * dilation - pad.
          const T* taps = row + out_at.col0 * p.stride_w + kx * p.dilation_w - p.pad_w - in_at.col0;
          const auto [first, last] = columns_inside(out_at.col0, out_w, p.stride_w,
                                                    kx * p.dilation_w - p.pad_w, in_at.full_w);
          max_into(best, taps, p.stride_w, first, last);
        }
      }
    }
  }
}

}  // namespace

void maxpool(const PoolParams& p, const Tensor& in, const Placement& in_at, Tensor& out,
             const Placement& out_at) {
  if (in.dtype == DType::u8)
    max_pool(p, in.u8(), in.shape, in_at, out.u8(), out.shape, out_at);
  else
    max_pool(p, in.f32(), in.shape, in_at, out.f32(), out.shape, out_at);
}

void avgpool(const PoolParams& p, const Tensor& in, const Placement& in_at, Tensor& out,
             const Placement& out_at) {
  for (int64_t n = 0; n < out.shape.n; ++n)
    for (int64_t c = 0; c < out.shape.c; ++c)
      for (int64_t oy = 0; oy < out.shape.h; ++oy)
        for (int64_t ox = 0; ox < out.shape.w; ++ox) {
          // Window bounds as PyTorch's avg_pool2d computes them: clipped to the
          // padded input for count_include_pad, then to the input itself.
          int64_t y_begin = (out_at.row0 + oy) * p.stride_h - p.pad_h;
          int64_t x_begin = (out_at.col0 + ox) * p.stride_w - p.pad_w;
          int64_t y_end = std::min(y_begin + p.kernel_h, in_at.full_h + p.pad_h);
          int64_t x_end = std::min(x_begin + p.kernel_w, in_at.full_w + p.pad_w);
          const int64_t padded_count = (y_end - y_begin) * (x_end - x_begin);
          y_begin = std::max<int64_t>(y_begin, 0);
          x_begin = std::max<int64_t>(x_begin, 0);
          y_end = std::min(y_end, in_at.full_h);
          x_end = std::min(x_end, in_at.full_w);
          float sum = 0.0f;
          for (int64_t iy = y_begin; iy < y_end; ++iy)
            for (int64_t ix = x_begin; ix < x_end; ++ix)
              sum += in.at(n, c, iy - in_at.row0, ix - in_at.col0);
          const int64_t divisor =
              p.count_include_pad ? padded_count : (y_end - y_begin) * (x_end - x_begin);
          out.at(n, c, oy, ox) = sum / static_cast<float>(divisor);
        }
}

void global_avgpool(const Tensor& in, Tensor& out) {
  const int64_t plane = in.shape.h * in.shape.w;
  for (int64_t nc = 0; nc < in.shape.n * in.shape.c; ++nc) {
    float sum = 0.0f;
    for (int64_t i = 0; i < plane; ++i) sum += in.f32()[nc * plane + i];
    out.f32()[nc] = sum / static_cast<float>(plane);
  }
}

}  // namespace splitinfer
