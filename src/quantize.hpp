#pragma once
// Post-training quantization of a float model (`splitinfer quantize`):
// calibration with MinMax observers, the quint8 graph with int8 weights and
// int32 biases, computed as PyTorch 1.13.1's observers and quantize functions
// compute them (models/quantization.md 1, 3.1, 3.2); and float16 weight
// storage. Nothing here reads or writes files.
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "graph.hpp"
#include "node_program.hpp"

namespace splitinfer {

// The running minimum and maximum of a tensor over all calibration inputs, as
// torch.ao.quantization.MinMaxObserver keeps them (float32).
struct MinMaxRange {
  float min = std::numeric_limits<float>::infinity();
  float max = -std::numeric_limits<float>::infinity();

  bool observed() const { return min <= max; }
  // Widens the range to `count` values; false (range unchanged) when one of
  // them is NaN or infinite.
  bool observe(const float* values, size_t count);
};

// quint8 per-tensor affine parameters of a range, as
// MinMaxObserver(dtype=quint8, qscheme=per_tensor_affine) computes them:
// scale = max((max(x, 0) - min(x, 0)) / 255, 2^-23), zero point
// clamp(-rne(min(x, 0) / scale), 0, 255), all in float32.
QuantParams activation_qparams(const MinMaxRange& range);

// The qint8 symmetric scale of `count` weights (zero point 0), as
// MinMaxObserver(dtype=qint8, qscheme=per_tensor_symmetric) computes it:
// max(max|w| / 127.5, 2^-23) in float32.
float symmetric_weight_scale(const float* values, size_t count);

// quantize (models/quantization.md 3.1): clamp(zero_point + rne(value * f32(1/scale)), lo, hi).
int64_t quantize_value(float value, float scale, int64_t zero_point, int64_t lo, int64_t hi);

// Throws Error naming the first layer `quantize_model` cannot turn into a
// quint8 layer (batchnorm: fold it at export; ops with no quint8 form;
// layers already quantized).
void check_quantizable(const Model& model);

// Runs the float `model` once per calibration input (a batch of one each, in
// order) through `program`, a one-node program whose regions are the whole
// maps, and returns the range of every layer's output, indexed by layer (the
// input layer's is the inputs' own). `inputs` holds the inputs one after
// another, each input_shape.elements() floats. Throws Error when a layer gives
// a non-finite value.
std::vector<MinMaxRange> calibrate(const Model& model, const NodeProgram& program,
                                   const std::vector<float>& inputs);

struct QuantizeSettings {
  // false: one scale per output channel (PerChannelMinMaxObserver(ch_axis=0,
  // qint8, per_channel_symmetric)); true: one per layer.
  bool per_tensor_weights = false;
  Requantization requantization = Requantization::pytorch;
  std::string note;  // how it was calibrated, appended to the model's source
};

// The quint8 model of a float model from its calibration ranges (one per
// layer, from `calibrate`):
// - the input layer stays float32 and a `quantize` layer follows it;
// - a relu or relu6 that is the only reader of a conv2d, linear or add is
//   fused into it (the layer takes the activation's range and a clamp
//   [zero point, 255], or up to q(6) for relu6) and removed;
// - conv2d, linear, add, mul, concat and hardswish get their own range's
//   parameters; hardsigmoid the fixed 1/256, 0; every other op its input's;
// - conv2d and linear weights become symmetric int8, biases int32 with scale
//   f32(weight scale * input scale).
// The result is validated; throws Error naming the layer on any fault.
Model quantize_model(const Model& model, const std::vector<MinMaxRange>& ranges,
                     const QuantizeSettings& settings);

// The same model with every float32 weight and bias of conv2d and linear
// layers stored as float16 (round to nearest even). Throws Error when a value
// is outside float16's range.
Model float16_weights(const Model& model);

}  // namespace splitinfer
