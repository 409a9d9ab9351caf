#include "shape.hpp"

#include "error.hpp"

namespace splitinfer {

std::vector<int64_t> Shape::dims() const {
  if (rank == 2) return {n, c};
  return {n, c, h, w};
}

std::string Shape::str() const {
  std::string text;
  for (int64_t extent : dims()) {
    if (!text.empty()) text += "x";
    text += std::to_string(extent);
  }
  return text;
}

Shape Shape::from_dims(const std::vector<int64_t>& dims) {
  // Bounds that keep element counts (and MPI's int counts of a region) from overflowing.
  constexpr int64_t kLargestExtent = int64_t{1} << 24, kLargestTensor = int64_t{1} << 31;
  int64_t elements = 1;
  for (int64_t extent : dims) {
    if (extent <= 0) throw Error("shape extent " + std::to_string(extent) + " is not positive");
    if (extent > kLargestExtent)
      throw Error("shape extent " + std::to_string(extent) + " is too large");
    elements *= extent;
    if (elements >= kLargestTensor) throw Error("a tensor of more than 2^31 elements is too large");
  }
  if (dims.size() == 4) return Shape{dims[0], dims[1], dims[2], dims[3], 4};
  if (dims.size() == 2) return Shape{dims[0], dims[1], 1, 1, 2};
  throw Error("a shape has rank " + std::to_string(dims.size()) +
              "; only rank 2 and 4 are supported");
}

}  // namespace splitinfer
