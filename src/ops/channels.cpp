#include "channels.hpp"

#include <cstring>

namespace splitinfer {
namespace {

// Any dtype: planes are copied as bytes.
void copy_plane(const Tensor& from, int64_t n, int64_t from_c, Tensor& to, int64_t to_c) {
  const size_t plane_bytes = from.shape.h * from.shape.w * dtype_bytes(from.dtype);
  std::memcpy(static_cast<char*>(to.data) + (n * to.shape.c + to_c) * plane_bytes,
              static_cast<const char*>(from.data) + (n * from.shape.c + from_c) * plane_bytes,
              plane_bytes);
}

}  // namespace

void concat(const std::vector<const Tensor*>& inputs, Tensor& out) {
  for (int64_t n = 0; n < out.shape.n; ++n) {
    int64_t channel = 0;
    for (const Tensor* input : inputs)
      for (int64_t c = 0; c < input->shape.c; ++c) copy_plane(*input, n, c, out, channel++);
  }
}

void slice_channels(const Tensor& in, int64_t start, Tensor& out) {
  for (int64_t n = 0; n < out.shape.n; ++n)
    for (int64_t c = 0; c < out.shape.c; ++c) copy_plane(in, n, start + c, out, c);
}

void channel_shuffle(const Tensor& in, int64_t in_channel0, int64_t groups, int64_t channels,
                     Tensor& out, int64_t out_channel0) {
  const int64_t per_group = channels / groups;
  for (int64_t n = 0; n < out.shape.n; ++n)
    for (int64_t c = 0; c < out.shape.c; ++c) {
      const int64_t output_channel = out_channel0 + c;
      const int64_t source = (output_channel % groups) * per_group + output_channel / groups;
      copy_plane(in, n, source - in_channel0, out, c);
    }
}

}  // namespace splitinfer
