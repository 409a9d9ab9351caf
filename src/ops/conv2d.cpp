#include "conv2d.hpp"

#include <algorithm>
#include <cstring>

#include "gemm.hpp"

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

// Gathers, for one group, the input patch of every output position:
// col [ICg*KH*KW, OH*OW], zero where the patch reads padding.
void im2col(const Conv2dParams& p, const Tensor& in, const Placement& in_at, int64_t n,
            int64_t first_channel, int64_t channels, const Tensor& out, const Placement& out_at,
            float* col) {
  const int64_t out_h = out.shape.h, out_w = out.shape.w;
  for (int64_t ic = 0; ic < channels; ++ic) {
    const float* plane =
        in.f32() + ((n * in.shape.c + first_channel + ic) * in.shape.h) * in.shape.w;
    for (int64_t ky = 0; ky < p.kernel_h; ++ky) {
      for (int64_t kx = 0; kx < p.kernel_w; ++kx) {
        float* row = col + ((ic * p.kernel_h + ky) * p.kernel_w + kx) * out_h * out_w;
        for (int64_t oy = 0; oy < out_h; ++oy) {
          const int64_t iy = (out_at.row0 + oy) * p.stride_h - p.pad_h + ky * p.dilation_h;
          float* dst = row + oy * out_w;
          if (iy < 0 || iy >= in_at.full_h) {
            std::fill(dst, dst + out_w, 0.0f);
            continue;
          }
          const float* src = plane + (iy - in_at.row0) * in.shape.w;
          for (int64_t ox = 0; ox < out_w; ++ox) {
            const int64_t ix = (out_at.col0 + ox) * p.stride_w - p.pad_w + kx * p.dilation_w;
            dst[ox] = (ix < 0 || ix >= in_at.full_w) ? 0.0f : src[ix - in_at.col0];
          }
        }
      }
    }
  }
}

void depthwise(const Conv2dParams& p, const Tensor& in, const Placement& in_at, const float* weight,
               const float* bias, Tensor& out, const Placement& out_at) {
  const int64_t out_h = out.shape.h, out_w = out.shape.w;
  for (int64_t n = 0; n < out.shape.n; ++n) {
    for (int64_t c = 0; c < out.shape.c; ++c) {
      const int64_t in_c =
          out_at.channel0 + c - in_at.channel0;  // one input channel per output channel
      const float* plane = in.f32() + ((n * in.shape.c + in_c) * in.shape.h) * in.shape.w;
      float* dst = out.f32() + ((n * out.shape.c + c) * out_h) * out_w;
      std::fill(dst, dst + out_h * out_w, bias ? bias[c] : 0.0f);
      for (int64_t ky = 0; ky < p.kernel_h; ++ky) {
        for (int64_t kx = 0; kx < p.kernel_w; ++kx) {
          const float w = weight[(c * p.kernel_h + ky) * p.kernel_w + kx];
          for (int64_t oy = 0; oy < out_h; ++oy) {
            const int64_t iy = (out_at.row0 + oy) * p.stride_h - p.pad_h + ky * p.dilation_h;
            if (iy < 0 || iy >= in_at.full_h) continue;
            const float* src = plane + (iy - in_at.row0) * in.shape.w;
            float* dst_row = dst + oy * out_w;
            for (int64_t ox = 0; ox < out_w; ++ox) {
              const int64_t ix = (out_at.col0 + ox) * p.stride_w - p.pad_w + kx * p.dilation_w;
              if (ix >= 0 && ix < in_at.full_w) dst_row[ox] += w * src[ix - in_at.col0];
            }
          }
        }
      }
    }
  }
}

}  // namespace

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
  return static_cast<uint64_t>(patch * out.h * out.w) * sizeof(float);
}

void conv2d(const Conv2dParams& p, const Tensor& in, const Placement& in_at, const float* weight,
            const float* bias, Tensor& out, const Placement& out_at, float* scratch) {
  if (is_depthwise(p, in, in_at, out, out_at))
    return depthwise(p, in, in_at, weight, bias, out, out_at);
  const bool pointwise = is_pointwise(p, in, in_at, out, out_at);
  const int64_t in_per_group = in_at.channels(in) / p.groups;
  const int64_t out_per_group = out_at.channels(out) / p.groups;
  const int64_t patch = in_per_group * p.kernel_h * p.kernel_w;
  const int64_t positions = out.shape.h * out.shape.w;
  // The tile's output channels [first, last) may cover parts of several groups.
  const int64_t first = out_at.channel0, last = out_at.channel0 + out.shape.c;
  for (int64_t n = 0; n < out.shape.n; ++n)
    for (int64_t group = first / out_per_group; group * out_per_group < last; ++group) {
      const int64_t begin = std::max(first, group * out_per_group);     // global output channels
      const int64_t end = std::min(last, (group + 1) * out_per_group);  // of this group in the tile
      const int64_t first_input = group * in_per_group - in_at.channel0;  // in the input tile
      const float* columns = nullptr;                                     // [patch, positions]
      if (pointwise) {
        columns = in.f32() + (n * in.shape.c + first_input) * positions;
      } else {
        im2col(p, in, in_at, n, first_input, in_per_group, out, out_at, scratch);
        columns = scratch;
      }
      gemm_in_depth_order(
          weight + (begin - first) * patch, columns, bias ? bias + (begin - first) : nullptr,
          out.f32() + (n * out.shape.c + begin - first) * positions, end - begin, patch, positions);
    }
}

}  // namespace splitinfer
