#include "upsample.hpp"

namespace splitinfer {

namespace {

template <typename T>
void upsample(int64_t scale_h, int64_t scale_w, const T* in, const Shape& in_shape,
              const Placement& in_at, T* out, const Shape& out_shape, const Placement& out_at) {
  for (int64_t nc = 0; nc < out_shape.n * out_shape.c; ++nc)
    for (int64_t oy = 0; oy < out_shape.h; ++oy) {
      const T* row =
          in + (nc * in_shape.h + (out_at.row0 + oy) / scale_h - in_at.row0) * in_shape.w;
      T* target = out + (nc * out_shape.h + oy) * out_shape.w;
      for (int64_t ox = 0; ox < out_shape.w; ++ox)
        target[ox] = row[(out_at.col0 + ox) / scale_w - in_at.col0];
    }
}

}  // namespace

void upsample_nearest(int64_t scale_h, int64_t scale_w, const Tensor& in, const Placement& in_at,
                      Tensor& out, const Placement& out_at) {
  if (in.dtype == DType::u8)
    upsample(scale_h, scale_w, in.u8(), in.shape, in_at, out.u8(), out.shape, out_at);
  else
    upsample(scale_h, scale_w, in.f32(), in.shape, in_at, out.f32(), out.shape, out_at);
}

}  // namespace splitinfer
