// Node programs as the Executor runs them.
//
// One node (build_node_program(model, spatial_regions(model, 1, 1), 1)):
// what the planner predicts by replaying the program over an ArenaLayout must
// be what the Executor measures over a real Arena, byte for byte; in-place and
// view layers take no memory; a cap one byte below the predicted peak fails on
// the layer that reaches it, with the same words in replay and run; and the
// Executor, with its buffers shared and reused, computes what the kernels
// compute on buffers of their own.
//
// Several nodes, each an Executor on a thread of its own, with a coordinator,
// over the runtime's in-process transport: every layer gathered from the nodes' regions equals the
// one-node run bit for bit (design invariant 2), and every node's measured
// peak and traffic equal its program's (invariant 4).
#include "node_program.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <ostream>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "coordinator.hpp"
#include "error.hpp"
#include "executor.hpp"
#include "format.hpp"
#include "in_process_transport.hpp"
#include "input_exchange.hpp"
#include "model_builder.hpp"
#include "node_program_builder.hpp"
#include "ops/activation.hpp"
#include "ops/batchnorm.hpp"
#include "ops/channels.hpp"
#include "ops/conv2d.hpp"
#include "ops/elementwise.hpp"
#include "ops/linear.hpp"
#include "ops/pool.hpp"
#include "ops/resize.hpp"
#include "ops/upsample.hpp"
#include "strategies.hpp"
#include "test_util.hpp"

