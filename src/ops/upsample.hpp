#pragma once
// Nearest-neighbour upsampling by integer factors: out[y][x] = in[y / sh][x / sw]
// in global coordinates.
#include <cstdint>

#include "../tensor.hpp"

namespace splitinfer {

void upsample_nearest(int64_t scale_h, int64_t scale_w, const Tensor& in, const Placement& in_at,
                      Tensor& out, const Placement& out_at);

}  // namespace splitinfer
