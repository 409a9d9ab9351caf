// Camera input (plan --input-pixels): the coordinator sends 8-bit pixels,
// which the model's first op (a quantize) normalises as it quantizes. The
// result must be the bits the float path gives: image_to_input() on the same
// pixels, then quantize_reference(). And the coordinator turns a float input
// back into its pixels, refusing floats that no pixel gives.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "coordinator.hpp"
#include "error.hpp"
#include "graph.hpp"
#include "input_file.hpp"
#include "model_builder.hpp"
#include "ops/quantized.hpp"

namespace splitinfer {
namespace {

// ImageNet's normalisation, 3 channels of 16x16: every value 0..255 in every
// channel (shifted per channel, so no two channels see the same pattern).
struct Camera {
  ModelMeta meta;
  std::vector<uint8_t> interleaved;  // HWC, as an image holds them
  std::vector<uint8_t> planar;       // CHW, as the coordinator sends them
  Camera() {
    meta.input_shape = testing::nchw(1, 3, 16, 16);
    meta.channel_order = "rgb";
    meta.mean = {0.485, 0.456, 0.406};
    meta.std = {0.229, 0.224, 0.225};
    interleaved.resize(3 * 256);
    planar.resize(3 * 256);
    for (int c = 0; c < 3; ++c)
      for (int i = 0; i < 256; ++i) {
        const auto value = static_cast<uint8_t>((i * 7 + c * 85) % 256);
        interleaved[i * 3 + c] = value;
        planar[c * 256 + i] = value;
      }
  }
};

TEST(PixelInput, QuantizingPixelsEqualsNormalisingThenQuantizing) {
  const Camera camera;
  std::vector<float> floats = image_to_input(camera.interleaved.data(), 16, 16, 3, camera.meta);
  for (const auto& [scale, zero_point] :
       {std::pair{0.0187f, 114}, std::pair{0.5f, 0}, std::pair{0.008f, 255}}) {
    SCOPED_TRACE("scale " + std::to_string(scale) + ", zero point " + std::to_string(zero_point));
    QuantizedLayer layer;
    layer.out = QuantParams{scale, zero_point};
    std::vector<uint8_t> expected(floats.size()), got(floats.size());
    Tensor in{testing::nchw(1, 3, 16, 16), DType::f32, floats.data()};
    Tensor out{testing::nchw(1, 3, 16, 16), DType::u8, expected.data()};
    quantize_reference(layer, in, out);
    std::vector<uint8_t> pixels = camera.planar;
    Tensor pixel_tile{testing::nchw(1, 3, 16, 16), DType::u8, pixels.data()};
    Tensor got_out{testing::nchw(1, 3, 16, 16), DType::u8, got.data()};
    quantize_pixels(layer, camera.meta, 0, pixel_tile, got_out);
    EXPECT_EQ(got, expected);
    // A tile of channels 1..2 (a part): each channel keeps its own mean and std.
    Tensor tail{testing::nchw(1, 2, 16, 16), DType::u8, pixels.data() + 256};
    std::vector<uint8_t> got_tail(2 * 256);
    Tensor tail_out{testing::nchw(1, 2, 16, 16), DType::u8, got_tail.data()};
    quantize_pixels(layer, camera.meta, 1, tail, tail_out);
    EXPECT_EQ(got_tail, std::vector<uint8_t>(expected.begin() + 256, expected.end()));
    // In place, as a stream's part may be.
    quantize_pixels(layer, camera.meta, 0, pixel_tile, pixel_tile);
    EXPECT_EQ(pixels, expected);
  }
}

Model pixel_model(const ModelMeta& meta) {
  testing::ModelBuilder b(meta.input_shape);
  b.conv("conv", "input", 4, testing::conv_params(3, 1, 1));
  Model model = b.finish("conv");
  model.meta = meta;
  return model;
}

TEST(PixelInput, TheCoordinatorSendsThePixelsTheFloatsCameFrom) {
  const Camera camera;
  Model model = pixel_model(camera.meta);
  model.layers[0].dtype = DType::u8;  // as take_input_as_pixels() leaves it
  std::vector<float> floats = image_to_input(camera.interleaved.data(), 16, 16, 3, camera.meta);
  Bytes pixels;
  const unsigned char* map = input_map(model, floats, pixels);
  EXPECT_EQ(std::vector<uint8_t>(map, map + floats.size()), camera.planar);
  // One float nudged by one ulp is no pixel's: refused, naming the element.
  floats[300] = std::nextafter(floats[300], 10.0f);
  try {
    input_map(model, floats, pixels);
    ADD_FAILURE() << "a float no pixel gives was sent";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("input element 300 (channel 1)"), std::string::npos)
        << error.what();
    EXPECT_NE(std::string(error.what()).find("16x16 pixels"), std::string::npos) << error.what();
  }
  // A float32 input layer: the floats go as they are.
  model.layers[0].dtype = DType::f32;
  EXPECT_EQ(input_map(model, floats, pixels),
            reinterpret_cast<const unsigned char*>(floats.data()));
}

TEST(PixelInput, OnlyAModelThatQuantizesItsInputFirstTakesPixels) {
  const Camera camera;
  Model model = pixel_model(camera.meta);
  try {
    take_input_as_pixels(model);
    ADD_FAILURE() << "a float32 model took pixels";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("layer 'conv' (conv2d)"), std::string::npos)
        << error.what();
  }
  EXPECT_EQ(model.layers[0].dtype, DType::f32);
  // Its first op a quantize: the input layer becomes 8-bit.
  model.layers[1].op = Op::quantize;
  model.layers[1].dtype = DType::u8;
  take_input_as_pixels(model);
  EXPECT_EQ(model.layers[0].dtype, DType::u8);
  // Without a mean and std per channel there is no normalisation to apply.
  Model bare = pixel_model(camera.meta);
  bare.layers[1].op = Op::quantize;
  bare.meta.std.pop_back();
  EXPECT_THROW(take_input_as_pixels(bare), Error);
}

}  // namespace
}  // namespace splitinfer
