#pragma once
// 2-D convolution, any stride, padding, dilation and groups (so depthwise).
// Weights are [OC, IC/groups, KH, KW], bias [OC] or null.
#include <cstdint>
#include <utility>

#include "../tensor.hpp"
#include "gemm.hpp"

namespace splitinfer {

struct Conv2dParams {
  int64_t kernel_h = 1, kernel_w = 1;
  int64_t stride_h = 1, stride_w = 1;
  int64_t pad_h = 0, pad_w = 0;  // the same on both sides, as PyTorch's Conv2d
  int64_t dilation_h = 1, dilation_w = 1;
  int64_t groups = 1;
};

// Output extent along one axis of a sliding window (conv, or pool without ceil_mode).
int64_t window_output_size(int64_t input, int64_t kernel, int64_t stride, int64_t pad,
                           int64_t dilation);

// The output columns [first, last) of a tile `count` wide placed at
// `out_col0` whose tap, at input column (out_col0 + ox) * stride + offset,
// lands inside the map's `full` columns; the others read padding. (Also for
// pooling windows.)
std::pair<int64_t, int64_t> columns_inside(int64_t out_col0, int64_t count, int64_t stride,
                                           int64_t offset, int64_t full);

// `out` is a tile of the output placed at `out_at`; `in` a tile of the input
// placed at `in_at` that covers every input row, column and channel the output
// tile reads (padding excepted). `weight` and `bias` start at the tile's first
// output channel. Plain loops: the oracle for the fast kernel.
void conv2d_reference(const Conv2dParams& params, const Tensor& in, const Placement& in_at,
                      const float* weight, const float* bias, Tensor& out, const Placement& out_at);

// Scratch bytes conv2d() needs for these tile shapes (0 when it needs none).
// in_channels / out_channels: the whole layer's, when the tiles hold a channel
// range (0: the tiles' own).
uint64_t conv2d_scratch_bytes(const Conv2dParams& params, const Shape& in, const Shape& out,
                              int64_t in_channels = 0, int64_t out_channels = 0);

// The default kernel: a register-blocked GEMM that reads its columns from a
// band (a zero-padded copy of the input rows a few output rows read, one
// plane per stride phase, so every tap is a shift of it), or from an im2col
// chunk when the band's padding columns would waste over a quarter of its
// lanes (tiles a few columns wide); a direct GEMM for 1x1 stride-1
// convolutions; for depthwise, sums in registers along each output row
// (masked vectors at the map's edges). Every output element is
// summed in the same order whatever the tile, so a tile equals the same part
// of the whole map bit for bit. `scratch` holds conv2d_scratch_bytes().
// Only the tile's rows [row_begin, row_end) are computed (row_end -1: to the
// last), so a node can compute what needs no halo while the halo travels.
void conv2d(const Conv2dParams& params, const Tensor& in, const Placement& in_at,
            const float* weight, const float* bias, Tensor& out, const Placement& out_at,
            float* scratch, int64_t row_begin = 0, int64_t row_end = -1,
            Epilogue epilogue = Epilogue::none);

}  // namespace splitinfer
