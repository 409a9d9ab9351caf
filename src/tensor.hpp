#pragma once
// The one tensor type: a shape, a dtype, and a view of memory it does not own
// (a node's arena or a flash image owns it).
#include <cstddef>
#include <cstdint>

#include "shape.hpp"

namespace splitinfer {

// f32: float32. u8: quint8 activations (uint8 with a scale and zero point).
// i8, i32: int8 weights and int32 biases of quantized layers. f16: float16
// weight storage (widened to float32 before use).
enum class DType { f32, u8, i8, i32, f16 };

inline size_t dtype_bytes(DType dtype) {
  switch (dtype) {
    case DType::u8:
    case DType::i8:
      return 1;
    case DType::f16:
      return 2;
    default:
      return 4;
  }
}
const char* dtype_name(DType dtype);

struct Tensor {
  Shape shape;
  DType dtype = DType::f32;
  void* data = nullptr;

  size_t bytes() const { return static_cast<size_t>(shape.elements()) * dtype_bytes(dtype); }
  uint8_t* u8() { return static_cast<uint8_t*>(data); }
  const uint8_t* u8() const { return static_cast<const uint8_t*>(data); }
  float* f32() { return static_cast<float*>(data); }
  const float* f32() const { return static_cast<const float*>(data); }
  // Element (n, c, y, x) of a float32 NCHW tensor.
  float& at(int64_t n, int64_t c, int64_t y, int64_t x) {
    return f32()[((n * shape.c + c) * shape.h + y) * shape.w + x];
  }
  float at(int64_t n, int64_t c, int64_t y, int64_t x) const {
    return f32()[((n * shape.c + c) * shape.h + y) * shape.w + x];
  }
};

// Where a tile of an activation map sits in the whole map: the global row and
// column of its element (0, 0), and the whole map's height and width (rows and
// columns outside [0, full_h) x [0, full_w) are padding); likewise its first
// channel and the whole map's channel count (full_channels 0: the tile holds
// every channel). A node holding the whole map has Placement::whole(shape).
struct Placement {
  int64_t row0 = 0, col0 = 0;
  int64_t full_h = 0, full_w = 0;
  int64_t channel0 = 0, full_channels = 0;
  static Placement whole(const Shape& shape) { return {0, 0, shape.h, shape.w, 0, shape.c}; }
  int64_t channels(const Tensor& tile) const {
    return full_channels ? full_channels : tile.shape.c;
  }
};

}  // namespace splitinfer
