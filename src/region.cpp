#include "region.hpp"

#include <cstring>

namespace splitinfer {

std::string Region::str() const {
  return "c[" + std::to_string(c0) + "," + std::to_string(c1) + ") y[" + std::to_string(y0) + "," +
         std::to_string(y1) + ") x[" + std::to_string(x0) + "," + std::to_string(x1) + ")";
}

void copy_region(const float* from, const Region& from_region, float* to, const Region& to_region,
                 const Region& part) {
  if (part.empty()) return;
  const int64_t from_h = from_region.y1 - from_region.y0, from_w = from_region.x1 - from_region.x0;
  const int64_t to_h = to_region.y1 - to_region.y0, to_w = to_region.x1 - to_region.x0;
  const size_t row_bytes = static_cast<size_t>(part.x1 - part.x0) * sizeof(float);
  for (int64_t c = part.c0; c < part.c1; ++c)
    for (int64_t y = part.y0; y < part.y1; ++y)
      std::memcpy(
          to + ((c - to_region.c0) * to_h + (y - to_region.y0)) * to_w + (part.x0 - to_region.x0),
          from + ((c - from_region.c0) * from_h + (y - from_region.y0)) * from_w +
              (part.x0 - from_region.x0),
          row_bytes);
}

}  // namespace splitinfer
