#pragma once
// Shape of an activation map or weight, always four extents in NCHW order.
// Rank-2 tensors [N, F] are held as [N, F, 1, 1]; `rank` remembers which.
#include <cstdint>
#include <string>
#include <vector>

namespace splitinfer {

struct Shape {
  int64_t n = 1, c = 1, h = 1, w = 1;
  int rank = 4;

  int64_t elements() const { return n * c * h * w; }
  bool operator==(const Shape& other) const {
    return n == other.n && c == other.c && h == other.h && w == other.w && rank == other.rank;
  }
  bool operator!=(const Shape& other) const { return !(*this == other); }
  // The extents as stored in a file: rank 4 or rank 2.
  std::vector<int64_t> dims() const;
  // "1x32x48x48" or "1x1000".
  std::string str() const;
  static Shape from_dims(const std::vector<int64_t>& dims);
};

}  // namespace splitinfer
