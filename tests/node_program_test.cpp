// The memory schedule: what the planner predicts by replaying it over an
// ArenaLayout must be what the Executor measures over a real Arena, byte for
// byte; in-place and view layers take no memory; a cap one byte below the
// predicted peak fails on the layer that reaches it. And the Executor, with
// its buffers shared and reused, computes what the kernels compute on buffers
// of their own.
#include "memory_schedule.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <ostream>
#include <string>
#include <vector>

#include "error.hpp"
#include "executor.hpp"
#include "format.hpp"
#include "ops/activation.hpp"
#include "ops/batchnorm.hpp"
#include "ops/channels.hpp"
#include "ops/conv2d.hpp"
#include "ops/elementwise.hpp"
#include "ops/linear.hpp"
#include "ops/pool.hpp"
#include "ops/upsample.hpp"
#include "test_util.hpp"

namespace splitinfer {
namespace {

using testing::nchw;
using testing::OwnedTensor;

const char* const kNode = "node 0";

// ---- building models by hand ----

Conv2dParams conv_params(int64_t kernel, int64_t stride, int64_t pad, int64_t groups = 1) {
  Conv2dParams p;
  p.kernel_h = p.kernel_w = kernel;
  p.stride_h = p.stride_w = stride;
  p.pad_h = p.pad_w = pad;
  p.groups = groups;
  return p;
}

PoolParams pool_params(int64_t kernel, int64_t stride, int64_t pad, bool ceil_mode = false) {
  PoolParams p;
  p.kernel_h = p.kernel_w = kernel;
  p.stride_h = p.stride_w = stride;
  p.pad_h = p.pad_w = pad;
  p.ceil_mode = ceil_mode;
  return p;
}

// Appends layers with their output shapes and seeded random weights;
// finish() validates the model with its weights, as loading a file does.
class ModelBuilder {
 public:
  explicit ModelBuilder(const Shape& input_shape) {
    model_.name = "hand-built";
    model_.meta.input_shape = input_shape;
    Layer input;
    input.name = "input";
    input.output_shape = input_shape;
    model_.layers.push_back(input);
  }

  const Shape& shape(const std::string& name) const {
    const int index = model_.find(name);
    EXPECT_GE(index, 0) << name;
    return model_.layers.at(index).output_shape;
  }

  void unary(const std::string& name, Op op, const std::string& input) {
    add(name, op, {input}, shape(input));
  }

  void conv(const std::string& name, const std::string& input, int64_t out_c, const Conv2dParams& p,
            bool bias = true) {
    const Shape in = shape(input);
    Layer& layer =
        add(name, Op::conv2d, {input},
            nchw(1, out_c, window_output_size(in.h, p.kernel_h, p.stride_h, p.pad_h, p.dilation_h),
                 window_output_size(in.w, p.kernel_w, p.stride_w, p.pad_w, p.dilation_w)));
    layer.conv = p;
    layer.weights["weight"] = random_blob({out_c, in.c / p.groups, p.kernel_h, p.kernel_w});
    if (bias) layer.weights["bias"] = random_blob({out_c});
  }

  void pool(const std::string& name, Op op, const std::string& input, const PoolParams& p) {
    const Shape in = shape(input);
    Layer& layer =
        add(name, op, {input},
            nchw(1, in.c, pool_output_size(in.h, p.kernel_h, p.stride_h, p.pad_h, 1, p.ceil_mode),
                 pool_output_size(in.w, p.kernel_w, p.stride_w, p.pad_w, 1, p.ceil_mode)));
    layer.pool = p;
  }

  void global_avgpool(const std::string& name, const std::string& input) {
    add(name, Op::global_avgpool, {input}, nchw(1, shape(input).c, 1, 1));
  }

  void batchnorm(const std::string& name, const std::string& input) {
    const int64_t channels = shape(input).c;
    Layer& layer = add(name, Op::batchnorm, {input}, shape(input));
    layer.weights["gamma"] = random_blob({channels}, 0.5f, 1.5f);
    layer.weights["beta"] = random_blob({channels});
    layer.weights["running_mean"] = random_blob({channels});
    layer.weights["running_var"] = random_blob({channels}, 0.5f, 2.0f);
  }

  void binary(const std::string& name, Op op, const std::string& a, const std::string& b) {
    const Shape shape_a = shape(a), shape_b = shape(b);
    add(name, op, {a, b}, shape_a.elements() >= shape_b.elements() ? shape_a : shape_b);
  }

  void concat(const std::string& name, const std::vector<std::string>& inputs) {
    Shape out = shape(inputs[0]);
    out.c = 0;
    for (const std::string& input : inputs) out.c += shape(input).c;
    add(name, Op::concat, inputs, out);
  }