namespace splitinfer {
namespace {

using testing::conv_params;
using testing::ModelBuilder;
using testing::nchw;
using testing::OwnedTensor;
using testing::pool_params;

const char* const kNode = "node 1";

// ---- the graphs ----

// input [1,3,8,8] -> conv1 (4, 3x3, pad 1) -> relu1 -> conv2 (2, 3x3, pad 1)
Model chain_model() {
  ModelBuilder b(nchw(1, 3, 8, 8));
  b.conv("conv1", "input", 4, conv_params(3, 1, 1));
  b.unary("relu1", Op::relu, "conv1");
  b.conv("conv2", "relu1", 2, conv_params(3, 1, 1));
  return b.finish("conv2");
}

// Two residual adds; relu3 reads conv3, which add2 reads again afterwards.
Model residual_model() {
  ModelBuilder b(nchw(1, 4, 6, 6));
  b.conv("conv1", "input", 4, conv_params(3, 1, 1));
  b.unary("relu1", Op::relu, "conv1");
  b.conv("conv2", "relu1", 4, conv_params(3, 1, 1));
  b.binary("add1", Op::add, "conv2", "relu1");
  b.unary("relu2", Op::relu6, "add1");
  b.conv("conv3", "relu2", 4, conv_params(1, 1, 0));
  b.unary("relu3", Op::relu, "conv3");
  b.binary("add2", Op::add, "conv3", "relu3");
  return b.finish("add2");
}

// A ShuffleNet-style split: slices are views, the halves are joined and shuffled.
Model slice_concat_model() {
  ModelBuilder b(nchw(1, 4, 6, 6));
  b.conv("conv0", "input", 6, conv_params(1, 1, 0));
  b.slice("slice_a", "conv0", 0, 3);
  b.slice("slice_b", "conv0", 3, 6);
  b.conv("conv_a", "slice_a", 3, conv_params(3, 1, 1, 3));
  b.unary("hardswish_b", Op::hardswish, "slice_b");
  b.concat("joined", {"conv_a", "hardswish_b"});
  b.channel_shuffle("shuffled", "joined", 2);
  return b.finish("shuffled");
}

// conv -> pools -> flatten (a view) -> linear
Model classifier_model() {
  ModelBuilder b(nchw(1, 2, 9, 9));
  b.conv("conv", "input", 4, conv_params(3, 2, 1));  // 5x5
  b.unary("relu6", Op::relu6, "conv");
  b.pool("maxpool", Op::maxpool, "relu6", pool_params(3, 2, 1, true));  // 3x3
  b.pool("avgpool", Op::avgpool, "maxpool", pool_params(2, 1, 0));      // 2x2
  b.flatten("flatten", "avgpool");                                      // [1, 16]
  b.linear("fc", "flatten", 10);
  b.unary("sigmoid", Op::sigmoid, "fc");
  return b.finish("sigmoid");
}

// Squeeze-excite with the gate as mul's first operand, then depthwise,
// upsampling and a chain of in-place activations.
Model squeeze_excite_model() {
  ModelBuilder b(nchw(1, 3, 8, 8));
  b.conv("conv", "input", 8, conv_params(3, 1, 1), false);
  b.batchnorm("bn", "conv");
  b.unary("silu", Op::silu, "bn");
  b.global_avgpool("squeeze", "silu");
  b.conv("fc1", "squeeze", 2, conv_params(1, 1, 0));
  b.unary("fc1_relu", Op::relu, "fc1");
  b.conv("fc2", "fc1_relu", 8, conv_params(1, 1, 0));
  b.unary("gate", Op::hardsigmoid, "fc2");
  b.binary("excite", Op::mul, "gate", "silu");
  b.conv("depthwise", "excite", 8, conv_params(3, 2, 1, 8));  // 4x4
  b.upsample("up", "depthwise", 2);                           // 8x8
  b.unary("leaky", Op::leaky_relu, "up");
  b.unary("out", Op::sigmoid, "leaky");
  return b.finish("out");
}

// Strided grouped and dilated depthwise convolutions, a residual add, both
// pools, a concat, a stride-3 convolution and a classifier; odd map sizes so
// that tiles are uneven.
Model strided_groups_model() {
  ModelBuilder b(nchw(1, 4, 13, 11));
  b.conv("conv_s2", "input", 8, conv_params(3, 2, 1, 2));  // 7x6, 2 groups
  b.unary("relu", Op::relu, "conv_s2");
  b.conv("dilated", "relu", 8, conv_params(3, 1, 2, 8, 2));  // 7x6, depthwise, dilation 2
  b.binary("residual", Op::add, "dilated", "relu");          // 7x6
  b.pool("maxpool", Op::maxpool, "residual", pool_params(3, 2, 1, true));  // 4x4
  b.conv("branch", "maxpool", 4, conv_params(1, 1, 0));                    // 4x4
  b.pool("avgpool", Op::avgpool, "maxpool", pool_params(3, 1, 1));         // 4x4
  b.concat("joined", {"branch", "avgpool"});                               // 12 channels
  b.conv("conv_s3", "joined", 6, conv_params(3, 3, 1));                    // 2x2
  b.flatten("flatten", "conv_s3");                                         // [1, 24]
  b.linear("fc", "flatten", 5);
  return b.finish("fc");
}

// Padding beyond the kernel's reach (PyTorch allows it for conv2d): the
// outer rows and columns of conv_pad2 read only padding; then a dilated
// convolution and a dilated max pool, whose windows skip rows.
Model over_padded_model() {
  ModelBuilder b(nchw(1, 2, 6, 5));
  b.conv("conv_pad2", "input", 4, conv_params(1, 1, 2));     // 10x9
  b.unary("relu", Op::relu, "conv_pad2");                    // 10x9
  b.conv("dilated", "relu", 4, conv_params(3, 1, 1, 1, 2));  // 8x7
  PoolParams pool = pool_params(2, 2, 1);
  pool.dilation_h = pool.dilation_w = 2;
  b.pool("maxpool", Op::maxpool, "dilated", pool);  // 4x4
  return b.finish("maxpool");
}

// ---- the kernels on buffers of their own: what the Executor must reproduce ----

Activation activation_of(Op op) {
  switch (op) {
    case Op::relu:
      return Activation::relu;
    case Op::relu6:
      return Activation::relu6;
    case Op::leaky_relu:
      return Activation::leaky_relu;
    case Op::sigmoid:
      return Activation::sigmoid;
    case Op::silu:
      return Activation::silu;
    case Op::hardswish:
      return Activation::hardswish;
    default:
      return Activation::hardsigmoid;
  }
}

std::vector<OwnedTensor> evaluate_separately(const Model& model, const std::vector<float>& input) {
  std::vector<OwnedTensor> outputs;
  outputs.reserve(model.layers.size());
  for (const Layer& layer : model.layers) {
    OwnedTensor out(layer.output_shape);
    const auto weight = [&](const char* name) -> const float* {
      const Blob* blob = layer.weight(name);
      return blob ? blob->values.data() : nullptr;
    };
    const auto in = [&](size_t i) -> const Tensor& { return outputs[layer.inputs.at(i)].tensor; };
    switch (layer.op) {
      case Op::input:
        std::copy(input.begin(), input.end(), out.values.begin());
        break;
      case Op::conv2d:
        conv2d_reference(layer.conv, in(0), Placement::whole(in(0).shape), weight("weight"),
                         weight("bias"), out.tensor, Placement::whole(out.tensor.shape));
        break;
      case Op::linear:
        linear_reference(in(0), weight("weight"), weight("bias"), out.tensor);
        break;
      case Op::batchnorm:
        batchnorm({weight("gamma"), weight("beta"), weight("running_mean"), weight("running_var"),
                   layer.eps},
                  in(0), out.tensor);
        break;
      case Op::relu:
      case Op::relu6:
      case Op::leaky_relu:
      case Op::sigmoid:
      case Op::silu:
      case Op::hardswish:
      case Op::hardsigmoid:
        activation(activation_of(layer.op), layer.negative_slope, in(0), out.tensor);
        break;
      case Op::add:
        add(in(0), in(1), out.tensor);
        break;
      case Op::mul:
        mul(in(0), in(1), out.tensor);
        break;
      case Op::concat: {
        std::vector<const Tensor*> inputs;
        for (size_t i = 0; i < layer.inputs.size(); ++i) inputs.push_back(&in(i));
        concat(inputs, out.tensor);
        break;
      }
      case Op::slice:
        slice_channels(in(0), layer.slice_start, out.tensor);
        break;
      case Op::channel_shuffle:
        channel_shuffle(in(0), 0, layer.shuffle_groups, in(0).shape.c, out.tensor, 0);
        break;
      case Op::flatten:
        std::copy(in(0).f32(), in(0).f32() + in(0).shape.elements(), out.values.begin());
        break;
      case Op::maxpool:
        maxpool(layer.pool, in(0), Placement::whole(in(0).shape), out.tensor,
                Placement::whole(out.tensor.shape));
        break;
      case Op::avgpool:
        avgpool(layer.pool, in(0), Placement::whole(in(0).shape), out.tensor,
                Placement::whole(out.tensor.shape));
        break;
      case Op::global_avgpool:
        global_avgpool(in(0), out.tensor);
        break;
      case Op::upsample_nearest:
        upsample_nearest(layer.scale_h, layer.scale_w, in(0), Placement::whole(in(0).shape),
                         out.tensor, Placement::whole(out.tensor.shape));
        break;
      case Op::resize:
        resize(layer.resize_h, layer.resize_w, in(0), Placement::whole(in(0).shape), out.tensor,
               Placement::whole(out.tensor.shape));
        break;
      case Op::quantize:
      case Op::dequantize:
        ADD_FAILURE() << "the float32 reference has no " << op_name(layer.op);
        break;
    }
    outputs.push_back(std::move(out));
  }
  return outputs;
}

// ---- one node over a real Arena ----

NodeProgram one_node_program(const Model& model) {
  return build_node_program(model, spatial_regions(model, 1, 1), 1);
}

struct ExecutorRun {
  std::vector<std::vector<float>> layer_outputs;  // as on_layer saw them
  std::vector<int> reported;                      // layers on_layer saw, in order
  std::vector<float> output;
  uint64_t peak_bytes = 0;
  uint64_t bytes_in_use_after = 0;
  uint64_t bytes_received = 0;
};

ExecutorRun run_executor(const Model& model, Kernels kernels, const std::vector<float>& input,
                         uint64_t cap = ArenaLayout::kUnlimited, bool fuse_activations = false) {
  Executor executor(model, one_node_program(model), kNode, kernels);
  executor.set_fuse_activations(fuse_activations);
  Arena arena(cap);
  InputExchange exchange(model.layers[0].output_shape);
  exchange.set_input(input.data());
  ExecutorRun run;
  run.layer_outputs.resize(model.layers.size());
  executor.run(
      arena, exchange,
      [&](int index, const Tensor& tensor) {
        run.reported.push_back(index);
        run.layer_outputs.at(index).assign(tensor.f32(), tensor.f32() + tensor.shape.elements());
      },
      [&](const Tensor& tensor) {
        run.output.assign(tensor.f32(), tensor.f32() + tensor.shape.elements());
      });
  run.peak_bytes = arena.layout().peak_bytes();
  run.bytes_in_use_after = arena.layout().bytes_in_use();
  run.bytes_received = exchange.bytes_received;
  return run;
}

uint64_t predicted_peak(const Model& model) {
  ArenaLayout layout;
  return replay_memory(model, one_node_program(model), layout, kNode);
}

std::vector<float> model_input(const Model& model) {
  return testing::random_values(static_cast<size_t>(model.layers[0].output_shape.elements()), 9,
                                -2.0f, 2.0f);
}

// ---- every graph on one node ----

struct GraphCase {
  const char* name;
  Model (*build)();
};

void PrintTo(const GraphCase& c, std::ostream* os) { *os << c.name; }

const GraphCase kGraphs[] = {{"chain", chain_model},
                             {"residual", residual_model},
                             {"slice_concat", slice_concat_model},
                             {"classifier", classifier_model},
                             {"squeeze_excite", squeeze_excite_model},
                             {"strided_groups", strided_groups_model},
                             {"over_padded", over_padded_model}};

class EveryGraph : public ::testing::TestWithParam<GraphCase> {};

TEST_P(EveryGraph, PredictedPeakEqualsMeasuredPeak) {
  const Model model = GetParam().build();
  const uint64_t predicted = predicted_peak(model);
  EXPECT_GT(predicted, 0u);
  EXPECT_EQ(run_executor(model, Kernels::fast, model_input(model)).peak_bytes, predicted);
  EXPECT_EQ(run_executor(model, Kernels::reference, model_input(model)).peak_bytes, predicted);
}

// A relu or relu6 computed as the convolution before it stores: the same
// bits, layer by layer (where the activation was fused, the convolution's
// values are the activation's), in the same peak.
TEST_P(EveryGraph, FusedActivationsChangeNoBits) {
  const Model model = GetParam().build();
  const std::vector<float> input = model_input(model);
  const ExecutorRun apart = run_executor(model, Kernels::fast, input);
  const ExecutorRun fused =
      run_executor(model, Kernels::fast, input, ArenaLayout::kUnlimited, true);
  EXPECT_TRUE(testing::bitwise_equal(apart.output, fused.output));
  EXPECT_EQ(fused.peak_bytes, predicted_peak(model));
  for (size_t i = 1; i < model.layers.size(); ++i) {
    const bool same = testing::bitwise_equal(apart.layer_outputs[i], fused.layer_outputs[i]);
    const bool activated =
        i + 1 < model.layers.size() &&
        testing::bitwise_equal(apart.layer_outputs[i + 1], fused.layer_outputs[i]);
    EXPECT_TRUE(same || (model.layers[i].op == Op::conv2d && activated))
        << "layer '" << model.layers[i].name << "'";
  }
}

TEST_P(EveryGraph, ArenaIsEmptyAfterRun) {
  const Model model = GetParam().build();
  EXPECT_EQ(run_executor(model, Kernels::fast, model_input(model)).bytes_in_use_after, 0u);
  EXPECT_EQ(run_executor(model, Kernels::reference, model_input(model)).bytes_in_use_after, 0u);
}

// The schedule ends by releasing the output buffer (after the executor
// hands the output over): replayed, it leaves the arena empty, as the run does.
TEST_P(EveryGraph, ScheduleEndsWithTheOutputBufferAndAnEmptyArena) {
  const Model model = GetParam().build();
  const NodeProgram program = one_node_program(model);
  ArenaLayout layout;
  replay_memory(model, program, layout, kNode);
  EXPECT_EQ(layout.bytes_in_use(), 0u);
  const int output_buffer = program.layers[model.output].out_buffer;
  ASSERT_GE(output_buffer, 0);
  ASSERT_FALSE(program.schedule.empty());
  EXPECT_EQ(program.schedule.back().kind, MemoryEvent::Kind::release);
  EXPECT_EQ(program.schedule.back().block, output_buffer);
  // Every block is allocated once and released once, after its allocation.
  std::vector<int> allocated(program.blocks.size(), 0), released(program.blocks.size(), 0);
  for (const MemoryEvent& event : program.schedule) {
    if (event.kind == MemoryEvent::Kind::allocate) ++allocated.at(event.block);
    if (event.kind == MemoryEvent::Kind::release) {
      EXPECT_EQ(allocated.at(event.block), 1) << "block " << event.block;
      ++released.at(event.block);
    }
  }
  for (size_t block = 0; block < program.blocks.size(); ++block) {
    EXPECT_EQ(allocated[block], 1) << "block " << block;
    EXPECT_EQ(released[block], 1) << "block " << block;
  }
}

// The executor allocates nothing of its own accord: it follows its
// program's schedule, and a schedule that does not fit what it computes
// (two compute points swapped) stops it with an internal error.
TEST_P(EveryGraph, ExecutorFollowsTheSchedule) {
  const Model model = GetParam().build();
  NodeProgram program = one_node_program(model);
  std::vector<size_t> computes;
  for (size_t e = 0; e < program.schedule.size(); ++e)
    if (program.schedule[e].kind == MemoryEvent::Kind::compute) computes.push_back(e);
  ASSERT_GE(computes.size(), 3u);
  std::swap(program.schedule[computes[1]], program.schedule[computes[2]]);
  Executor executor(model, program, kNode, Kernels::fast);
  Arena arena;
  const std::vector<float> input = model_input(model);
  InputExchange exchange(model.layers[0].output_shape);
  exchange.set_input(input.data());
  try {
    executor.run(arena, exchange, {}, [](const Tensor&) {});
    ADD_FAILURE() << "ran past a schedule out of order";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("where its schedule is at layer"), std::string::npos)
        << error.what();
  }
}

// The lone node computes every layer but the input whole, receives exactly
// the input from the coordinator and sends exactly the output back.
TEST_P(EveryGraph, OneNodeComputesEveryLayerWholeAndMovesOnlyInputAndOutput) {
  const Model model = GetParam().build();
  const NodeProgram program = one_node_program(model);
  ASSERT_EQ(program.layers.size(), model.layers.size());
  EXPECT_TRUE(program.layers[0].out.empty());
  for (size_t i = 1; i < model.layers.size(); ++i)
    EXPECT_EQ(program.layers[i].out, Region::whole(model.layers[i].output_shape))
        << model.layers[i].name;
  const uint64_t input_bytes = Region::whole(model.layers[0].output_shape).bytes(sizeof(float));
  const uint64_t output_bytes =
      Region::whole(model.layers[model.output].output_shape).bytes(sizeof(float));
  EXPECT_EQ(program.bytes_received, input_bytes);
  EXPECT_EQ(program.bytes_sent, output_bytes);
  EXPECT_TRUE(program.neighbours.empty());
  EXPECT_EQ(run_executor(model, Kernels::fast, model_input(model)).bytes_received, input_bytes);
}

TEST_P(EveryGraph, ReferenceExecutorEqualsKernelsOnSeparateBuffersBitForBit) {
  const Model model = GetParam().build();
  const std::vector<float> input = model_input(model);
  const std::vector<OwnedTensor> expected = evaluate_separately(model, input);
  const ExecutorRun run = run_executor(model, Kernels::reference, input);
  // Every layer but the input (the coordinator's) is reported, in order.
  std::vector<int> every_computed_layer;
  for (int i = 1; i < static_cast<int>(model.layers.size()); ++i) every_computed_layer.push_back(i);
  EXPECT_EQ(run.reported, every_computed_layer);
  for (size_t i = 1; i < model.layers.size(); ++i)
    EXPECT_TRUE(testing::bitwise_equal(expected[i].values, run.layer_outputs[i]))
        << "layer '" << model.layers[i].name << "'";
  EXPECT_TRUE(testing::bitwise_equal(expected[model.output].values, run.output));
}

TEST_P(EveryGraph, FastAndReferenceExecutorsAgreeWithin1e5) {
  const Model model = GetParam().build();
  const std::vector<float> input = model_input(model);
  const ExecutorRun reference = run_executor(model, Kernels::reference, input);
  const ExecutorRun fast = run_executor(model, Kernels::fast, input);
  for (size_t i = 1; i < model.layers.size(); ++i)
    EXPECT_TRUE(testing::close_relative(reference.layer_outputs[i], fast.layer_outputs[i], 1e-5f))
        << "layer '" << model.layers[i].name << "'";
  EXPECT_TRUE(testing::close_relative(reference.output, fast.output, 1e-5f));
}

TEST_P(EveryGraph, CapOneByteBelowThePeakFailsNamingTheLayer) {
  const Model model = GetParam().build();
  const NodeProgram program = one_node_program(model);
  const uint64_t peak = predicted_peak(model);

  ArenaLayout exact(peak);
  EXPECT_EQ(replay_memory(model, program, exact, kNode), peak);
  EXPECT_NO_THROW(run_executor(model, Kernels::fast, model_input(model), peak));

  std::string replay_message, executor_message;
  ArenaLayout short_by_one(peak - 1);
  try {
    replay_memory(model, program, short_by_one, kNode);
  } catch (const Error& error) {
    replay_message = error.what();
  }
  ASSERT_FALSE(replay_message.empty()) << "replay_memory fitted in " << peak - 1 << " bytes";
  EXPECT_NE(replay_message.find(std::string(kNode) + ", layer '"), std::string::npos)
      << replay_message;
  EXPECT_NE(replay_message.find(format_bytes(peak - 1)), std::string::npos) << replay_message;
  try {
    run_executor(model, Kernels::fast, model_input(model), peak - 1);
  } catch (const Error& error) {
    executor_message = error.what();
  }
  // The Executor fails at the same allocation, with the same words.
  EXPECT_EQ(executor_message, replay_message);
}

INSTANTIATE_TEST_SUITE_P(Graphs, EveryGraph, ::testing::ValuesIn(kGraphs),
                         [](const ::testing::TestParamInfo<GraphCase>& info) {
                           return std::string(info.param.name);
                         });

// ---- particular graphs on one node ----

TEST(NodeProgram, ChainPeakByHand) {
  // Offsets in bytes, first fit, 64-byte blocks. The input has no buffer of
  // its own: it arrives in conv1's input tile and lives for conv1 only. Both
  // convolutions read a band (conv2d.cpp): the padded input, 10 x 10 per
  // channel plus 16 floats, the column offsets (int64) and the staging
  // [channels, 7 * 10 + 8 = 78 -> 80 positions].
  //   conv1  input tile 1x3x8x8 = 768              -> [0, 768)
  //          output 1x4x8x8 = 1024                 -> [768, 1792)
  //          weights 4*3*3*3*4 + 4*4 = 448         -> [1792, 2240)
  //          scratch (2*27 + 3*100 + 16 + 4*80) floats
  //                  = 2760 -> 2816                -> [2240, 5056)    peak 5056
  //          then the tile, weights and scratch are released
  //   relu1  in place in conv1's buffer
  //   conv2  input read in place (no tile)
  //          output 1x2x8x8 = 512                  -> [0, 512)
  //          weights 2*4*3*3*4 + 2*4 = 296 -> 320  -> [1792, 2112)  ([512, 768) is too small)
  //          scratch (2*36 + 4*100 + 16 + 2*80) floats
  //                  = 2592                        -> [2112, 4704)
  const Model model = chain_model();
  EXPECT_EQ(predicted_peak(model), 5056u);
  EXPECT_EQ(run_executor(model, Kernels::fast, model_input(model)).peak_bytes, 5056u);

  // One byte less and conv1's scratch, the first to reach 5056, fails.
  ArenaLayout short_by_one(5055);
  try {
    replay_memory(model, one_node_program(model), short_by_one, kNode);
    FAIL() << "no Error thrown";
  } catch (const Error& error) {
    const std::string message = error.what();
    EXPECT_NE(message.find("node 1, layer 'conv1' (conv2d): scratch"), std::string::npos)
        << message;
  }

  // conv2 peaks at 4704, under conv1: the chain fits in exactly 5056 bytes.
  ArenaLayout at_peak(5056);
  EXPECT_EQ(replay_memory(model, one_node_program(model), at_peak, kNode), 5056u);
}

TEST(NodeProgram, TheInputArrivesInTheFirstLayersTile) {
  const Model model = chain_model();
  const NodeProgram program = one_node_program(model);
  const InputSlot& conv1_input = program.layers[model.find("conv1")].inputs.at(0);
  const Region whole_input{0, 3, 0, 8, 0, 8};
  EXPECT_EQ(conv1_input.needed, whole_input);
  EXPECT_FALSE(conv1_input.direct);
  ASSERT_EQ(conv1_input.receives.size(), 1u);
  EXPECT_EQ(conv1_input.receives[0].peer, 0);
  EXPECT_EQ(conv1_input.receives[0].region, whole_input);
  EXPECT_TRUE(conv1_input.sends.empty());
  EXPECT_FALSE(conv1_input.exchange);
  EXPECT_EQ(program.bytes_received, 3u * 8 * 8 * sizeof(float));  // 768
  EXPECT_EQ(program.bytes_sent, 2u * 8 * 8 * sizeof(float));      // conv2's output, 512
}

TEST(NodeProgram, ReluAfterConvWorksInPlace) {
  const Model model = chain_model();
  const NodeProgram program = one_node_program(model);
  const LayerStep& conv1 = program.layers[model.find("conv1")];
  const LayerStep& relu1 = program.layers[model.find("relu1")];
  EXPECT_TRUE(conv1.allocates_out);
  EXPECT_FALSE(relu1.allocates_out);
  EXPECT_EQ(relu1.out_buffer, conv1.out_buffer);
  EXPECT_EQ(relu1.weight_bytes + relu1.scratch_bytes, 0u);
  // conv1 (shared with relu1) and conv2; the input is a tile, not a buffer.
  EXPECT_EQ(program.buffer_bytes.size(), 2u);
}

TEST(NodeProgram, AnInputReadAgainLaterIsNotOverwritten) {
  const Model model = residual_model();
  const NodeProgram program = one_node_program(model);
  const auto step = [&](const char* name) -> const LayerStep& {
    return program.layers[model.find(name)];
  };
  // relu1 and relu2 take over their input; add1 writes into conv2's buffer.
  EXPECT_EQ(step("relu1").out_buffer, step("conv1").out_buffer);
  EXPECT_EQ(step("add1").out_buffer, step("conv2").out_buffer);
  EXPECT_EQ(step("relu2").out_buffer, step("conv2").out_buffer);
  EXPECT_FALSE(step("add1").allocates_out);
  // conv3 is read again by add2, so relu3 needs a buffer of its own...
  EXPECT_TRUE(step("relu3").allocates_out);
  EXPECT_NE(step("relu3").out_buffer, step("conv3").out_buffer);
  // ...and add2, the last reader, writes over conv3.
  EXPECT_EQ(step("add2").out_buffer, step("conv3").out_buffer);
}

TEST(NodeProgram, SlicesAndFlattenAreViews) {
  {
    const Model model = slice_concat_model();
    const NodeProgram program = one_node_program(model);
    const auto step = [&](const char* name) -> const LayerStep& {
      return program.layers[model.find(name)];
    };
    EXPECT_FALSE(step("slice_a").allocates_out);
    EXPECT_FALSE(step("slice_b").allocates_out);
    EXPECT_EQ(step("slice_a").out_buffer, step("conv0").out_buffer);
    EXPECT_EQ(step("slice_b").out_buffer, step("conv0").out_buffer);
    EXPECT_EQ(step("slice_a").out_offset, 0u);
    EXPECT_EQ(step("slice_b").out_offset, 3u * 6 * 6 * sizeof(float));  // 3 channels of 6x6
    // hardswish of a slice cannot work in place: the slice is part of a larger buffer.
    EXPECT_TRUE(step("hardswish_b").allocates_out);
  }
  {
    const Model model = classifier_model();
    const NodeProgram program = one_node_program(model);
    const LayerStep& flatten = program.layers[model.find("flatten")];
    EXPECT_FALSE(flatten.allocates_out);
    EXPECT_EQ(flatten.out_buffer, program.layers[model.find("avgpool")].out_buffer);
    EXPECT_EQ(flatten.out_offset, 0u);
  }
}

TEST(NodeProgram, TheGateDoesNotTakeOverTheMapItScales) {
  const Model model = squeeze_excite_model();
  const NodeProgram program = one_node_program(model);
  const auto step = [&](const char* name) -> const LayerStep& {
    return program.layers[model.find(name)];
  };
  // mul(gate [1,8,1,1], silu [1,8,8,8]) writes into silu's buffer (conv's, through bn and silu).
  EXPECT_EQ(step("excite").out_buffer, step("conv").out_buffer);
  EXPECT_FALSE(step("excite").allocates_out);
  EXPECT_NE(step("excite").out_buffer, step("gate").out_buffer);
  EXPECT_EQ(step("bn").weight_bytes, 4u * 8 * sizeof(float));
}

// ---- several nodes in one process ----

struct ClusterRun {
  std::vector<std::vector<float>> layers;  // whole maps gathered from every node's region
  std::vector<float> output;
  struct NodeRun {
    std::string error;
    uint64_t predicted_peak = 0, peak = 0, bytes_in_use_after = 0;
    // Measured by the exchange; bytes_sent includes the output to the coordinator.
    uint64_t bytes_sent = 0, bytes_received = 0;
  };
  std::vector<NodeRun> nodes;
};

// Runs every node's program on a thread of its own, each over an arena capped
// at the peak its program predicts, and the coordinator on another, over the
// runtime's in-process transport (which holds back received pieces until an
// exchange finishes and checks that no piece being sent changes before).
// Fails (without running) when the nodes disagree on which slots are
// exchanged, which would leave a thread waiting. With `owners` (overlapping
// regions), each node writes its owned part of the maps; with `streams`, the
// nodes compute those runs part by part.
ClusterRun run_cluster(const Model& model, const LayerRegions& regions,
                       const std::vector<float>& input, Kernels kernels,
                       const LayerRegions& owners = {}, const StreamGroups& streams = {},
                       bool weights_in_place = false, bool fuse_activations = false) {
  const int nodes = static_cast<int>(regions[0].size());
  ClusterRun cluster;
  cluster.layers.resize(model.layers.size());
  for (size_t i = 1; i < model.layers.size(); ++i)
    cluster.layers[i].assign(model.layers[i].output_shape.elements(),
                             std::numeric_limits<float>::quiet_NaN());
  cluster.nodes.resize(nodes);

  std::vector<Model> node_models;
  std::vector<NodeProgram> programs;
  std::vector<std::unique_ptr<Arena>> arenas;
  for (int k = 1; k <= nodes; ++k) {
    node_models.push_back(testing::node_model(model, regions, k));
    programs.push_back(build_node_program(model, regions, k, false, owners, streams));
    if (weights_in_place) read_weights_in_place(model, programs.back());
    ArenaLayout layout;
    cluster.nodes[k - 1].predicted_peak =
        replay_memory(model, programs.back(), layout, "node " + std::to_string(k));
    arenas.push_back(std::make_unique<Arena>(
        std::max<uint64_t>(cluster.nodes[k - 1].predicted_peak, ArenaLayout::kAlignment)));
  }
  for (size_t i = 0; i < model.layers.size(); ++i)
    for (size_t slot = 0; slot < model.layers[i].inputs.size(); ++slot)
      for (int k = 2; k <= nodes; ++k)
        if (programs[k - 1].layers[i].inputs[slot].exchange !=
            programs[0].layers[i].inputs[slot].exchange) {
          ADD_FAILURE() << "nodes 1 and " << k << " disagree on exchanging slot " << slot
                        << " of layer '" << model.layers[i].name << "'";
          return cluster;
        }

  InProcessCluster in_process(nodes + 1);
  const std::vector<std::string> errors = in_process.run([&](Transport& transport) {
    const int k = transport.rank();
    if (k == 0) {
      Coordinator coordinator(transport, model, programs);
      Bytes output;
      coordinator.infer(input, output, nullptr, {});
      cluster.output.resize(output.size() / sizeof(float));
      std::memcpy(cluster.output.data(), output.data(), output.size());
      return;
    }
    ClusterRun::NodeRun& mine = cluster.nodes[k - 1];
    const NodeProgram& program = programs[k - 1];
    Executor executor(node_models[k - 1], program, "node " + std::to_string(k), kernels);
    executor.set_fuse_activations(fuse_activations);
    const std::unique_ptr<NodeExchange> exchange = transport.node_exchange(program.neighbours);
    uint64_t output_bytes = 0;
    // Each node writes only its own region of the whole maps: no two
    // threads write the same element.
    executor.run(
        *arenas[k - 1], *exchange,
        [&](int index, const Tensor& tensor) {
          const Region& region = program.layers[index].out;
          copy_region(tensor.f32(), region, cluster.layers[index].data(),
                      Region::whole(model.layers[index].output_shape),
                      owners.empty() ? region : owners[index][k - 1], sizeof(float));
        },
        [&](const Tensor& tensor) {
          transport.send(0, Tag::output, tensor.data, tensor.shape.elements(), sizeof(float));
          output_bytes = tensor.bytes();
        });
    mine.peak = arenas[k - 1]->layout().peak_bytes();
    mine.bytes_in_use_after = arenas[k - 1]->layout().bytes_in_use();
    mine.bytes_sent = exchange->bytes_sent + output_bytes;
    mine.bytes_received = exchange->bytes_received;
  });
  EXPECT_EQ(errors[0], "") << "the coordinator";
  for (int k = 1; k <= nodes; ++k) cluster.nodes[k - 1].error = errors[k];
  return cluster;
}

struct PlanCase {
  const char* name;
  LayerRegions (*regions)(const Model&);
};

void PrintTo(const PlanCase& c, std::ostream* os) { *os << c.name; }

const PlanCase kPlans[] = {
    {"rows2", [](const Model& m) { return spatial_regions(m, 2, 1); }},
    {"rows3", [](const Model& m) { return spatial_regions(m, 3, 1); }},
    {"rows4", [](const Model& m) { return spatial_regions(m, 4, 1); }},
    // More nodes than rows in the late maps: some get nothing, others a row
    // thinner than the halo.
    {"rows7", [](const Model& m) { return spatial_regions(m, 7, 1); }},
    {"grid2x2", [](const Model& m) { return spatial_regions(m, 2, 2); }},
    {"grid1x3", [](const Model& m) { return spatial_regions(m, 1, 3); }},
    {"grid3x2", [](const Model& m) { return spatial_regions(m, 3, 2); }},
    {"channel2", [](const Model& m) { return channel_regions(m, 2); }},
    {"channel3", [](const Model& m) { return channel_regions(m, 3); }},
    {"channel5", [](const Model& m) { return channel_regions(m, 5); }},
};

// Every layer gathered from the nodes equals the one-node run bit for bit;
// every node runs in exactly its predicted peak, ends with an empty arena,
// and moves the bytes its program says.
void expect_cluster_equals_one_node(const Model& model, const LayerRegions& regions,
                                    Kernels kernels, const std::string& what,
                                    const LayerRegions& owners = {},
                                    const StreamGroups& streams = {},
                                    bool weights_in_place = false) {
  SCOPED_TRACE(what);
  const std::vector<float> input = model_input(model);
  const ExecutorRun one = run_executor(model, kernels, input);
  const ClusterRun cluster =
      run_cluster(model, regions, input, kernels, owners, streams, weights_in_place);
  for (size_t k = 1; k <= cluster.nodes.size(); ++k) {
    const ClusterRun::NodeRun& node = cluster.nodes[k - 1];
    ASSERT_EQ(node.error, "") << "node " << k;
    const NodeProgram program =
        build_node_program(model, regions, static_cast<int>(k), false, owners, streams);
    EXPECT_EQ(node.peak, node.predicted_peak) << "node " << k;
    EXPECT_EQ(node.bytes_in_use_after, 0u) << "node " << k;
    EXPECT_EQ(node.bytes_sent, program.bytes_sent) << "node " << k;
    EXPECT_EQ(node.bytes_received, program.bytes_received) << "node " << k;
  }
  for (size_t i = 1; i < model.layers.size(); ++i)
    EXPECT_TRUE(testing::bitwise_equal(one.layer_outputs[i], cluster.layers[i]))
        << "layer '" << model.layers[i].name << "'";
  EXPECT_TRUE(testing::bitwise_equal(one.output, cluster.output));
}

class Cluster : public ::testing::TestWithParam<std::tuple<GraphCase, PlanCase>> {};

TEST_P(Cluster, EqualsOneNodeBitForBit) {
  const auto& [graph, plan] = GetParam();
  const Model model = graph.build();
  expect_cluster_equals_one_node(model, plan.regions(model), Kernels::fast, "fast kernels");
  expect_cluster_equals_one_node(model, plan.regions(model), Kernels::reference,
                                 "reference kernels");
}

INSTANTIATE_TEST_SUITE_P(GraphsAndPlans, Cluster,
                         ::testing::Combine(::testing::ValuesIn(kGraphs),
                                            ::testing::ValuesIn(kPlans)),
                         [](const ::testing::TestParamInfo<std::tuple<GraphCase, PlanCase>>& info) {
                           return std::string(std::get<0>(info.param).name) + "_" +
                                  std::get<1>(info.param).name;
                         });

// Weights read where flash holds them: the same bits, in the predicted peak,
// which is the copying plan's less the weights' RAM.
TEST(Cluster, WeightsReadInPlaceEqualOneNodeBitForBit) {
  int smaller = 0;
  for (uint32_t seed = 1; seed <= 12; ++seed) {
    const Model model = testing::random_stack(seed);
    for (const PlanCase& plan : kPlans) {
      const LayerRegions regions = plan.regions(model);
      const std::string what = "seed " + std::to_string(seed) + ", " + plan.name;
      expect_cluster_equals_one_node(model, regions, Kernels::fast, what, {}, {}, true);
      for (int k = 1; k <= static_cast<int>(regions[0].size()); ++k) {
        const NodeProgram copying = build_node_program(model, regions, k);
        NodeProgram in_place = copying;
        read_weights_in_place(model, in_place);
        ArenaLayout copying_layout, in_place_layout;
        const uint64_t copying_peak = replay_memory(model, copying, copying_layout, "node");
        const uint64_t in_place_peak = replay_memory(model, in_place, in_place_layout, "node");
        EXPECT_LE(in_place_peak, copying_peak) << what << ", node " << k;
        smaller += in_place_peak < copying_peak;
        for (const LayerStep& step : in_place.layers) EXPECT_EQ(step.weight_bytes, 0u) << what;
      }
      if (HasFailure()) return;
    }
  }
  EXPECT_GT(smaller, 20);
}

// Fused activations on every node: the one-node output (computed apart), in
// each node's predicted peak. Some convolutions of the draw are fused.
TEST(Cluster, FusedActivationsEqualOneNodeBitForBit) {
  int fused_layers = 0;
  for (uint32_t seed = 1; seed <= 40; ++seed) {
    const Model model = testing::random_stack(seed);
    const std::vector<float> input = model_input(model);
    const ExecutorRun one = run_executor(model, Kernels::fast, input);
    const ExecutorRun one_fused =
        run_executor(model, Kernels::fast, input, ArenaLayout::kUnlimited, true);
    for (size_t i = 1; i + 1 < model.layers.size(); ++i)
      fused_layers += model.layers[i].op == Op::conv2d &&
                      !testing::bitwise_equal(one.layer_outputs[i], one_fused.layer_outputs[i]);
    for (const PlanCase& plan : kPlans) {
      SCOPED_TRACE("seed " + std::to_string(seed) + ", " + plan.name);
      const ClusterRun cluster =
          run_cluster(model, plan.regions(model), input, Kernels::fast, {}, {}, false, true);
      for (const ClusterRun::NodeRun& node : cluster.nodes) {
        ASSERT_EQ(node.error, "");
        EXPECT_EQ(node.peak, node.predicted_peak);
      }
      EXPECT_TRUE(testing::bitwise_equal(one.output, cluster.output));
    }
  }
  EXPECT_GT(fused_layers, 3);
}

TEST(Cluster, RandomConvPoolStacksEqualOneNodeBitForBit) {
  int empty_regions = 0, thinner_than_halo = 0;
  for (uint32_t seed = 1; seed <= 40; ++seed) {
    const Model model = testing::random_stack(seed);
    for (const PlanCase& plan : kPlans) {
      const LayerRegions regions = plan.regions(model);
      expect_cluster_equals_one_node(model, regions, Kernels::fast,
                                     "seed " + std::to_string(seed) + ", " + plan.name);
      // What the draw covers: nodes computing nothing, and nodes receiving
      // from a node two or more rows away (tiles thinner than the halo).
      for (int k = 1; k <= static_cast<int>(regions[0].size()); ++k) {
        const NodeProgram program = build_node_program(model, regions, k);
        for (size_t i = 1; i < model.layers.size(); ++i) {
          empty_regions += program.layers[i].out.empty();
          for (const InputSlot& input : program.layers[i].inputs)
            for (const Transfer& piece : input.receives)
              thinner_than_halo += piece.peer != 0 && std::abs(piece.peer - k) >= 2 &&
                                   std::string(plan.name).rfind("rows", 0) == 0;
        }
      }
    }
  }
  EXPECT_GT(empty_regions, 50);
  EXPECT_GT(thinner_than_halo, 50);
}

// Streams: runs of layers computed part by part (row bands, tiles; weights
// read per part or kept) on every node, and single layers by output channels, equal the one-node
// run bit for bit in every layer (the runs' earlier layers assembled from their parts), in exactly
// the predicted peak. The parts of every layer of a run together cover the node's region of it, and
// the last layer's parts tile it exactly.
TEST(Cluster, RandomStacksStreamedEqualOneNodeBitForBit) {
  int streamed_runs = 0, overlapping_parts = 0, channel_parts = 0;
  for (uint32_t seed = 1; seed <= 40; ++seed) {
    const Model model = testing::random_stack(seed);
    std::mt19937 generator(seed);
    for (const PlanCase& plan : kPlans) {
      const std::string what = "seed " + std::to_string(seed) + ", " + plan.name;
      const LayerRegions regions = plan.regions(model);
      const bool by_channels = std::string(plan.name).rfind("channel", 0) == 0;
      StreamGroups groups;
      if (by_channels) {  // every conv, by 1-3 output channels
        for (size_t i = 1; i < model.layers.size(); ++i)
          if (model.layers[i].op == Op::conv2d)
            groups.push_back({static_cast<int>(i), static_cast<int>(i), 0, 0,
                              testing::uniform(generator, 1, 3)});
      } else {
        groups = stream_runs(model, {}, false);
        for (StreamGroup& group : groups) {
          group.part_rows = testing::uniform(generator, 1, 3);
          group.part_cols = testing::uniform(generator, 0, 3);
          group.keep_weights = testing::uniform(generator, 0, 1) == 1;
        }
      }
      const StreamedRegions streamed = stream_regions(model, regions, {}, groups);
      if (streamed.groups.empty()) continue;
      ASSERT_NO_THROW(check_stream_groups(model, streamed.groups)) << what;
      expect_cluster_equals_one_node(model, streamed.regions, Kernels::fast, what, streamed.owners,
                                     streamed.groups);
      for (int k = 1; k <= static_cast<int>(regions[0].size()); ++k) {
        const NodeProgram program =
            build_node_program(model, streamed.regions, k, false, streamed.owners, streamed.groups);
        for (const Stream& stream : program.streams) {
          streamed_runs += stream.parts.size() > 1;
          for (int j = stream.first; j <= stream.last; ++j) {
            const Region& region = program.layers[j].out;
            int64_t covered = 0;
            Region hull;
            for (size_t p = 0; p < stream.parts.size(); ++p) {
              const Region& part = stream.parts[p][j - stream.first].out;
              EXPECT_TRUE(region.contains(part)) << what << ", layer " << j;
              covered += part.elements();
              hull = hull.bounding(part);
            }
            if (stream.parts.empty()) continue;
            EXPECT_EQ(hull, region) << what << ", layer " << j;
            if (j == stream.last)
              EXPECT_EQ(covered, region.elements()) << what << ", layer " << j;
            else
              overlapping_parts += covered > region.elements();
            channel_parts += by_channels && stream.parts.size() > 1;
          }
        }
      }
    }
  }
  // What the draw covers.
  EXPECT_GT(streamed_runs, 100);
  EXPECT_GT(overlapping_parts, 50);
  EXPECT_GT(channel_parts, 50);
}

// An inverted residual network: a stem, a block with its residual add, a
// block that downsamples.
Model inverted_residuals() {
  testing::ModelBuilder b(nchw(1, 4, 16, 16));
  b.conv("stem", "input", 8, testing::conv_params(3, 2, 1));               // 8x8x8
  b.conv("expand1", "stem", 32, testing::conv_params(1, 1, 0));            // widens
  b.conv("depthwise1", "expand1", 32, testing::conv_params(3, 1, 1, 32));  //
  b.conv("project1", "depthwise1", 8, testing::conv_params(1, 1, 0));      //
  b.binary("add1", Op::add, "project1", "stem");                           // narrow
  b.conv("expand2", "add1", 32, testing::conv_params(1, 1, 0));            // widens
  b.conv("depthwise2", "expand2", 32, testing::conv_params(3, 2, 1, 32));  // 4x4
  b.conv("project2", "depthwise2", 16, testing::conv_params(1, 1, 0));     // narrower
  b.global_avgpool("pool", "project2");
  return b.finish("pool");
}

// An inverted residual network streams block by block: each run starts at a
// narrow map and ends before the next widening, and holds its residual add.
TEST(Streams, RunsAreTheWideningBlocks) {
  const Model model = inverted_residuals();
  const auto at = [&](const char* name) { return model.find(name); };
  const StreamGroups runs = stream_runs(model, {}, true);
  ASSERT_EQ(runs.size(), 2u);
  EXPECT_EQ(runs[0].first, at("expand1"));
  EXPECT_EQ(runs[0].last, at("add1"));
  EXPECT_EQ(runs[1].first, at("expand2"));
  EXPECT_EQ(runs[1].last, at("project2"));
  // Without the cuts at widenings: one run from the stem (read only by
  // expand1 and add1, both inside) to the last spatial layer.
  const StreamGroups long_runs = stream_runs(model, {}, false);
  ASSERT_EQ(long_runs.size(), 1u);
  EXPECT_EQ(long_runs[0].first, at("stem"));
  EXPECT_EQ(long_runs[0].last, at("project2"));

  // 2 nodes by rows, bands of 1 row of project2: each band computes 3 rows
  // of expand2 and of add1 (a 3x3 stride-2 window), never the whole map.
  StreamGroups groups = runs;
  for (StreamGroup& group : groups) group.part_rows = 1;
  const StreamedRegions streamed = stream_regions(model, spatial_regions(model, 2, 1), {}, groups);
  ASSERT_EQ(streamed.groups.size(), 2u);
  const NodeProgram program =
      build_node_program(model, streamed.regions, 1, false, streamed.owners, streamed.groups);
  const Stream& second = program.streams[1];
  ASSERT_EQ(second.parts.size(), 2u);  // project2 rows 0 and 1 of 4
  const int expand2 = at("expand2") - second.first;
  EXPECT_EQ(second.parts[0][expand2].out, (Region{0, 32, 0, 2, 0, 8}));  // rows -1..1, clipped
  EXPECT_EQ(second.parts[1][expand2].out, (Region{0, 32, 1, 4, 0, 8}));  // rows 1..3
  // Node 1's region of expand2 grew to what project2's rows 0-1 read: rows 0-3.
  EXPECT_EQ(program.layers[at("expand2")].out, (Region{0, 32, 0, 4, 0, 8}));
  EXPECT_EQ(program.layers[at("expand2")].out_buffer, -1);  // never whole
  expect_cluster_equals_one_node(model, streamed.regions, Kernels::fast, "2 nodes, 1-row bands",
                                 streamed.owners, streamed.groups);
}

// MCUNetV2's patch-based first stages: a run from the input across the
// widenings, cut into tiles. The model's input comes part by part from the
// coordinator (each part's share, halo included), never whole on a node.
TEST(Streams, DeepRunsTakeTheInputPartByPart) {
  const Model model = inverted_residuals();
  const auto at = [&](const char* name) { return model.find(name); };
  // Runs from the stem to each map narrower than every earlier end (the
  // stem alone is no run; it is read by add1, so no run ends before it).
  const StreamGroups deep = deep_runs(model);
  ASSERT_EQ(deep.size(), 2u);
  EXPECT_EQ(deep[0].first, at("stem"));
  EXPECT_EQ(deep[0].last, at("add1"));
  EXPECT_EQ(deep[1].first, at("stem"));
  EXPECT_EQ(deep[1].last, at("project2"));

  const uint64_t whole_input = model.layers[0].output_shape.elements() * sizeof(float);
  for (const auto& [rows, cols, nodes] :
       {std::tuple{2, 2, 1}, std::tuple{1, 0, 2}, std::tuple{3, 1, 2}}) {
    const std::string what = std::to_string(nodes) + " node(s), parts " + std::to_string(rows) +
                             "x" + std::to_string(cols);
    StreamGroup group = deep[1];
    group.part_rows = rows, group.part_cols = cols;
    const StreamedRegions streamed =
        stream_regions(model, spatial_regions(model, nodes, 1), {}, {group});
    ASSERT_EQ(streamed.groups.size(), 1u) << what;
    for (int k = 1; k <= nodes; ++k) {
      const NodeProgram program =
          build_node_program(model, streamed.regions, k, false, streamed.owners, streamed.groups);
      const InputSlot& input = program.layers[at("stem")].inputs[0];
      EXPECT_TRUE(input.per_part) << what;
      EXPECT_TRUE(input.receives.empty()) << what;
      // One piece per part, each the part's share, in the parts' order.
      const Stream& stream = program.streams[0];
      std::vector<Region> pieces;
      for (const Message& message : node_messages(model, program))
        if (message.kind == Message::Kind::input_piece) pieces.push_back(message.region);
      ASSERT_EQ(pieces.size(), stream.parts.size()) << what;
      EXPECT_GT(stream.parts.size(), 1u) << what;
      for (size_t p = 0; p < pieces.size(); ++p)
        EXPECT_EQ(pieces[p], stream.parts[p][0].needed[0]) << what << ", part " << p;
      for (const Block& block : program.blocks) {
        if (block.use == Block::Use::input_tile && block.layer == at("stem")) {
          EXPECT_LT(block.bytes, whole_input) << what;
        }
      }
    }
    expect_cluster_equals_one_node(model, streamed.regions, Kernels::fast, what, streamed.owners,
                                   streamed.groups);
  }
}

TEST(Streams, RunsThatCannotStreamAreRefused) {
  testing::ModelBuilder b(nchw(1, 4, 8, 8));
  b.conv("a", "input", 4, testing::conv_params(3, 1, 1));
  b.conv("b", "a", 4, testing::conv_params(3, 1, 1));
  b.binary("c", Op::add, "b", "a");
  b.global_avgpool("pool", "c");
  const Model model = b.finish("pool");
  const auto message = [&](const StreamGroups& groups) {
    try {
      check_stream_groups(model, groups);
    } catch (const Error& error) {
      return std::string(error.what());
    }
    return std::string();
  };
  EXPECT_NE(message({{1, 2, 1, 0, 0}}).find("'a', which is read after the run"), std::string::npos);
  EXPECT_NE(message({{2, 4, 1, 0, 0}}).find("cannot be computed part by part"), std::string::npos);
  EXPECT_NE(message({{1, 3, 0, 0, 0}}).find("at least 1 row or column"), std::string::npos);
  EXPECT_NE(message({{1, 3, 1, 0, 0}, {2, 3, 1, 0, 0}}).find("not overlapping"), std::string::npos);
  EXPECT_NE(message({{1, 2, 1, 0, 2}}).find("one conv2d or linear layer"), std::string::npos);
  EXPECT_EQ(message({{1, 3, 1, 0, 0}}), "");
  EXPECT_EQ(message({{2, 2, 0, 0, 3}}), "");
  // A node's region of a run's earlier layer must hold what the run reads.
  EXPECT_THROW(
      build_node_program(model, spatial_regions(model, 2, 1), 1, false, {}, {{1, 3, 1, 0, 0}}),
      Error);
}

// A node whose output rows read only padding needs nothing of the input: no
// tile, no piece, and its rows still come out right (the bias alone).
TEST(Cluster, RowsReadingOnlyPaddingNeedNoInput) {
  const Model model = over_padded_model();
  const LayerRegions regions = spatial_regions(model, 4, 1);
  const int conv = model.find("conv_pad2");
  const NodeProgram program = build_node_program(model, regions, 1);
  EXPECT_EQ(program.layers[conv].out, (Region{0, 4, 0, 2, 0, 9}));  // rows 0 and 1 of 10
  EXPECT_TRUE(program.layers[conv].inputs[0].needed.empty());
  EXPECT_TRUE(program.layers[conv].inputs[0].receives.empty());
  expect_cluster_equals_one_node(model, regions, Kernels::fast, "fast kernels");
  expect_cluster_equals_one_node(model, regions, Kernels::reference, "reference kernels");
}

}  // namespace
}  // namespace splitinfer
