#pragma once
// Separable resizing by tap tables: along each axis, output coordinate o
// reads input coordinates index[o * taps + t] with weights weight[o * taps +
// t] (global coordinates), plus a constant bias[o] (0 but where ONNX's
// tf_crop_and_resize extrapolates). Nearest (1 tap), linear (2) and cubic
// (4) interpolation, with any coordinate transform, are tables the exporter
// computes (models/onnx_convert.py); the engine only sums:
//   out[y][x] = sum_i wy[i] * (sum_j wx[j] * in[iy[i]][ix[j]] + bx) + by
// in that order for every element, whatever the tile.
#include <cstdint>
#include <vector>

#include "../tensor.hpp"

namespace splitinfer {

struct ResizeTaps {
  int64_t taps = 1;
  std::vector<int64_t> index;  // output size x taps
  std::vector<float> weight;   // output size x taps
  std::vector<float> bias;     // output size, or empty: zeros

  int64_t size() const { return taps > 0 ? static_cast<int64_t>(index.size()) / taps : 0; }
  // The input coordinates outputs [begin, end) read: [first, last + 1).
  std::pair<int64_t, int64_t> reads(int64_t begin, int64_t end) const;
};

void resize(const ResizeTaps& rows, const ResizeTaps& cols, const Tensor& in,
            const Placement& in_at, Tensor& out, const Placement& out_at);

}  // namespace splitinfer