  void slice(const std::string& name, const std::string& input, int64_t start, int64_t stop) {
    Shape out = shape(input);
    out.c = stop - start;
    Layer& layer = add(name, Op::slice, {input}, out);
    layer.slice_start = start;
    layer.slice_stop = stop;
  }

  void channel_shuffle(const std::string& name, const std::string& input, int64_t groups) {
    add(name, Op::channel_shuffle, {input}, shape(input)).shuffle_groups = groups;
  }

  void upsample(const std::string& name, const std::string& input, int64_t scale) {
    const Shape in = shape(input);
    Layer& layer =
        add(name, Op::upsample_nearest, {input}, nchw(1, in.c, in.h * scale, in.w * scale));
    layer.scale_h = layer.scale_w = scale;
  }

  void flatten(const std::string& name, const std::string& input) {
    add(name, Op::flatten, {input}, Shape{1, shape(input).elements(), 1, 1, 2});
  }

  void linear(const std::string& name, const std::string& input, int64_t outputs) {
    const int64_t inputs = shape(input).c;
    Layer& layer = add(name, Op::linear, {input}, Shape{1, outputs, 1, 1, 2});
    layer.weights["weight"] = random_blob({outputs, inputs});
    layer.weights["bias"] = random_blob({outputs});
  }

  Model finish(const std::string& output) {
    model_.output = model_.find(output);
    validate(model_, true);
    return std::move(model_);
  }

 private:
  Layer& add(const std::string& name, Op op, const std::vector<std::string>& inputs,
             const Shape& out) {
    Layer layer;
    layer.name = name;
    layer.op = op;
    layer.input_names = inputs;
    layer.output_shape = out;
    model_.layers.push_back(std::move(layer));
    return model_.layers.back();
  }

  Blob random_blob(const std::vector<int64_t>& dims, float low = -1.0f, float high = 1.0f) {
    Blob blob;
    blob.dims = dims;
    int64_t count = 1;
    for (int64_t extent : dims) count *= extent;
    blob.values = testing::random_values(static_cast<size_t>(count), ++seed_, low, high);
    return blob;
  }

  Model model_;
  uint32_t seed_ = 100;
};

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
        channel_shuffle(in(0), layer.shuffle_groups, out.tensor);
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
    }
    outputs.push_back(std::move(out));
  }
  return outputs;
}

// ---- running the Executor over a real Arena ----

struct ExecutorRun {
  std::vector<std::vector<float>> layer_outputs;  // as on_layer saw them
  std::vector<float> output;
  uint64_t peak_bytes = 0;
  uint64_t bytes_in_use_after = 0;
};

ExecutorRun run_executor(const Model& model, Kernels kernels, const std::vector<float>& input,
                         uint64_t cap = ArenaLayout::kUnlimited) {
  const Executor executor(model, kNode, kernels);
  Arena arena(cap);
  ExecutorRun run;
  run.layer_outputs.resize(model.layers.size());
  executor.run(
      arena,
      [&](Tensor& tensor) {
        ASSERT_EQ(tensor.shape.elements(), static_cast<int64_t>(input.size()));
        std::copy(input.begin(), input.end(), tensor.f32());
      },
      [&](int index, const Tensor& tensor) {
        run.layer_outputs.at(index).assign(tensor.f32(), tensor.f32() + tensor.shape.elements());
      },
      [&](const Tensor& tensor) {
        run.output.assign(tensor.f32(), tensor.f32() + tensor.shape.elements());
      });
  run.peak_bytes = arena.layout().peak_bytes();
  run.bytes_in_use_after = arena.layout().bytes_in_use();
  return run;
}

uint64_t predicted_peak(const Model& model) {
  ArenaLayout layout;
  return replay_memory(model, schedule_memory(model), layout, kNode);
}

std::vector<float> model_input(const Model& model) {
  return testing::random_values(static_cast<size_t>(model.layers[0].output_shape.elements()), 9,
                                -2.0f, 2.0f);
}

// ---- every graph ----

struct GraphCase {
  const char* name;
  Model (*build)();
};

void PrintTo(const GraphCase& c, std::ostream* os) { *os << c.name; }

class EveryGraph : public ::testing::TestWithParam<GraphCase> {};

TEST_P(EveryGraph, PredictedPeakEqualsMeasuredPeak) {
  const Model model = GetParam().build();
  const uint64_t predicted = predicted_peak(model);
  EXPECT_GT(predicted, 0u);
  EXPECT_EQ(run_executor(model, Kernels::fast, model_input(model)).peak_bytes, predicted);
  EXPECT_EQ(run_executor(model, Kernels::reference, model_input(model)).peak_bytes, predicted);
}

