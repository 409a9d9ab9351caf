#include "resize.hpp"

#include <algorithm>
#include <limits>

namespace splitinfer {

std::pair<int64_t, int64_t> ResizeTaps::reads(int64_t begin, int64_t end) const {
  int64_t first = std::numeric_limits<int64_t>::max(), last = -1;
  for (int64_t i = begin * taps; i < end * taps; ++i) {
    first = std::min(first, index[i]);
    last = std::max(last, index[i]);
  }
  if (last < 0) return {0, 0};
  return {first, last + 1};
}

void resize(const ResizeTaps& rows, const ResizeTaps& cols, const Tensor& in,
            const Placement& in_at, Tensor& out, const Placement& out_at) {
  const Shape& is = in.shape;
  const Shape& os = out.shape;
  const float* src = in.f32();
  float* dst = out.f32();
  for (int64_t nc = 0; nc < os.n * os.c; ++nc)
    for (int64_t oy = 0; oy < os.h; ++oy) {
      const int64_t* iy = &rows.index[(out_at.row0 + oy) * rows.taps];
      const float* wy = &rows.weight[(out_at.row0 + oy) * rows.taps];
      float* target = dst + (nc * os.h + oy) * os.w;
      for (int64_t ox = 0; ox < os.w; ++ox) {
        const int64_t* ix = &cols.index[(out_at.col0 + ox) * cols.taps];
        const float* wx = &cols.weight[(out_at.col0 + ox) * cols.taps];
        float sum = 0;
        for (int64_t i = 0; i < rows.taps; ++i) {
          const float* row = src + (nc * is.h + iy[i] - in_at.row0) * is.w - in_at.col0;
          float along = 0;
          for (int64_t j = 0; j < cols.taps; ++j) along += wx[j] * row[ix[j]];
          if (!cols.bias.empty()) along += cols.bias[out_at.col0 + ox];
          sum += wy[i] * along;
        }
        if (!rows.bias.empty()) sum += rows.bias[out_at.row0 + oy];
        target[ox] = sum;
      }
    }
}

}  // namespace splitinfer
