// The table of op traits (src/op_table.hpp): every row names its op and the
// names round-trip; the regions an op's rows say it reads agree with its
// kind, on a model holding a layer of every op; validation refuses what the
// rows say an op cannot do in quint8; the kernel a layer gets follows its
// dtypes.
#include "op_table.hpp"

#include <gtest/gtest.h>

#include <random>
#include <set>
#include <string>

#include "error.hpp"
#include "graph.hpp"
#include "model_builder.hpp"
#include "test_util.hpp"

namespace splitinfer {
namespace {

using testing::conv_params;
using testing::ModelBuilder;
using testing::nchw;
using testing::pool_params;
using testing::random_region;

std::vector<Op> all_ops() {
  std::vector<Op> ops;
  for (size_t i = 0; i < kOpCount; ++i) ops.push_back(static_cast<Op>(i));
  return ops;
}

TEST(OpTable, EveryRowNamesItsOpAndNamesRoundTrip) {
  std::set<std::string> names;
  for (Op op : all_ops()) {
    const OpTraits& row = op_traits(op);
    EXPECT_EQ(row.op, op) << "row " << static_cast<int>(op);
    EXPECT_STREQ(op_name(op), row.name);
    EXPECT_EQ(op_from_name(row.name), op) << row.name;
    EXPECT_TRUE(names.insert(row.name).second) << "two ops are named " << row.name;
  }
  EXPECT_EQ(std::string(op_name(Op::conv2d)), "conv2d");
  EXPECT_EQ(op_from_name("upsample_nearest"), Op::upsample_nearest);
  EXPECT_THROW(op_from_name("gelu"), Error);
  EXPECT_THROW(op_from_name("Conv2d"), Error);
}

TEST(OpTable, KernelsAndTraitsAgreeWithTheKind) {
  for (Op op : all_ops()) {
    const OpTraits& row = op_traits(op);
    ASSERT_NE(row.reads, nullptr) << row.name;
    ASSERT_NE(row.macs, nullptr) << row.name;
    ASSERT_NE(row.scratch_bytes, nullptr) << row.name;
    if (row.kind == OpKind::input) {
      EXPECT_EQ(row.float32_kernel, nullptr) << row.name << ": no node computes the input";
      EXPECT_EQ(row.int8_kernel, nullptr) << row.name;
      continue;
    }
    EXPECT_TRUE(row.float32_kernel || row.int8_kernel) << row.name << " has no kernel";
    if (row.int8_scale == Int8Scale::input) {
      EXPECT_NE(row.int8_kernel, nullptr) << row.name << " keeps its input's scale in no int8 form";
    }
    // A fused activation replaces a layer computed over the same region.
    if (row.epilogue != Epilogue::none) {
      EXPECT_EQ(row.kind, OpKind::elementwise) << row.name;
    }
    EXPECT_EQ(is_elementwise(op), row.kind == OpKind::elementwise) << row.name;
  }
  EXPECT_EQ(op_traits(Op::relu).epilogue, Epilogue::relu);
  EXPECT_EQ(op_traits(Op::relu6).epilogue, Epilogue::relu6);
}

// A model with a layer of every op (in both dtypes where one converts), each
// on maps of a few rows and columns so that windows reach the padding.
Model model_of_every_op() {
  ModelBuilder b(nchw(1, 6, 9, 11));
  b.conv("conv", "input", 6, conv_params(3, 2, 2, 2, 2));
  b.batchnorm("batchnorm", "conv");
  for (Op op :
       {Op::relu, Op::relu6, Op::leaky_relu, Op::sigmoid, Op::silu, Op::hardswish, Op::hardsigmoid})
    b.unary(op_name(op), op, "batchnorm");
  b.binary("add", Op::add, "relu", "relu6");
  b.global_avgpool("global_avgpool", "add");
  b.binary("mul", Op::mul, "add", "global_avgpool");  // a squeeze-excite gate, broadcast
  b.concat("concat", {"mul", "silu", "hardswish"});
  b.channel_shuffle("channel_shuffle", "concat", 3);
  b.slice("slice", "channel_shuffle", 4, 10);
  b.pool("maxpool", Op::maxpool, "slice", pool_params(3, 2, 1, true));
  b.pool("avgpool", Op::avgpool, "maxpool", pool_params(2, 2, 1, true, false));
  b.upsample("upsample_nearest", "avgpool", 2, 3);
  b.resize("resize", "upsample_nearest", 7, 5);
  b.flatten("flatten", "resize");
  b.linear("linear", "flatten", 5);
  Model model = b.finish("linear");
  // input -> quantize -> dequantize beside them.
  const auto append = [&](const std::string& name, Op op, int input, DType dtype) {
    Layer layer;
    layer.name = name;
    layer.op = op;
    layer.input_names = {model.layers[input].name};
    layer.output_shape = model.layers[input].output_shape;
    layer.dtype = dtype;
    layer.quant = {0.05f, 128};
    model.layers.push_back(layer);
  };
  append("quantize", Op::quantize, 0, DType::u8);
  append("dequantize", Op::dequantize, static_cast<int>(model.layers.size()) - 1, DType::f32);
  validate(model, true);
  return model;
}

TEST(OpTable, ReadsAgreeWithTheKind) {
  const Model model = model_of_every_op();
  std::set<Op> seen;
  std::mt19937 generator(7);
  for (const Layer& layer : model.layers) {
    seen.insert(layer.op);
    const OpTraits& row = op_traits(layer.op);
    const Region whole_out = Region::whole(layer.output_shape);
    for (int slot = 0; slot < static_cast<int>(layer.inputs.size()); ++slot) {
      const Shape& in = model.layers[layer.inputs[slot]].output_shape;
      const Region whole_in = Region::whole(in);
      const std::string what = layer.name + " slot " + std::to_string(slot);
      // The whole output reads some of the input, and nothing outside it.
      const Region all = row.reads(model, layer, slot, whole_out);
      EXPECT_FALSE(all.empty()) << what;
      EXPECT_TRUE(whole_in.contains(all)) << what << " reads " << all.str() << " of " << in.str();
      for (int trial = 0; trial < 50; ++trial) {
        const Region out = random_region(generator, layer.output_shape);
        const Region part = row.reads(model, layer, slot, out);
        EXPECT_TRUE(all.contains(part)) << what << ", out " << out.str() << ": " << part.str();
        switch (row.kind) {
          case OpKind::input:
            ADD_FAILURE() << what << ": the input layer has no inputs";
            break;
          case OpKind::elementwise:
            if (in == layer.output_shape) {
              EXPECT_EQ(part, out) << what;
            }
            break;
          case OpKind::windowed:  // the same channels (or their groups), rows and columns nearby
            EXPECT_FALSE(part.empty()) << what << ", out " << out.str();
            break;
          case OpKind::whole_map:
            EXPECT_EQ(part.y1 - part.y0, in.h) << what << ", out " << out.str();
            EXPECT_EQ(part.x1 - part.x0, in.w) << what << ", out " << out.str();
            break;
          case OpKind::channels:
            if (part.empty()) break;  // a concat input none of whose channels are in `out`
            EXPECT_EQ(part.y0, out.y0) << what;
            EXPECT_EQ(part.y1, out.y1) << what;
            EXPECT_EQ(part.x0, out.x0) << what;
            EXPECT_EQ(part.x1, out.x1) << what;
            break;
        }
      }
    }
  }
  for (Op op : all_ops())
    EXPECT_TRUE(seen.count(op)) << op_name(op) << " has no layer in model_of_every_op()";
}

TEST(OpTable, MacsAndScratchByHand) {
  const Model model = model_of_every_op();
  const Layer& conv = model.layers[model.find("conv")];  // 6 -> 6 channels, 2 groups, 3x3
  const Layer& linear = model.layers[model.find("linear")];
  const int64_t features = model.layers[model.find("flatten")].output_shape.c;
  EXPECT_EQ(layer_macs(model, conv), static_cast<uint64_t>(conv.output_shape.elements()) * 3 * 9);
  EXPECT_EQ(layer_macs(model, linear), static_cast<uint64_t>(5 * features));
  Region rows = Region::whole(conv.output_shape);
  rows.y1 = 1;  // one row of the output
  EXPECT_EQ(op_traits(Op::conv2d).macs(model, conv, rows),
            static_cast<uint64_t>(6 * conv.output_shape.w) * 3 * 9);
  for (const Layer& layer : model.layers) {
    if (layer.op == Op::conv2d || layer.op == Op::linear) continue;
    EXPECT_EQ(layer_macs(model, layer), 0u) << layer.name;
    const Region out = Region::whole(layer.output_shape);
    const Region needed =
        layer.inputs.empty() ? Region{} : op_traits(layer.op).reads(model, layer, 0, out);
    EXPECT_EQ(op_traits(layer.op).scratch_bytes(model, layer, needed, out), 0u) << layer.name;
  }
}

TEST(OpTable, LayerKernelFollowsTheDtypes) {
  const Model model = model_of_every_op();
  for (const Layer& layer : model.layers) {
    const OpTraits& row = op_traits(layer.op);
    const bool int8 = layer.op == Op::quantize || layer.op == Op::dequantize;
    EXPECT_EQ(layer_kernel(model, layer), int8 ? row.int8_kernel : row.float32_kernel)
        << layer.name;
  }
}

// validate() of input -> quantize -> a quint8 layer of `op` (one input, the
// quantize's shape and parameters, default attributes).
void validate_quint8_layer(Op op) {
  Model model;
  model.meta.input_shape = nchw(1, 4, 5, 5);
  Layer input;
  input.name = "input";
  input.output_shape = model.meta.input_shape;
  Layer quantize = input;
  quantize.name = "quantize";
  quantize.op = Op::quantize;
  quantize.input_names = {"input"};
  quantize.dtype = DType::u8;
  quantize.quant = {0.05f, 128};
  Layer layer = quantize;
  layer.name = "layer";
  layer.op = op;
  layer.input_names = {"quantize"};
  for (auto [taps, size] : {std::pair{&layer.resize_h, input.output_shape.h},
                            std::pair{&layer.resize_w, input.output_shape.w}})
    for (int64_t i = 0; i < size; ++i) {  // resize: the identity
      taps->index.push_back(i);
      taps->weight.push_back(1);
    }
  model.layers = {input, quantize, layer};
  model.output = 2;
  validate(model, false);
}

TEST(OpTable, ValidationRefusesQuint8LayersOfOpsWithoutAnInt8Kernel) {
  int refused = 0;
  for (Op op : all_ops()) {
    const OpTraits& row = op_traits(op);
    if (row.kind == OpKind::input || row.int8_kernel) continue;
    try {
      validate_quint8_layer(op);
      ADD_FAILURE() << row.name << ": a quint8 layer was accepted";
    } catch (const Error& error) {
      EXPECT_NE(std::string(error.what()).find("has no quint8 form"), std::string::npos)
          << error.what();
    }
    ++refused;
  }
  EXPECT_EQ(refused, 6);  // batchnorm, leaky_relu, sigmoid, silu, avgpool, resize
  EXPECT_NO_THROW(validate_quint8_layer(Op::relu));
  EXPECT_NO_THROW(validate_quint8_layer(Op::maxpool));
}

}  // namespace
}  // namespace splitinfer
