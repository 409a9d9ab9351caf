#pragma once
// A model: named layers in topological order, each an op with its inputs,
// attributes and weights (see io/FORMAT.md). Validation happens once, here,
// at load time, so kernels never meet a bad shape.
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "op_table.hpp"
#include "ops/conv2d.hpp"
#include "ops/pool.hpp"
#include "ops/resize.hpp"
#include "region.hpp"
#include "shape.hpp"

namespace splitinfer {

// A weight tensor as the flash image holds it: float32 values, or the bytes
// of another dtype (int8 weights, int32 biases, float16 weights).
struct Blob {
  std::vector<int64_t> dims;
  DType dtype = DType::f32;
  std::vector<float> values;  // f32
  std::vector<uint8_t> raw;   // any other dtype, native byte order

  size_t elements() const {
    return dtype == DType::f32 ? values.size() : raw.size() / dtype_bytes(dtype);
  }
  size_t bytes() const { return dtype == DType::f32 ? values.size() * sizeof(float) : raw.size(); }
  const void* data() const {
    return dtype == DType::f32 ? static_cast<const void*>(values.data()) : raw.data();
  }
  // Bytes this blob takes in RAM once streamed from flash (float16 widens to float32).
  size_t ram_bytes() const { return dtype == DType::f16 ? elements() * sizeof(float) : bytes(); }
};

// A quint8 tensor's parameters: real = scale * (q - zero_point).
struct QuantParams {
  float scale = 1.0f;
  int32_t zero_point = 0;
  bool operator==(const QuantParams& other) const {
    return scale == other.scale && zero_point == other.zero_point;
  }
};

// How int8 accumulators are scaled back to uint8 (models/quantization.md):
// `pytorch` as PyTorch's qnnpack does it in float32, bit for bit; `cmsis`
// integer only, with a fixed-point multiplier and shift (TFLite Micro, CMSIS-NN).
enum class Requantization { pytorch, cmsis };
const char* requantization_name(Requantization mode);
Requantization requantization_from_name(const std::string& name);  // throws Error

struct Layer {
  std::string name;
  Op op = Op::input;
  std::vector<std::string> input_names;
  std::vector<int> inputs;  // indices of earlier layers, resolved from input_names
  Shape output_shape;

  Conv2dParams conv;                        // conv2d
  PoolParams pool;                          // maxpool, avgpool
  float negative_slope = 0.01f;             // leaky_relu
  double eps = 1e-5;                        // batchnorm
  int64_t shuffle_groups = 1;               // channel_shuffle
  int64_t slice_start = 0, slice_stop = 0;  // slice: channels [start, stop)
  int64_t scale_h = 1, scale_w = 1;         // upsample_nearest
  ResizeTaps resize_h, resize_w;            // resize: rows, columns

  DType dtype = DType::f32;              // of the output: f32 or u8
  QuantParams quant;                     // u8 outputs
  int32_t clamp_lo = 0, clamp_hi = 255;  // u8 outputs: clamped to [lo, hi] after requantization

  std::map<std::string, Blob> weights;  // names per op, see io/FORMAT.md

  const Blob* weight(const std::string& blob_name) const;
  uint64_t weight_bytes() const;      // in flash
  uint64_t weight_ram_bytes() const;  // streamed into RAM
  bool quantized() const { return dtype == DType::u8; }
};

struct ModelMeta {
  Shape input_shape;
  std::string channel_order = "rgb";  // rgb | bgr | gray
  double pixel_scale = 1.0 / 255.0;
  std::vector<double> mean, std;
  std::string resize = "bilinear";
  std::vector<std::string> class_names;
  std::optional<double> test_accuracy;
  std::string dataset;
};

struct Model {
  std::string name, source;
  std::vector<Layer> layers;
  int output = -1;  // index of the output layer
  ModelMeta meta;
  Requantization requantization = Requantization::pytorch;

  int find(const std::string& layer_name) const;  // -1 when absent
  uint64_t weight_bytes() const;
};

// Resolves input names, infers every layer's output shape and checks it
// against the stored one, checks attributes; with `check_weights`, checks that
// every weight the op needs is there with the right shape and finite values.
// Throws Error naming the layer.
void validate(Model& model, bool check_weights);

// Camera input (plan --input-pixels): the model's input arrives as 8-bit
// pixels in CHW order at the input size, the values the model's meta
// (pixel_scale, mean, std) normalises; the one layer reading it, a quantize
// (an int8 model's first op), normalises each pixel as it quantizes, so no
// float32 map of the input ever exists. Makes the input layer's dtype u8;
// throws Error when the input is read by anything else.
void take_input_as_pixels(Model& model);

// The pixel `value` of channel `channel` as the model's input float, computed
// as image_to_input() computes it (so both give the same bits).
inline float normalised_pixel(const ModelMeta& meta, int64_t channel, double value) {
  return static_cast<float>((value * meta.pixel_scale - meta.mean[channel]) / meta.std[channel]);
}

// Checks a node's weight slices: for each layer, the weights of the output
// channels of its region (none for an empty region), right shapes, finite.
void validate_weight_slices(const Model& model, const std::vector<Region>& regions);

}  // namespace splitinfer
