// splitinfer quantize's core (src/quantize.hpp): the MinMax observer formulas
// against values PyTorch 1.13.1's observers printed, calibration ranges, the
// quint8 graph (fusion, pass-through and fixed parameters), int8 weights and
// int32 biases, and float16 weights. tests/torch/check_quantize.sh compares
// whole models with PyTorch's observers.
#include "quantize.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "error.hpp"
#include "model_builder.hpp"
#include "node_program_builder.hpp"
#include "strategies.hpp"

namespace splitinfer {
namespace {

using testing::conv_params;
using testing::ModelBuilder;
using testing::nchw;
using testing::pool_params;

MinMaxRange range(float low, float high) {
  MinMaxRange r;
  r.min = low;
  r.max = high;
  return r;
}

// MinMaxObserver(dtype=torch.quint8, qscheme=torch.per_tensor_affine) fed
// torch.tensor([low, high]), calculate_qparams(), printed with float.hex().
TEST(ActivationQParams, EqualPyTorchMinMaxObserver) {
  struct Case {
    float low, high, scale;
    int32_t zero_point;
  };
  const Case cases[] = {{-1.5f, 3.2f, 0x1.2dfac6p-6f, 81},    {0.0f, 6.0f, 0x1.818182p-6f, 0},
                        {-0.3f, 0.0f, 0x1.34679cp-10f, 255},  {0.0f, 0.0f, 0x1p-23f, 0},
                        {-7.77f, 1e-3f, 0x1.f34b5cp-6f, 255}, {0.1f, 0.7f, 0x1.67ce34p-9f, 0},
                        {-2.0f, -0.5f, 0x1.010102p-7f, 255}};
  for (const Case& c : cases) {
    const QuantParams q = activation_qparams(range(c.low, c.high));
    EXPECT_EQ(q.scale, c.scale) << c.low << ".." << c.high;
    EXPECT_EQ(q.zero_point, c.zero_point) << c.low << ".." << c.high;
  }
}

// MinMaxObserver(dtype=torch.qint8, qscheme=torch.per_tensor_symmetric) fed
// [-0.9, 0.25, 0.5]; all zeros give torch.finfo(float32).eps.
TEST(WeightScale, EqualsPyTorchSymmetricObserver) {
  const float weights[] = {-0.9f, 0.25f, 0.5f};
  EXPECT_EQ(symmetric_weight_scale(weights, 3), 0x1.ce9b68p-8f);
  const float zeros[] = {0.0f, 0.0f};
  EXPECT_EQ(symmetric_weight_scale(zeros, 2), 0x1p-23f);
}

// torch.quantize_per_tensor(..., 1.0, 0, torch.qint8): ties to even, clamped.
TEST(QuantizeValue, RoundsHalfToEvenAndClamps) {
  const float values[] = {0.5f, 1.5f, 2.5f, -0.5f, -2.5f, 1000.0f, -1000.0f};
  const int64_t expected[] = {0, 2, 2, 0, -2, 127, -128};
  for (size_t i = 0; i < std::size(values); ++i)
    EXPECT_EQ(quantize_value(values[i], 1.0f, 0, -128, 127), expected[i]) << values[i];
  // The zero point is added after rounding; the reciprocal is float32.
  EXPECT_EQ(quantize_value(0.3f, 0.1f, 100, 0, 255), 103);
  EXPECT_EQ(quantize_value(1e30f, 1e-3f, 0, std::numeric_limits<int32_t>::min(),
                           std::numeric_limits<int32_t>::max()),
            std::numeric_limits<int32_t>::max());
}

TEST(MinMaxRange, ObservesAndRefusesNonFinite) {
  MinMaxRange r;
  EXPECT_FALSE(r.observed());
  const float a[] = {1.0f, -2.0f, 3.0f};
  EXPECT_TRUE(r.observe(a, 3));
  const float b[] = {0.5f, std::numeric_limits<float>::quiet_NaN()};
  EXPECT_FALSE(r.observe(b, 2));
  EXPECT_EQ(r.min, -2.0f);
  EXPECT_EQ(r.max, 3.0f);
}

// input [1,1,2,2] -> conv 1x1 (y = 2x + 1) -> relu
Model affine_model() {
  ModelBuilder b(nchw(1, 1, 2, 2));
  b.conv("conv", "input", 1, conv_params(1, 1, 0));
  b.unary("relu", Op::relu, "conv");
  Model model = b.finish("relu");
  Layer& conv = model.layers[1];
  conv.weights["weight"].values = {2.0f};
  conv.weights["bias"].values = {1.0f};
  return model;
}

TEST(Calibrate, RangesOverEveryInputInOrder) {
  const Model model = affine_model();
  const NodeProgram program = build_node_program(model, spatial_regions(model, 1, 1), 1);
  const std::vector<float> inputs = {0.5f, -3.0f, 1.0f,  0.0f,   // input 0
                                     2.0f, 0.25f, -1.0f, 4.0f};  // input 1
  const std::vector<MinMaxRange> ranges = calibrate(model, program, inputs);
  ASSERT_EQ(ranges.size(), 3u);
  EXPECT_EQ(ranges[0].min, -3.0f);
  EXPECT_EQ(ranges[0].max, 4.0f);
  EXPECT_EQ(ranges[1].min, -5.0f);  // 2 * -3 + 1
  EXPECT_EQ(ranges[1].max, 9.0f);   // 2 * 4 + 1
  EXPECT_EQ(ranges[2].min, 0.0f);
  EXPECT_EQ(ranges[2].max, 9.0f);

  const std::vector<MinMaxRange> first =
      calibrate(model, program, std::vector<float>(inputs.begin(), inputs.begin() + 4));
  EXPECT_EQ(first[1].min, -5.0f);
  EXPECT_EQ(first[1].max, 3.0f);
}

TEST(Calibrate, RefusesNonFiniteActivations) {
  Model model = affine_model();
  model.layers[1].weights["weight"].values = {3e38f};  // 2 * 3e38 overflows
  const NodeProgram program = build_node_program(model, spatial_regions(model, 1, 1), 1);
  try {
    calibrate(model, program, {0.0f, 1.0f, 2.0f, 3.0f});
    FAIL() << "no error";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("layer 'conv' (conv2d) gives a non-finite value"),
              std::string::npos)
        << error.what();
  }
}

// Every rule of quantize_model on one graph:
// conv1 -> relu1 (fused) -> conv2 -> relu6_2 (fused) -> conv3 -> relu3 (not
// fused: conv3 has two readers) -> add1(conv3, relu3) -> add_relu (fused)
// -> maxpool -> gate (hardsigmoid) -> gap -> flatten -> fc -> fc_relu (the
// model's output, fused: the output becomes fc).
Model rules_model() {
  ModelBuilder b(nchw(1, 2, 6, 6));
  b.conv("conv1", "input", 4, conv_params(3, 1, 1));
  b.unary("relu1", Op::relu, "conv1");
  b.conv("conv2", "relu1", 4, conv_params(3, 1, 1));
  b.unary("relu6_2", Op::relu6, "conv2");
  b.conv("conv3", "relu6_2", 4, conv_params(1, 1, 0));
  b.unary("relu3", Op::relu, "conv3");
  b.binary("add1", Op::add, "conv3", "relu3");
  b.unary("add_relu", Op::relu, "add1");
  b.pool("maxpool", Op::maxpool, "add_relu", pool_params(2, 2, 0));
  b.unary("gate", Op::hardsigmoid, "maxpool");
  b.global_avgpool("gap", "gate");
  b.flatten("flatten", "gap");
  b.linear("fc", "flatten", 5);
  b.unary("fc_relu", Op::relu, "fc");
  return b.finish("fc_relu");
}

// Ranges as calibration would give them: activations' start at 0.
std::vector<MinMaxRange> rules_ranges(const Model& model) {
  std::vector<MinMaxRange> ranges;
  for (size_t i = 0; i < model.layers.size(); ++i) {
    const Op op = model.layers[i].op;
    const bool activation = op == Op::relu || op == Op::relu6 || op == Op::hardsigmoid;
    const float high = op == Op::relu6 ? 6.0f : 0.75f * static_cast<float>(i + 1);
    ranges.push_back(range(activation ? 0.0f : -0.5f * static_cast<float>(i + 1), high));
  }
  return ranges;
}

const Layer& layer_named(const Model& model, const std::string& name) {
  const int index = model.find(name);
  EXPECT_GE(index, 0) << name;
  return model.layers.at(std::max(index, 0));
}

TEST(QuantizeModel, FusesPassesThroughAndFixes) {
  const Model model = rules_model();
  const std::vector<MinMaxRange> ranges = rules_ranges(model);
  const auto range_of = [&](const std::string& name) { return ranges[model.find(name)]; };
  QuantizeSettings settings;
  settings.requantization = Requantization::cmsis;
  const Model q = quantize_model(model, ranges, settings);

  std::vector<std::string> names;
  for (const Layer& layer : q.layers) names.push_back(layer.name);
  EXPECT_EQ(names,
            (std::vector<std::string>{"input", "quantize", "conv1", "conv2", "conv3", "relu3",
                                      "add1", "maxpool", "gate", "gap", "flatten", "fc"}));
  EXPECT_EQ(q.layers[q.output].name, "fc");
  EXPECT_EQ(q.requantization, Requantization::cmsis);
  EXPECT_EQ(q.name, model.name + "_int8");

  const Layer& input = layer_named(q, "input");
  EXPECT_EQ(input.dtype, DType::f32);
  const Layer& quantize = layer_named(q, "quantize");
  EXPECT_EQ(quantize.op, Op::quantize);
  EXPECT_EQ(quantize.quant, activation_qparams(range_of("input")));

  // Fused relu: the relu's range, clamp [zp, 255]; relu6: clamp up to q(6).
  const Layer& conv1 = layer_named(q, "conv1");
  EXPECT_EQ(conv1.quant, activation_qparams(range_of("relu1")));
  EXPECT_EQ(conv1.clamp_lo, conv1.quant.zero_point);
  EXPECT_EQ(conv1.clamp_hi, 255);
  const Layer& conv2 = layer_named(q, "conv2");
  EXPECT_EQ(conv2.input_names, std::vector<std::string>{"conv1"});
  EXPECT_EQ(conv2.quant, activation_qparams(range_of("relu6_2")));
  EXPECT_EQ(conv2.clamp_hi,
            quantize_value(6.0f, conv2.quant.scale, conv2.quant.zero_point, 0, 255));

  // conv3 has two readers: its own range, and relu3 stays a layer.
  const Layer& conv3 = layer_named(q, "conv3");
  EXPECT_EQ(conv3.input_names, std::vector<std::string>{"conv2"});
  EXPECT_EQ(conv3.quant, activation_qparams(range_of("conv3")));
  EXPECT_EQ(conv3.clamp_lo, 0);
  const Layer& relu3 = layer_named(q, "relu3");
  EXPECT_EQ(relu3.quant, conv3.quant);
  EXPECT_EQ(relu3.clamp_lo, conv3.quant.zero_point);
  EXPECT_EQ(relu3.clamp_hi, 255);

  const Layer& add1 = layer_named(q, "add1");
  EXPECT_EQ(add1.quant, activation_qparams(range_of("add_relu")));
  EXPECT_EQ(add1.clamp_lo, add1.quant.zero_point);

  EXPECT_EQ(layer_named(q, "maxpool").input_names, std::vector<std::string>{"add1"});
  EXPECT_EQ(layer_named(q, "maxpool").quant, add1.quant);
  EXPECT_EQ(layer_named(q, "gate").quant, (QuantParams{1.0f / 256.0f, 0}));
  EXPECT_EQ(layer_named(q, "gap").quant, (QuantParams{1.0f / 256.0f, 0}));
  EXPECT_EQ(layer_named(q, "flatten").quant, (QuantParams{1.0f / 256.0f, 0}));
  const Layer& fc = layer_named(q, "fc");
  EXPECT_EQ(fc.quant, activation_qparams(range_of("fc_relu")));
  EXPECT_EQ(fc.clamp_lo, fc.quant.zero_point);
  for (const Layer& layer : q.layers)
    EXPECT_EQ(layer.dtype, layer.op == Op::input ? DType::f32 : DType::u8) << layer.name;
}

// Per-channel (or per-tensor) symmetric int8 weights and int32 biases of
// scale f32(weight scale * input scale).
void expect_weights(const Layer& source, const Layer& layer, float input_scale, bool per_tensor) {
  const Blob& float_weight = *source.weight("weight");
  const Blob& weight = *layer.weight("weight");
  const Blob& scales = *layer.weight("weight_scale");
  const Blob& zero_points = *layer.weight("weight_zero_point");
  const int64_t channels = float_weight.dims[0];
  const size_t per_channel = float_weight.values.size() / channels;
  ASSERT_EQ(weight.dtype, DType::i8);
  ASSERT_EQ(weight.dims, float_weight.dims);
  ASSERT_EQ(scales.dims, std::vector<int64_t>{per_tensor ? 1 : channels});
  ASSERT_EQ(zero_points.dtype, DType::i32);
  for (size_t i = 0; i < zero_points.elements(); ++i)
    EXPECT_EQ(reinterpret_cast<const int32_t*>(zero_points.raw.data())[i], 0);
  const auto* q = reinterpret_cast<const int8_t*>(weight.raw.data());
  int largest_overall = 0;
  for (int64_t c = 0; c < channels; ++c) {
    const float* w = float_weight.values.data() + c * per_channel;
    const float scale = scales.values[per_tensor ? 0 : c];
    if (!per_tensor) {
      EXPECT_EQ(scale, symmetric_weight_scale(w, per_channel)) << layer.name << c;
    }
    int largest = 0;
    for (size_t k = 0; k < per_channel; ++k) {
      EXPECT_EQ(q[c * per_channel + k], quantize_value(w[k], scale, 0, -128, 127));
      largest = std::max(largest, std::abs(static_cast<int>(q[c * per_channel + k])));
    }
    // The largest |w| maps to +-127.5 and rounds to 127 or -128.
    if (!per_tensor) {
      EXPECT_GE(largest, 127) << layer.name << " channel " << c;
    }
    largest_overall = std::max(largest_overall, largest);
  }
  EXPECT_GE(largest_overall, 127) << layer.name;
  if (per_tensor) {
    EXPECT_EQ(scales.values[0],
              symmetric_weight_scale(float_weight.values.data(), float_weight.values.size()));
  }
  const Blob& bias = *layer.weight("bias");
  ASSERT_EQ(bias.dtype, DType::i32);
  for (int64_t c = 0; c < channels; ++c) {
    const float bias_scale = scales.values[per_tensor ? 0 : c] * input_scale;
    EXPECT_EQ(
        reinterpret_cast<const int32_t*>(bias.raw.data())[c],
        quantize_value(source.weight("bias")->values[c], bias_scale, 0,
                       std::numeric_limits<int32_t>::min(), std::numeric_limits<int32_t>::max()));
  }
}

TEST(QuantizeModel, WeightsPerChannelAndPerTensor) {
  const Model model = rules_model();
  const std::vector<MinMaxRange> ranges = rules_ranges(model);
  for (bool per_tensor : {false, true}) {
    QuantizeSettings settings;
    settings.per_tensor_weights = per_tensor;
    const Model q = quantize_model(model, ranges, settings);
    for (const char* name : {"conv1", "conv2", "conv3", "fc"}) {
      const Layer& layer = layer_named(q, name);
      const Layer& input = q.layers[q.find(layer.input_names[0])];
      expect_weights(layer_named(model, name), layer, input.quant.scale, per_tensor);
    }
  }
}

void expect_refused(const Model& model, const std::string& words) {
  try {
    check_quantizable(model);
    FAIL() << "no error";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find(words), std::string::npos) << error.what();
  }
}

