#include "input_file.hpp"

// stb_image compiled here, private to this file, with the decoders of the
// formats splitinfer reads (PNG, JPEG, BMP) and no others (GIF, PSD, TGA,
// HDR, PIC, PNM): fewer decoders of untrusted bytes. Sanitized and fuzz
// builds instrument it with the rest (tests/fuzz).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#pragma GCC diagnostic ignored "-Wunused-but-set-variable"
#define STB_IMAGE_STATIC
#define STB_IMAGE_IMPLEMENTATION
#define STBI_ONLY_PNG
#define STBI_ONLY_JPEG
#define STBI_ONLY_BMP
#include <stb_image.h>
#define STB_IMAGE_RESIZE_STATIC
#define STB_IMAGE_RESIZE_IMPLEMENTATION
#include <stb_image_resize.h>
#pragma GCC diagnostic pop

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>

#include "../src/error.hpp"
#include "../src/format.hpp"
#include "hdf5.hpp"

namespace splitinfer {
namespace {

// The largest image splitinfer decodes: 16 Mpixel (48 MiB as 8-bit RGB, four
// times that as floats while resizing); far above any model's input, far
// below what a decompression bomb declares.
constexpr int64_t kMaxImagePixels = int64_t{1} << 24;

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
    for (int64_t extent : dims) {
      if (!got.empty()) got += "x";
      got += std::to_string(extent);
    }
    throw Error("input '" + printable(path) + "' has shape " + (got.empty() ? "(scalar)" : got) +
                " but the model takes " + meta.input_shape.str());
  }
  for (float value : values)
    if (!std::isfinite(value))
      throw Error("input '" + printable(path) + "' holds a non-finite value");
  return values;
}

// stb_image 2.27 (Debian's) builds a JPEG Huffman table from the 16 code
// counts of a DHT segment without checking that they add up to at most 256
// symbols, and writes past its 257-entry table when they do not (fixed in
// stb_image 2.28). So the DHT segments of a JPEG file are checked here first,
// walking its markers (ITU T.81 B.1): ones before the first scan, and between
// scans (progressive files), skipping entropy-coded data, whose 0xFF bytes
// are followed by 0x00 or a restart marker.
void check_jpeg_huffman_tables(const std::string& path) {
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> file(std::fopen(path.c_str(), "rb"), std::fclose);
  if (!file) return;  // stb_image reports it
  std::FILE* in = file.get();
  if (std::fgetc(in) != 0xFF || std::fgetc(in) != 0xD8) return;  // not JPEG
  const auto refuse = [&](const std::string& why) {
    throw Error("cannot decode image '" + printable(path) + "': corrupt JPEG (" + why + ")");
  };
  bool in_scan = false;
  for (;;) {
    int byte = std::fgetc(in);
    if (byte == EOF) return;
    if (byte != 0xFF) {
      if (in_scan) continue;  // entropy-coded data
      refuse("a marker was expected");
    }
    do byte = std::fgetc(in);
    while (byte == 0xFF);  // fill bytes
    if (byte == EOF) return;
    if (byte == 0x00 || (byte >= 0xD0 && byte <= 0xD7) || byte == 0x01) continue;  // in data
    if (byte == 0xD9) return;  // end of image
    const int high = std::fgetc(in), low = std::fgetc(in);
    if (high == EOF || low == EOF) return;
    const long length = (high << 8 | low) - 2;
    if (length < 0) refuse("a segment shorter than its length field");
    if (byte == 0xC4) {  // DHT: tables of a class and id, 16 counts, then the symbols
      long left = length;
      while (left > 0) {
        if (std::fgetc(in) == EOF) return;
        int symbols = 0;
        for (int i = 0; i < 16; ++i) {
          const int count = std::fgetc(in);
          if (count == EOF) return;
          symbols += count;
        }
        if (symbols > 256) refuse("a Huffman table of " + std::to_string(symbols) + " symbols");
        if (std::fseek(in, symbols, SEEK_CUR) != 0) return;
        left -= 17 + symbols;
      }
      if (left < 0) refuse("a DHT segment longer than its length field");
      in_scan = false;
      continue;
    }
    if (std::fseek(in, length, SEEK_CUR) != 0) return;
    in_scan = byte == 0xDA;  // start of scan: entropy-coded data follows its header
  }
}

