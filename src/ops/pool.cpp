#include "pool.hpp"

#include <algorithm>
#include <limits>
#include <type_traits>
#include <utility>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include "conv2d.hpp"

namespace splitinfer {

int64_t pool_output_size(int64_t input, int64_t kernel, int64_t stride, int64_t pad,
                         int64_t dilation, bool ceil_mode) {
  const int64_t span = input + 2 * pad - dilation * (kernel - 1) - 1;
  if (span < 0) return 0;  // the window does not fit, as PyTorch refuses
  int64_t size = (ceil_mode ? (span + stride - 1) / stride : span / stride) + 1;
  if (ceil_mode && (size - 1) * stride >= input + pad) --size;
  return size;
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

// NaN propagates, as in PyTorch; padding never wins. Every output element
// meets its taps in the same order (ky, then kx) as a plain loop would, tap by
// tap over a whole output row, so the loops vectorize and NaN payloads agree.
template <typename T>
void max_pool(const PoolParams& p, const T* in, const Shape& in_shape, const Placement& in_at,
              T* out, const Shape& out_shape, const Placement& out_at) {
  const T lowest = std::numeric_limits<T>::has_infinity ? -std::numeric_limits<T>::infinity()
                                                        : std::numeric_limits<T>::lowest();
  const int64_t out_w = out_shape.w;
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