TEST(QuantizeModel, RefusesBatchnormAndOpsWithoutQuint8Form) {
  ModelBuilder with_bn(nchw(1, 2, 4, 4));
  with_bn.conv("conv", "input", 2, conv_params(3, 1, 1));
  with_bn.batchnorm("bn", "conv");
  expect_refused(with_bn.finish("bn"), "layer 'bn' (batchnorm): quantize needs BatchNorm folded");
  for (Op op : {Op::sigmoid, Op::silu, Op::leaky_relu}) {
    ModelBuilder b(nchw(1, 2, 4, 4));
    b.conv("conv", "input", 2, conv_params(3, 1, 1));
    b.unary("act", op, "conv");
    expect_refused(b.finish("act"),
                   std::string("layer 'act' (") + op_name(op) + ") has no quint8 form");
  }
  ModelBuilder pooled(nchw(1, 2, 4, 4));
  pooled.pool("pool", Op::avgpool, "input", pool_params(2, 2, 0));
  expect_refused(pooled.finish("pool"), "has no quint8 form");
}

TEST(Float16Weights, RoundsToNearestEvenAndRefusesOverflow) {
  Model model = affine_model();
  Blob& weight = model.layers[1].weights["weight"];
  const std::vector<std::pair<float, float>> cases = {
      {1.0f + 0x1p-11f, 1.0f},                // tie between 1 and 1 + 2^-10: even
      {1.0f + 3 * 0x1p-11f, 1.0f + 0x1p-9f},  // tie: to the even mantissa
      {1.0f + 0x1.8p-11f, 1.0f + 0x1p-10f},   // above the tie
      {-65504.0f, -65504.0f}};                // float16's largest
  for (const auto& [value, expected] : cases) {
    weight.values = {value};
    const Model half = float16_weights(model);
    const Blob& stored = *half.layers[1].weight("weight");
    ASSERT_EQ(stored.dtype, DType::f16);
    _Float16 h;
    std::memcpy(&h, stored.raw.data(), sizeof h);
    EXPECT_EQ(static_cast<float>(h), expected) << value;
    EXPECT_EQ(half.layers[1].weight("bias")->dtype, DType::f16);
    EXPECT_EQ(half.weight_bytes() * 2, model.weight_bytes());
  }
  weight.values = {70000.0f};
  EXPECT_THROW(float16_weights(model), Error);
}

}  // namespace
}  // namespace splitinfer
