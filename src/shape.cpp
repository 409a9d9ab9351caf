#include "shape.hpp"

#include "error.hpp"

namespace splitinfer {

std::vector<int64_t> Shape::dims() const {
  if (rank == 2) return {n, c};
  return {n, c, h, w};
}

std::string Shape::str() const {
  std::string text;
  for (int64_t extent : dims()) text += (text.empty() ? "" : "x") + std::to_string(extent);
  return text;
}

Shape Shape::from_dims(const std::vector<int64_t>& dims) {
  for (int64_t extent : dims)
    if (extent <= 0) throw Error("shape extent " + std::to_string(extent) + " is not positive");
  if (dims.size() == 4) return Shape{dims[0], dims[1], dims[2], dims[3], 4};
  if (dims.size() == 2) return Shape{dims[0], dims[1], 1, 1, 2};
  throw Error("a shape has rank " + std::to_string(dims.size()) +
              "; only rank 2 and 4 are supported");
}

}  // namespace splitinfer
