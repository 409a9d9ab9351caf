#pragma once
// Max and average pooling with PyTorch's semantics (padding, dilation for
// max, ceil_mode, count_include_pad), and global average pooling.
#include <cstdint>
#include <utility>
#include <vector>

#include "../tensor.hpp"

namespace splitinfer {

struct PoolParams {
  int64_t kernel_h = 1, kernel_w = 1;
  int64_t stride_h = 1, stride_w = 1;
  int64_t pad_h = 0, pad_w = 0;
  int64_t dilation_h = 1, dilation_w = 1;  // max pool only
  bool ceil_mode = false;
  bool count_include_pad = true;  // avg pool only
};

// PyTorch's pooling output size along one axis (ceil_mode windows must start
// inside the input or its left padding).
int64_t pool_output_size(int64_t input, int64_t kernel, int64_t stride, int64_t pad,
                         int64_t dilation, bool ceil_mode);

void maxpool(const PoolParams& params, const Tensor& in, const Placement& in_at, Tensor& out,
             const Placement& out_at);

// For the vector max pools: per kernel column kx, the tap of output column 0
// (an offset in the tile's row) and the output columns [0, out_w) whose tap
// reads inside the map; [first, last), the columns every kx reads, less the
// last at stride 2 (a vector of taps there reads one element past its last).
struct PoolColumns {
  std::vector<int64_t> offset;
  std::vector<std::pair<int64_t, int64_t>> inside;
  int64_t first = 0, last = 0;
  PoolColumns(const PoolParams& p, const Placement& in_at, int64_t out_w, const Placement& out_at);
};
void avgpool(const PoolParams& params, const Tensor& in, const Placement& in_at, Tensor& out,
             const Placement& out_at);
// out[N, C, 1, 1] = mean of in over H and W.
void global_avgpool(const Tensor& in, Tensor& out);

}  // namespace splitinfer
