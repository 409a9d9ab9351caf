#include "region.hpp"

#include <cstring>

namespace splitinfer {

std::string Region::str() const {
  return "c[" + std::to_string(c0) + "," + std::to_string(c1) + ") y[" + std::to_string(y0) + "," +
         std::to_string(y1) + ") x[" + std::to_string(x0) + "," + std::to_string(x1) + ")";
}

void copy_region(const void* from, const Region& from_region, void* to, const Region& to_region,
                 const Region& part, size_t element_bytes) {
  if (part.empty()) return;
  const int64_t from_h = from_region.y1 - from_region.y0, from_w = from_region.x1 - from_region.x0;
  const int64_t to_h = to_region.y1 - to_region.y0, to_w = to_region.x1 - to_region.x0;
  const size_t row_bytes = static_cast<size_t>(part.x1 - part.x0) * element_bytes;
  const char* source = static_cast<const char*>(from);
  char* target = static_cast<char*>(to);
  for (int64_t c = part.c0; c < part.c1; ++c)
    for (int64_t y = part.y0; y < part.y1; ++y)
      std::memcpy(target + (((c - to_region.c0) * to_h + (y - to_region.y0)) * to_w +
                            (part.x0 - to_region.x0)) *
                               element_bytes,
                  source + (((c - from_region.c0) * from_h + (y - from_region.y0)) * from_w +
                            (part.x0 - from_region.x0)) *
                               element_bytes,
                  row_bytes);
}

const char* dtype_name(DType dtype) {
  switch (dtype) {
    case DType::f32:
      return "float32";
    case DType::u8:
      return "quint8";
    case DType::i8:
      return "int8";
    case DType::i32:
      return "int32";
    case DType::f16:
      return "float16";
  }
  return "?";
}

}  // namespace splitinfer
