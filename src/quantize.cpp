#include "quantize.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "arena.hpp"
#include "error.hpp"
#include "executor.hpp"
#include "input_exchange.hpp"
#include "region.hpp"

namespace splitinfer {
namespace {

// torch.finfo(torch.float32).eps: the observers' smallest scale.
constexpr float kEps = 0x1p-23f;

std::string where(const Layer& layer) {
  return "layer '" + layer.name + "' (" + op_name(layer.op) + ")";
}

// A weight blob's values as float32 (float16 widened).
std::vector<float> float_values(const Blob& blob) {
  if (blob.dtype == DType::f32) return blob.values;
  std::vector<float> values(blob.elements());
  const auto* halves = reinterpret_cast<const _Float16*>(blob.raw.data());
  for (size_t i = 0; i < values.size(); ++i) values[i] = static_cast<float>(halves[i]);
  return values;
}

// Ops whose quint8 output takes its own observed parameters (PyTorch places
// an observer after each). The others keep their input's, or fixed ones
// (hardsigmoid), as PyTorch's quantized ops do.
bool observed_op(Op op) {
  switch (op) {
    case Op::conv2d:
    case Op::linear:
    case Op::add:
    case Op::mul:
    case Op::concat:
    case Op::hardswish:
      return true;
    case Op::input:
    case Op::batchnorm:
    case Op::relu:
    case Op::relu6:
    case Op::leaky_relu:
    case Op::sigmoid:
    case Op::silu:
    case Op::hardsigmoid:
    case Op::channel_shuffle:
    case Op::slice:
    case Op::maxpool:
    case Op::avgpool:
    case Op::global_avgpool:
    case Op::flatten:
    case Op::upsample_nearest:
    case Op::resize:
    case Op::quantize:
    case Op::dequantize:
      return false;
  }
  return false;
}

bool fusable_op(Op op) { return op == Op::conv2d || op == Op::linear || op == Op::add; }

// The largest quint8 value of relu6's range: q(6) (3.1), at most 255.
int32_t relu6_high(const QuantParams& quant) {
  return static_cast<int32_t>(quantize_value(6.0f, quant.scale, quant.zero_point, 0, 255));
}

// int8 weights with their scale(s) and zero point(s), and the int32 bias,
// of a conv2d or linear layer whose input has scale `input_scale`.
void quantize_weights(const Layer& source, Layer& layer, float input_scale, bool per_tensor) {
  const Blob& float_weight = *source.weight("weight");
  const std::vector<float> weight = float_values(float_weight);
  const int64_t channels = float_weight.dims[0];
  const size_t per_channel = weight.size() / static_cast<size_t>(channels);

  std::vector<float> scales;
  if (per_tensor) {
    scales.push_back(symmetric_weight_scale(weight.data(), weight.size()));
  } else {
    for (int64_t c = 0; c < channels; ++c)
      scales.push_back(symmetric_weight_scale(weight.data() + c * per_channel, per_channel));
  }
  const auto scale_of = [&](int64_t channel) { return scales[per_tensor ? 0 : channel]; };

  Blob int8_weight;
  int8_weight.dims = float_weight.dims;
  int8_weight.dtype = DType::i8;
  int8_weight.raw.resize(weight.size());
  for (int64_t c = 0; c < channels; ++c)
    for (size_t k = 0; k < per_channel; ++k) {
      const size_t index = c * per_channel + k;
      const auto q = static_cast<int8_t>(quantize_value(weight[index], scale_of(c), 0, -128, 127));
      std::memcpy(&int8_weight.raw[index], &q, 1);
    }
  layer.weights["weight"] = std::move(int8_weight);

  const auto count = static_cast<int64_t>(scales.size());
  Blob scale_blob;
  scale_blob.dims = {count};
  scale_blob.values = scales;
  layer.weights["weight_scale"] = std::move(scale_blob);
  Blob zero_points;
  zero_points.dims = {count};
  zero_points.dtype = DType::i32;
  zero_points.raw.assign(scales.size() * sizeof(int32_t), 0);
  layer.weights["weight_zero_point"] = std::move(zero_points);

  if (const Blob* float_bias = source.weight("bias")) {
    const std::vector<float> bias = float_values(*float_bias);
    Blob int32_bias;
    int32_bias.dims = float_bias->dims;
    int32_bias.dtype = DType::i32;
    int32_bias.raw.resize(bias.size() * sizeof(int32_t));
    for (int64_t c = 0; c < channels; ++c) {
      // 3.2: the product rounded once to float32, then quantize with zero point 0.
      const float bias_scale = scale_of(c) * input_scale;
      const auto q = static_cast<int32_t>(quantize_value(bias[c], bias_scale, 0,
                                                         std::numeric_limits<int32_t>::min(),
                                                         std::numeric_limits<int32_t>::max()));
      std::memcpy(&int32_bias.raw[c * sizeof(int32_t)], &q, sizeof q);
    }
    layer.weights["bias"] = std::move(int32_bias);
  }
}

std::string unique_name(const Model& model, const std::string& base) {
  std::string name = base;
  for (int suffix = 1; model.find(name) >= 0; ++suffix) name = base + "_" + std::to_string(suffix);
  return name;
}

}  // namespace

bool MinMaxRange::observe(const float* values, size_t count) {
  float low = min, high = max;
  for (size_t i = 0; i < count; ++i) {
    if (!std::isfinite(values[i])) return false;
    low = std::min(low, values[i]);
    high = std::max(high, values[i]);
  }
  min = low;
  max = high;
  return true;
}

QuantParams activation_qparams(const MinMaxRange& range) {
  // torch/ao/quantization/observer.py, _calculate_qparams, quint8 affine,
  // quant_min 0, quant_max 255, every operation on float32 tensors.
  const float min_neg = std::min(range.min, 0.0f);
  const float max_pos = std::max(range.max, 0.0f);
  float scale = (max_pos - min_neg) / 255.0f;
  scale = std::max(scale, kEps);
  const float zero_point = 0.0f - std::nearbyint(min_neg / scale);
  QuantParams quant;
  quant.scale = scale;
  quant.zero_point = static_cast<int32_t>(std::clamp(zero_point, 0.0f, 255.0f));
  return quant;
}

float symmetric_weight_scale(const float* values, size_t count) {
  float min_neg = 0.0f, max_pos = 0.0f;
  for (size_t i = 0; i < count; ++i) {
    min_neg = std::min(min_neg, values[i]);
    max_pos = std::max(max_pos, values[i]);
  }
  // (quant_max - quant_min) / 2 = 255 / 2 for qint8.
  const float largest = std::max(-min_neg, max_pos);
  return std::max(largest / 127.5f, kEps);
}

int64_t quantize_value(float value, float scale, int64_t zero_point, int64_t lo, int64_t hi) {
  const float inverse = 1.0f / scale;
  const float rounded = std::nearbyint(value * inverse);  // one float32 multiply, then RNE
  // In double, so that a float32 far outside int64's range still clamps.
  const double q = static_cast<double>(zero_point) + static_cast<double>(rounded);
  return static_cast<int64_t>(std::clamp(q, static_cast<double>(lo), static_cast<double>(hi)));
}

void check_quantizable(const Model& model) {
  for (const Layer& layer : model.layers) {
    if (layer.quantized() || layer.op == Op::quantize || layer.op == Op::dequantize)
      throw Error("the model is already quantized (" + where(layer) +
                  "); quantize takes a float32 model");
    if (layer.op == Op::batchnorm)
      throw Error(where(layer) +
                  ": quantize needs BatchNorm folded into the convolution before it; export "
                  "the model with BN folded (export_torch.py without --no-fold-bn)");
    if (layer.op != Op::input && !op_traits(layer.op).int8_kernel)
      throw Error(where(layer) + " has no quint8 form; splitinfer cannot quantize this model");
  }
}

std::vector<MinMaxRange> calibrate(const Model& model, const NodeProgram& program,
                                   const std::vector<float>& inputs) {
  const Shape& input_shape = model.layers[0].output_shape;
  const auto elements = static_cast<size_t>(input_shape.elements());
  if (elements == 0 || inputs.empty() || inputs.size() % elements != 0)
    throw Error("internal: calibration inputs are not whole inputs");
  const size_t count = inputs.size() / elements;

  std::vector<MinMaxRange> ranges(model.layers.size());
  const Executor executor(model, program, "calibration node");
  Arena arena;
  InputExchange exchange(input_shape);
  for (size_t k = 0; k < count; ++k) {
    const float* input = inputs.data() + k * elements;
    if (!ranges[0].observe(input, elements))
      throw Error("calibration input " + std::to_string(k) + " holds a non-finite value");
    exchange.set_input(input);
    executor.run(
        arena, exchange,
        [&](int index, const Tensor& out) {
          if (!ranges[index].observe(out.f32(), static_cast<size_t>(out.shape.elements())))
            throw Error("calibration input " + std::to_string(k) + ": " +
                        where(model.layers[index]) + " gives a non-finite value");
        },
        [](const Tensor&) {});
  }
  for (size_t i = 0; i < ranges.size(); ++i)
    if (!ranges[i].observed())
      throw Error("internal: calibration did not see " + where(model.layers[i]));
  return ranges;
}

Model quantize_model(const Model& model, const std::vector<MinMaxRange>& ranges,
                     const QuantizeSettings& settings) {
  check_quantizable(model);
  const size_t count = model.layers.size();
  if (ranges.size() != count) throw Error("internal: one calibration range per layer needed");

  // Fusion: a relu/relu6 whose input is a conv2d, linear or add read by
  // nothing else (and not the model's output) becomes that layer's clamp.
  std::vector<int> readers(count, 0);
  for (const Layer& layer : model.layers)
    for (int input : layer.inputs) ++readers[input];
  std::vector<int> fused_activation(count, -1);  // producer -> its fused relu/relu6
  std::vector<bool> removed(count, false);
  for (size_t i = 1; i < count; ++i) {
    const Layer& layer = model.layers[i];
    if (layer.op != Op::relu && layer.op != Op::relu6) continue;
    const int producer = layer.inputs[0];
    if (fusable_op(model.layers[producer].op) && readers[producer] == 1 &&
        producer != model.output) {
      fused_activation[producer] = static_cast<int>(i);
      removed[i] = true;
    }
  }

  Model out;
  out.name = model.name + "_int8";
  out.source = model.source + (settings.note.empty() ? "" : "; " + settings.note);
  out.meta = model.meta;
  out.meta.test_accuracy.reset();  // measured on the float model, not this one
  out.requantization = settings.requantization;

  // What readers of each float layer read in the quantized model.
  std::vector<std::string> renamed(count);
  Layer input = model.layers[0];
  out.layers.push_back(input);
  Layer quantize;
  quantize.name = unique_name(model, "quantize");
  quantize.op = Op::quantize;
  quantize.input_names = {input.name};
  quantize.output_shape = input.output_shape;
  quantize.dtype = DType::u8;
  quantize.quant = activation_qparams(ranges[0]);
  out.layers.push_back(quantize);
  renamed[0] = quantize.name;

  for (size_t i = 1; i < count; ++i) {
    const Layer& source = model.layers[i];
    if (removed[i]) {
      renamed[i] = renamed[source.inputs[0]];
      continue;
    }
    Layer layer = source;
    layer.weights.clear();
    layer.inputs.clear();
    for (std::string& name : layer.input_names) name = renamed[model.find(name)];
    layer.dtype = DType::u8;
    const Layer& first_input = out.layers[out.find(layer.input_names[0])];
    const QuantParams& in = first_input.quant;
    if (observed_op(layer.op)) {
      const int activation = fused_activation[i];
      layer.quant = activation_qparams(ranges[activation >= 0 ? activation : i]);
      if (activation >= 0) {
        layer.clamp_lo = layer.quant.zero_point;
        layer.clamp_hi = model.layers[activation].op == Op::relu6 ? relu6_high(layer.quant) : 255;
      }
    } else if (layer.op == Op::hardsigmoid) {
      layer.quant = QuantParams{1.0f / 256.0f, 0};  // fixed by PyTorch
    } else {
      // Pass-through ops (pools, views, unfused activations) keep their
      // input's parameters, as PyTorch's quantized ops do.
      layer.quant = in;
      if (layer.op == Op::relu) layer.clamp_lo = in.zero_point;
      if (layer.op == Op::relu6) {
        layer.clamp_lo = in.zero_point;
        layer.clamp_hi = relu6_high(in);
      }
    }
    if (layer.op == Op::conv2d || layer.op == Op::linear)
      quantize_weights(source, layer, in.scale, settings.per_tensor_weights);
    renamed[i] = layer.name;
    out.layers.push_back(std::move(layer));
  }
  out.output = out.find(renamed[model.output]);
  validate(out, true);
  return out;
}

Model float16_weights(const Model& model) {
  Model out = model;
  for (const Layer& layer : model.layers)
    if (layer.quantized() || layer.op == Op::quantize || layer.op == Op::dequantize)
      throw Error("the model is already quantized (" + where(layer) +
                  "); --weights fp16 takes a float32 model");
  out.name = model.name + "_fp16";
  out.source = model.source + "; splitinfer quantize --weights fp16";
  for (Layer& layer : out.layers) {
    if (layer.op != Op::conv2d && layer.op != Op::linear) continue;
    for (auto& [blob_name, blob] : layer.weights) {
      if (blob.dtype != DType::f32) continue;
      Blob half;
      half.dims = blob.dims;
      half.dtype = DType::f16;
      half.raw.resize(blob.values.size() * sizeof(_Float16));
      auto* halves = reinterpret_cast<_Float16*>(half.raw.data());
      for (size_t k = 0; k < blob.values.size(); ++k) {
        halves[k] = static_cast<_Float16>(blob.values[k]);  // round to nearest even
        if (!std::isfinite(static_cast<float>(halves[k])))
          throw Error(where(layer) + ": weight '" + blob_name + "' value " +
                      std::to_string(blob.values[k]) + " is outside float16's range");
      }
      blob = std::move(half);
    }
  }
  validate(out, true);
  return out;
}

}  // namespace splitinfer
