// image_to_input: 8-bit images to the model's normalised NCHW input, checked
// against values this test computes itself; and --input x.png giving the
// same floats as image_to_input on the PNG's pixels.
#include "input_file.hpp"

#include <gtest/gtest.h>
#include <stb_image_write.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "error.hpp"

namespace splitinfer {
namespace {

ModelMeta meta_for(int64_t channels, int64_t height, int64_t width, std::string channel_order,
                   std::vector<double> mean, std::vector<double> std) {
  ModelMeta meta;
  meta.input_shape = Shape{1, channels, height, width, 4};
  meta.channel_order = std::move(channel_order);
  meta.pixel_scale = 1.0 / 255.0;
  meta.mean = std::move(mean);
  meta.std = std::move(std);
  return meta;
}

// PyTorch's F.interpolate(mode="bilinear", align_corners=False) at output
// (out_y, out_x) of one channel: source coordinate (out + 0.5) * in / out -
// 0.5, clamped at 0, between the two nearest pixels (the last one repeated).
double bilinear(const std::vector<double>& plane, int in_w, int in_h, int out_w, int out_h,
                int out_x, int out_y) {
  const auto source = [](int out, int in_extent, int out_extent, int& low, int& high) {
    const double real = std::max((out + 0.5) * in_extent / out_extent - 0.5, 0.0);
    low = static_cast<int>(real);
    high = std::min(low + 1, in_extent - 1);
    return real - low;
  };
  int x0, x1, y0, y1;
  const double fx = source(out_x, in_w, out_w, x0, x1);
  const double fy = source(out_y, in_h, out_h, y0, y1);
  const auto at = [&](int y, int x) { return plane[static_cast<size_t>(y) * in_w + x]; };
  return (1 - fy) * ((1 - fx) * at(y0, x0) + fx * at(y0, x1)) +
         fy * ((1 - fx) * at(y1, x0) + fx * at(y1, x1));
}

TEST(ImageToInput, GrayAtTheModelsSizeIsOnlyNormalised) {
  const std::vector<uint8_t> pixels{0, 17, 128, 255, 3, 64, 200, 99, 1, 2, 250, 180};  // 4x3
  const ModelMeta meta = meta_for(1, 3, 4, "gray", {0.5}, {0.25});
  const std::vector<float> input = image_to_input(pixels.data(), 4, 3, 1, meta);
  ASSERT_EQ(input.size(), 12u);
  // A triangle filter at scale 1 weighs the pixel itself by 1, its
  // neighbours by 0: the values are exact.
  for (size_t i = 0; i < pixels.size(); ++i)
    EXPECT_EQ(input[i], static_cast<float>((pixels[i] / 255.0 - 0.5) / 0.25)) << "pixel " << i;
}

TEST(ImageToInput, GrayUpsampledIsBilinear) {
  // 3x2 to 7x5: a non-integer scale, as 28x28 Fashion-MNIST to a 96x96 model.
  const std::vector<uint8_t> pixels{10, 200, 30, 255, 0, 90};
  const std::vector<double> plane(pixels.begin(), pixels.end());
  const ModelMeta meta = meta_for(1, 5, 7, "gray", {0.2860}, {0.3530});
  const std::vector<float> input = image_to_input(pixels.data(), 3, 2, 1, meta);
  ASSERT_EQ(input.size(), 35u);
  for (int y = 0; y < 5; ++y) {
    for (int x = 0; x < 7; ++x) {
      const double expected = (bilinear(plane, 3, 2, 7, 5, x, y) / 255.0 - 0.2860) / 0.3530;
      // float32 resampling of values up to 255: 1e-4 in normalised units
      // (~1e-5 of a pixel level) is far above its rounding, far below a bug.
      EXPECT_NEAR(input[y * 7 + x], expected, 1e-4) << "y " << y << " x " << x;
    }
  }
}

TEST(ImageToInput, DownsampledConstantStaysConstant) {
  const std::vector<uint8_t> pixels(9 * 7, 51);
  const ModelMeta meta = meta_for(1, 3, 4, "gray", {0.0}, {1.0});
  const std::vector<float> input = image_to_input(pixels.data(), 9, 7, 1, meta);
  ASSERT_EQ(input.size(), 12u);
  for (float value : input) EXPECT_NEAR(value, 0.2, 1e-6);  // 51 / 255
}

TEST(ImageToInput, RgbInBgrOrderWithPerChannelNormalisation) {
  // 2x1 RGB pixels (10, 20, 30), (40, 50, 60), interleaved.
  const std::vector<uint8_t> pixels{10, 20, 30, 40, 50, 60};
  const std::vector<double> mean{0.1, 0.2, 0.3}, std{0.5, 0.25, 2.0};
  const ModelMeta meta = meta_for(3, 1, 2, "bgr", mean, std);
  const std::vector<float> input = image_to_input(pixels.data(), 2, 1, 3, meta);
  ASSERT_EQ(input.size(), 6u);
  // Model channel c takes image channel 2 - c (blue first), its own mean/std.
  const uint8_t expected_source[3][2] = {{30, 60}, {20, 50}, {10, 40}};
  for (int c = 0; c < 3; ++c)
    for (int x = 0; x < 2; ++x)
      EXPECT_FLOAT_EQ(input[c * 2 + x],
                      static_cast<float>((expected_source[c][x] / 255.0 - mean[c]) / std[c]))
          << "channel " << c << " x " << x;
}

TEST(ImageToInput, GrayImageFeedsEveryChannelOfAnRgbModel) {
  const std::vector<uint8_t> pixels{0, 100, 200, 255};  // 2x2
  const std::vector<double> mean{0.485, 0.456, 0.406}, std{0.229, 0.224, 0.225};
  const ModelMeta meta = meta_for(3, 2, 2, "rgb", mean, std);
  const std::vector<float> input = image_to_input(pixels.data(), 2, 2, 1, meta);
  ASSERT_EQ(input.size(), 12u);
  for (int c = 0; c < 3; ++c)
    for (int i = 0; i < 4; ++i)
      EXPECT_FLOAT_EQ(input[c * 4 + i], static_cast<float>((pixels[i] / 255.0 - mean[c]) / std[c]))
          << "channel " << c << " pixel " << i;
}

TEST(ImageToInput, RejectsWhatItCannotConvert) {
  const std::vector<uint8_t> pixels(4 * 4 * 3, 0);
  ModelMeta gray = meta_for(1, 2, 2, "gray", {0.0}, {1.0});
  EXPECT_THROW(image_to_input(pixels.data(), 2, 2, 3, gray), Error);  // RGB into a gray model
  EXPECT_THROW(image_to_input(pixels.data(), 2, 2, 2, gray), Error);
  EXPECT_THROW(image_to_input(pixels.data(), 0, 2, 1, gray), Error);
  ModelMeta four_channels = meta_for(4, 2, 2, "rgb", {0, 0, 0, 0}, {1, 1, 1, 1});
  EXPECT_THROW(image_to_input(pixels.data(), 2, 2, 1, four_channels), Error);
  gray.resize = "nearest";
  EXPECT_THROW(image_to_input(pixels.data(), 2, 2, 1, gray), Error);
}

TEST(ImageToInput, PngInputIsTheSameConversion) {
  const std::string path =
      (std::filesystem::path(::testing::TempDir()) / "splitinfer_input_file_test.png").string();
  std::vector<uint8_t> pixels(5 * 3);
  for (size_t i = 0; i < pixels.size(); ++i) pixels[i] = static_cast<uint8_t>(i * 17);
  ASSERT_NE(stbi_write_png(path.c_str(), 5, 3, 1, pixels.data(), 5), 0);
  const ModelMeta meta = meta_for(1, 7, 9, "gray", {0.5}, {0.5});
  const std::vector<float> from_png = read_input(path, meta);
  std::filesystem::remove(path);
  EXPECT_EQ(from_png, image_to_input(pixels.data(), 5, 3, 1, meta));
}

}  // namespace
}  // namespace splitinfer
