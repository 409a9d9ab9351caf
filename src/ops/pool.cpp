#include "pool.hpp"

#include <algorithm>
#include <limits>
#include <utility>

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
          for (int64_t ox = first; ox < last; ++ox) {
            const T value = taps[ox * p.stride_w];
            best[ox] = (value > best[ox] || value != value) ? value : best[ox];
          }
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