TEST_P(EveryGraph, ArenaIsEmptyAfterRun) {
  const Model model = GetParam().build();
  EXPECT_EQ(run_executor(model, Kernels::fast, model_input(model)).bytes_in_use_after, 0u);
  EXPECT_EQ(run_executor(model, Kernels::reference, model_input(model)).bytes_in_use_after, 0u);
}

TEST_P(EveryGraph, ReplayLeavesOnlyTheOutputBuffer) {
  const Model model = GetParam().build();
  const MemorySchedule schedule = schedule_memory(model);
  ArenaLayout layout;
  replay_memory(model, schedule, layout, kNode);
  const int output_buffer = schedule.layers[model.output].output_buffer;
  EXPECT_EQ(layout.bytes_in_use(), ArenaLayout::rounded(schedule.buffer_bytes[output_buffer]));
}

TEST_P(EveryGraph, ReferenceExecutorEqualsKernelsOnSeparateBuffersBitForBit) {
  const Model model = GetParam().build();
  const std::vector<float> input = model_input(model);
  const std::vector<OwnedTensor> expected = evaluate_separately(model, input);
  const ExecutorRun run = run_executor(model, Kernels::reference, input);
  for (size_t i = 0; i < model.layers.size(); ++i)
    EXPECT_TRUE(testing::bitwise_equal(expected[i].values, run.layer_outputs[i]))
        << "layer '" << model.layers[i].name << "'";
  EXPECT_TRUE(testing::bitwise_equal(expected[model.output].values, run.output));
}

TEST_P(EveryGraph, FastAndReferenceExecutorsAgreeWithin1e5) {
  const Model model = GetParam().build();
  const std::vector<float> input = model_input(model);
  const ExecutorRun reference = run_executor(model, Kernels::reference, input);
  const ExecutorRun fast = run_executor(model, Kernels::fast, input);
  for (size_t i = 0; i < model.layers.size(); ++i)
    EXPECT_TRUE(testing::close_relative(reference.layer_outputs[i], fast.layer_outputs[i], 1e-5f))
        << "layer '" << model.layers[i].name << "'";
  EXPECT_TRUE(testing::close_relative(reference.output, fast.output, 1e-5f));
}

TEST_P(EveryGraph, CapOneByteBelowThePeakFailsNamingTheLayer) {
  const Model model = GetParam().build();
  const MemorySchedule schedule = schedule_memory(model);
  const uint64_t peak = predicted_peak(model);

  ArenaLayout exact(peak);
  EXPECT_EQ(replay_memory(model, schedule, exact, kNode), peak);
  EXPECT_NO_THROW(run_executor(model, Kernels::fast, model_input(model), peak));

  std::string replay_message, executor_message;
  ArenaLayout short_by_one(peak - 1);
  try {
    replay_memory(model, schedule, short_by_one, kNode);
  } catch (const Error& error) {
    replay_message = error.what();
  }
  ASSERT_FALSE(replay_message.empty()) << "replay_memory fitted in " << peak - 1 << " bytes";
  EXPECT_NE(replay_message.find(kNode), std::string::npos) << replay_message;
  EXPECT_NE(replay_message.find(", layer '"), std::string::npos) << replay_message;
  EXPECT_NE(replay_message.find(format_bytes(peak - 1)), std::string::npos) << replay_message;
  try {
    run_executor(model, Kernels::fast, model_input(model), peak - 1);
  } catch (const Error& error) {
    executor_message = error.what();
  }
  // The Executor fails at the same allocation, with the same words.
  EXPECT_EQ(executor_message, replay_message);
}

INSTANTIATE_TEST_SUITE_P(Graphs, EveryGraph,
                         ::testing::Values(GraphCase{"chain", chain_model},
                                           GraphCase{"residual", residual_model},
                                           GraphCase{"slice_concat", slice_concat_model},
                                           GraphCase{"classifier", classifier_model},
                                           GraphCase{"squeeze_excite", squeeze_excite_model}),
                         [](const ::testing::TestParamInfo<GraphCase>& info) {
                           return std::string(info.param.name);
                         });

// ---- particular graphs ----