std::vector<float> read_image_input(const std::string& path, const ModelMeta& meta) {
  check_jpeg_huffman_tables(path);
  // The header first: a small compressed file can declare an image of many
  // gigabytes, so its size is checked before anything is decoded.
  int width = 0, height = 0, stored_channels = 0;
  if (!stbi_info(path.c_str(), &width, &height, &stored_channels))
    throw Error("cannot decode image '" + printable(path) + "': " + stbi_failure_reason());
  if (static_cast<int64_t>(width) * height > kMaxImagePixels)
    throw Error("image '" + printable(path) + "' is " + std::to_string(width) + "x" +
                std::to_string(height) + " pixels, more than splitinfer decodes (" +
                std::to_string(kMaxImagePixels) + " pixels)");
  // stb_image converts to the model's channel count: gray to RGB by copying,
  // RGB to gray by luma.
  const int channels = static_cast<int>(meta.input_shape.c);
  std::unique_ptr<unsigned char, void (*)(void*)> pixels(
      stbi_load(path.c_str(), &width, &height, &stored_channels, channels), stbi_image_free);
  if (!pixels)
    throw Error("cannot decode image '" + printable(path) + "': " + stbi_failure_reason());
  try {
    return image_to_input(pixels.get(), width, height, channels, meta);
  } catch (const Error& error) {
    throw Error("image '" + printable(path) + "': " + error.what());
  }
}

}  // namespace

std::vector<float> image_to_input(const uint8_t* pixels, int width, int height, int channels,
                                  const ModelMeta& meta) {
  const int model_channels = static_cast<int>(meta.input_shape.c);
  if (model_channels != 1 && model_channels != 3)
    throw Error("the model takes " + std::to_string(model_channels) +
                " input channels; images give 1 or 3");
  if (channels != model_channels && channels != 1)
    throw Error("a " + std::to_string(channels) + "-channel image cannot feed a model of " +
                std::to_string(model_channels) + " input channels");
  if (meta.resize != "bilinear")
    throw Error("the model's resize method '" + meta.resize + "' is not supported");
  if (width <= 0 || height <= 0)
    throw Error("an image of " + std::to_string(width) + "x" + std::to_string(height) +
                " pixels is empty");
  const int64_t count = static_cast<int64_t>(width) * height * channels;
  std::vector<float> linear(pixels, pixels + count);  // 0..255, interleaved HWC

  // Bilinear: stb's triangle filter upsamples as PyTorch's
  // F.interpolate(mode="bilinear", align_corners=False) does, edges clamped;
  // downsampling, it widens the triangle (antialiasing) where PyTorch samples.
  const int out_w = static_cast<int>(meta.input_shape.w),
            out_h = static_cast<int>(meta.input_shape.h);
  std::vector<float> resized(static_cast<size_t>(out_w) * out_h * channels);
  if (!stbir_resize_float_generic(linear.data(), width, height, 0, resized.data(), out_w, out_h, 0,
                                  channels, STBIR_ALPHA_CHANNEL_NONE, 0, STBIR_EDGE_CLAMP,
                                  STBIR_FILTER_TRIANGLE, STBIR_COLORSPACE_LINEAR, nullptr))
    throw Error("cannot resize a " + std::to_string(width) + "x" + std::to_string(height) +
                " image to " + std::to_string(out_w) + "x" + std::to_string(out_h));

  // HWC (interleaved) to CHW, in the model's channel order, normalised; a gray
  // image feeds every channel.
  std::vector<float> input(static_cast<size_t>(out_w) * out_h * model_channels);
  const int64_t plane = static_cast<int64_t>(out_w) * out_h;
  for (int c = 0; c < model_channels; ++c) {
    const int ordered = meta.channel_order == "bgr" ? model_channels - 1 - c : c;
    const int source = channels == 1 ? 0 : ordered;
    for (int64_t i = 0; i < plane; ++i)
      input[c * plane + i] = static_cast<float>(
          (resized[i * channels + source] * meta.pixel_scale - meta.mean[c]) / meta.std[c]);
  }
  return input;
}

std::vector<float> read_input(const std::string& path, const ModelMeta& meta) {
  // Only a regular file: a FIFO or a device (/dev/zero) would block or never end.
  std::error_code error;
  const std::filesystem::file_status status = std::filesystem::status(path, error);
  if (!std::filesystem::exists(status))
    throw Error("input file '" + printable(path) + "' does not exist");
  if (!std::filesystem::is_regular_file(status))
    throw Error("input '" + printable(path) + "' is not a regular file");
  const std::string extension = lowercase_extension(path);
  if (extension == ".h5" || extension == ".hdf5") return read_h5_input(path, meta);
  if (extension == ".png" || extension == ".jpg" || extension == ".jpeg")
    return read_image_input(path, meta);
  throw Error("input '" + printable(path) + "' is neither .h5 nor .png/.jpg");
}

}  // namespace splitinfer
