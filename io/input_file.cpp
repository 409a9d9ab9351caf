#include "input_file.hpp"

#include <stb_image.h>
#include <stb_image_resize.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <memory>

#include "../src/error.hpp"
#include "hdf5.hpp"

namespace splitinfer {
namespace {

std::string lowercase_extension(const std::string& path) {
  std::string extension = std::filesystem::path(path).extension().string();
  std::transform(extension.begin(), extension.end(), extension.begin(), ::tolower);
  return extension;
}

std::vector<float> read_h5_input(const std::string& path, const ModelMeta& meta) {
  const h5::Group root = h5::open_file(path);
  std::vector<int64_t> dims;
  std::vector<float> values = root.read_floats("input", dims);
  const std::vector<int64_t> expected = meta.input_shape.dims();
  if (dims != expected) {
    std::string got;
    for (int64_t extent : dims) got += (got.empty() ? "" : "x") + std::to_string(extent);
    throw Error("input '" + path + "' has shape " + (got.empty() ? "(scalar)" : got) +
                " but the model takes " + meta.input_shape.str());
  }
  for (float value : values)
    if (!std::isfinite(value)) throw Error("input '" + path + "' holds a non-finite value");
  return values;
}

std::vector<float> read_image_input(const std::string& path, const ModelMeta& meta) {
  const int channels = static_cast<int>(meta.input_shape.c);
  if (channels != 1 && channels != 3)
    throw Error("the model takes " + std::to_string(channels) +
                " input channels; images give 1 or 3");
  if (meta.resize != "bilinear")
    throw Error("the model's resize method '" + meta.resize + "' is not supported");
  int width = 0, height = 0, stored_channels = 0;
  std::unique_ptr<unsigned char, void (*)(void*)> pixels(
      stbi_load(path.c_str(), &width, &height, &stored_channels, channels), stbi_image_free);
  if (!pixels) throw Error("cannot decode image '" + path + "': " + stbi_failure_reason());
  const int64_t count = static_cast<int64_t>(width) * height * channels;
  std::vector<float> linear(pixels.get(), pixels.get() + count);  // 0..255, interleaved HWC

  const int out_w = static_cast<int>(meta.input_shape.w),
            out_h = static_cast<int>(meta.input_shape.h);
  std::vector<float> resized(static_cast<size_t>(out_w) * out_h * channels);
  if (!stbir_resize_float_generic(linear.data(), width, height, 0, resized.data(), out_w, out_h, 0,
                                  channels, STBIR_ALPHA_CHANNEL_NONE, 0, STBIR_EDGE_CLAMP,
                                  STBIR_FILTER_TRIANGLE, STBIR_COLORSPACE_LINEAR, nullptr))
    throw Error("cannot resize image '" + path + "'");

  // HWC (interleaved) to CHW, in the model's channel order, normalised.
  std::vector<float> input(resized.size());
  const int64_t plane = static_cast<int64_t>(out_w) * out_h;
  for (int c = 0; c < channels; ++c) {
    const int source = meta.channel_order == "bgr" ? channels - 1 - c : c;
    for (int64_t i = 0; i < plane; ++i)
      input[c * plane + i] = static_cast<float>(
          (resized[i * channels + source] * meta.pixel_scale - meta.mean[c]) / meta.std[c]);
  }
  return input;
}

}  // namespace

std::vector<float> read_input(const std::string& path, const ModelMeta& meta) {
  if (!std::filesystem::exists(path)) throw Error("input file '" + path + "' does not exist");
  const std::string extension = lowercase_extension(path);
  if (extension == ".h5" || extension == ".hdf5") return read_h5_input(path, meta);
  if (extension == ".png" || extension == ".jpg" || extension == ".jpeg")
    return read_image_input(path, meta);
  throw Error("input '" + path + "' is neither .h5 nor .png/.jpg");
}

}  // namespace splitinfer