TEST(MemorySchedule, ChainPeakByHand) {
  // Offsets in bytes, first fit, 64-byte blocks:
  //   input  1x3x8x8 = 768                         -> [0, 768)
  //   conv1  output 1x4x8x8 = 1024                 -> [768, 1792)
  //          weights 4*3*3*3*4 + 4*4 = 448         -> [1792, 2240)
  //          scratch 27 x 64 floats = 6912         -> [2240, 9152)    peak 9152
  //          then weights, scratch and input are released
  //   relu1  in place in conv1's buffer
  //   conv2  output 1x2x8x8 = 512                  -> [0, 512)
  //          weights 2*4*3*3*4 + 2*4 = 296 -> 320  -> [1792, 2112)  ([512, 768) is too small)
  //          scratch 36 x 64 floats = 9216         -> [2112, 11328)   peak 11328
  const Model model = chain_model();
  EXPECT_EQ(predicted_peak(model), 11328u);
  EXPECT_EQ(run_executor(model, Kernels::fast, model_input(model)).peak_bytes, 11328u);

  ArenaLayout short_by_one(11327);
  try {
    replay_memory(model, schedule_memory(model), short_by_one, kNode);
    FAIL() << "no Error thrown";
  } catch (const Error& error) {
    const std::string message = error.what();
    EXPECT_NE(message.find("node 0, layer 'conv2' (conv2d): scratch"), std::string::npos)
        << message;
  }
}

TEST(MemorySchedule, ReluAfterConvWorksInPlace) {
  const Model model = chain_model();
  const MemorySchedule schedule = schedule_memory(model);
  const LayerMemory& conv1 = schedule.layers[model.find("conv1")];
  const LayerMemory& relu1 = schedule.layers[model.find("relu1")];
  EXPECT_TRUE(conv1.allocates_output);
  EXPECT_FALSE(relu1.allocates_output);
  EXPECT_EQ(relu1.output_buffer, conv1.output_buffer);
  EXPECT_EQ(relu1.weight_bytes + relu1.scratch_bytes, 0u);
  // input, conv1 (shared with relu1), conv2
  EXPECT_EQ(schedule.buffer_bytes.size(), 3u);
}

TEST(MemorySchedule, AnInputReadAgainLaterIsNotOverwritten) {
  const Model model = residual_model();
  const MemorySchedule schedule = schedule_memory(model);
  const auto memory = [&](const char* name) -> const LayerMemory& {
    return schedule.layers[model.find(name)];
  };
  // relu1 and relu2 take over their input; add1 writes into conv2's buffer.
  EXPECT_EQ(memory("relu1").output_buffer, memory("conv1").output_buffer);
  EXPECT_EQ(memory("add1").output_buffer, memory("conv2").output_buffer);
  EXPECT_EQ(memory("relu2").output_buffer, memory("conv2").output_buffer);
  EXPECT_FALSE(memory("add1").allocates_output);
  // conv3 is read again by add2, so relu3 needs a buffer of its own...
  EXPECT_TRUE(memory("relu3").allocates_output);
  EXPECT_NE(memory("relu3").output_buffer, memory("conv3").output_buffer);
  // ...and add2, the last reader, writes over conv3.
  EXPECT_EQ(memory("add2").output_buffer, memory("conv3").output_buffer);
}

TEST(MemorySchedule, SlicesAndFlattenAreViews) {
  {
    const Model model = slice_concat_model();
    const MemorySchedule schedule = schedule_memory(model);
    const auto memory = [&](const char* name) -> const LayerMemory& {
      return schedule.layers[model.find(name)];
    };
    EXPECT_FALSE(memory("slice_a").allocates_output);
    EXPECT_FALSE(memory("slice_b").allocates_output);
    EXPECT_EQ(memory("slice_a").output_buffer, memory("conv0").output_buffer);
    EXPECT_EQ(memory("slice_b").output_buffer, memory("conv0").output_buffer);
    EXPECT_EQ(memory("slice_a").output_offset, 0u);
    EXPECT_EQ(memory("slice_b").output_offset, 3u * 6 * 6 * sizeof(float));  // 3 channels of 6x6
    // hardswish of a slice cannot work in place: the slice is part of a larger buffer.
    EXPECT_TRUE(memory("hardswish_b").allocates_output);
  }
  {
    const Model model = classifier_model();
    const MemorySchedule schedule = schedule_memory(model);
    const LayerMemory& flatten = schedule.layers[model.find("flatten")];
    EXPECT_FALSE(flatten.allocates_output);
    EXPECT_EQ(flatten.output_buffer, schedule.layers[model.find("avgpool")].output_buffer);
    EXPECT_EQ(flatten.output_offset, 0u);
  }
}

TEST(MemorySchedule, TheGateDoesNotTakeOverTheMapItScales) {
  const Model model = squeeze_excite_model();
  const MemorySchedule schedule = schedule_memory(model);
  const auto memory = [&](const char* name) -> const LayerMemory& {
    return schedule.layers[model.find(name)];
  };
  // mul(gate [1,8,1,1], silu [1,8,8,8]) writes into silu's buffer (conv's, through bn and silu).
  EXPECT_EQ(memory("excite").output_buffer, memory("conv").output_buffer);
  EXPECT_FALSE(memory("excite").allocates_output);
  EXPECT_EQ(memory("bn").weight_bytes, 4u * 8 * sizeof(float));
}

}  // namespace
}  // namespace splitinfer
