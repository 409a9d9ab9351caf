#include "elementwise.hpp"

namespace splitinfer {

void add(const Tensor& a, const Tensor& b, Tensor& out) {
  const int64_t count = out.shape.elements();
  for (int64_t i = 0; i < count; ++i) out.f32()[i] = a.f32()[i] + b.f32()[i];
}

void mul(const Tensor& a, const Tensor& b, Tensor& out) {
  const bool a_broadcast = a.shape.h * a.shape.w == 1 && out.shape.h * out.shape.w != 1;
  const bool b_broadcast = b.shape.h * b.shape.w == 1 && out.shape.h * out.shape.w != 1;
  const int64_t plane = out.shape.h * out.shape.w;
  for (int64_t nc = 0; nc < out.shape.n * out.shape.c; ++nc)
    for (int64_t i = 0; i < plane; ++i) {
      const float x = a.f32()[a_broadcast ? nc : nc * plane + i];
      const float y = b.f32()[b_broadcast ? nc : nc * plane + i];
      out.f32()[nc * plane + i] = x * y;
    }
}

}  // namespace splitinfer
