#pragma once
// A box of a layer's output (batch 1): channels [c0, c1), rows [y0, y1),
// columns [x0, x1). Plans give each node one Region per layer; a tile of a
// map is the data of one Region, stored channel-major like the whole map.
#include <algorithm>
#include <cstdint>
#include <string>

#include "shape.hpp"
#include "tensor.hpp"

namespace splitinfer {

struct Region {
  int64_t c0 = 0, c1 = 0, y0 = 0, y1 = 0, x0 = 0, x1 = 0;

  static Region whole(const Shape& shape) { return {0, shape.c, 0, shape.h, 0, shape.w}; }
  bool empty() const { return c1 <= c0 || y1 <= y0 || x1 <= x0; }
  int64_t elements() const { return empty() ? 0 : (c1 - c0) * (y1 - y0) * (x1 - x0); }
  // The tile's bytes for elements of `element_bytes` bytes.
  uint64_t bytes(size_t element_bytes) const {
    return static_cast<uint64_t>(elements()) * element_bytes;
  }
  Region intersect(const Region& other) const {
    return {std::max(c0, other.c0), std::min(c1, other.c1), std::max(y0, other.y0),
            std::min(y1, other.y1), std::max(x0, other.x0), std::min(x1, other.x1)};
  }
  // The smallest region holding both (either may be empty).
  Region bounding(const Region& other) const {
    if (empty()) return other;
    if (other.empty()) return *this;
    return {std::min(c0, other.c0), std::max(c1, other.c1), std::min(y0, other.y0),
            std::max(y1, other.y1), std::min(x0, other.x0), std::max(x1, other.x1)};
  }
  bool contains(const Region& inner) const {
    return inner.empty() || (c0 <= inner.c0 && inner.c1 <= c1 && y0 <= inner.y0 && inner.y1 <= y1 &&
                             x0 <= inner.x0 && inner.x1 <= x1);
  }
  bool operator==(const Region& other) const {
    return c0 == other.c0 && c1 == other.c1 && y0 == other.y0 && y1 == other.y1 && x0 == other.x0 &&
           x1 == other.x1;
  }
  // Whether a tile holding `holder` (which contains this region) stores this
  // region as one run of memory: whole rows of one channel, whole planes of
  // channels, or part of one row of one channel.
  bool one_run_in(const Region& holder) const {
    const bool whole_rows = x0 == holder.x0 && x1 == holder.x1;
    const bool one_channel = c1 - c0 == 1;
    return (whole_rows && (one_channel || (y0 == holder.y0 && y1 == holder.y1))) ||
           (one_channel && y1 - y0 == 1);
  }
  // The elements before this region's first in a tile holding `holder`.
  int64_t offset_in(const Region& holder) const {
    return ((c0 - holder.c0) * (holder.y1 - holder.y0) + y0 - holder.y0) * (holder.x1 - holder.x0) +
           x0 - holder.x0;
  }
  // The tile's shape; rank 2 maps keep rank 2.
  Shape shape(const Shape& whole_map) const {
    return Shape{1, c1 - c0, y1 - y0, x1 - x0, whole_map.rank};
  }
  // Where the tile sits in the whole map.
  Placement placement(const Shape& whole_map) const {
    return Placement{y0, x0, whole_map.h, whole_map.w, c0, whole_map.c};
  }
  std::string str() const;
};

// Copies `part` (inside both regions) from a tile holding `from_region` to a
// tile holding `to_region`; elements of `element_bytes` bytes.
void copy_region(const void* from, const Region& from_region, void* to, const Region& to_region,
                 const Region& part, size_t element_bytes);

}  // namespace splitinfer
