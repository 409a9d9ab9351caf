#include "executor.hpp"

#include <cstring>

#include "error.hpp"
#include "ops/activation.hpp"
#include "ops/batchnorm.hpp"
#include "ops/channels.hpp"
#include "ops/conv2d.hpp"
#include "ops/elementwise.hpp"
#include "ops/linear.hpp"
#include "ops/pool.hpp"
#include "ops/upsample.hpp"

namespace splitinfer {

Executor::Executor(const Model& model, std::string node_label, Kernels kernels)
    : model_(model),
      node_label_(std::move(node_label)),
      kernels_(kernels),
      schedule_(schedule_memory(model)) {}

void Executor::run(Arena& arena, const std::function<void(Tensor&)>& fill_input,
                   const std::function<void(int, const Tensor&)>& on_layer,
                   const std::function<void(const Tensor&)>& on_output) const {
  std::vector<char*> buffers(schedule_.buffer_bytes.size(), nullptr);
  std::vector<Tensor> outputs(model_.layers.size());
  for (size_t i = 0; i < model_.layers.size(); ++i) {
    const Layer& layer = model_.layers[i];
    const LayerMemory& memory = schedule_.layers[i];
    if (memory.allocates_output)
      buffers[memory.output_buffer] = static_cast<char*>(
          arena.allocate(schedule_.buffer_bytes[memory.output_buffer],
                         allocation_purpose(node_label_, layer, "output activation")));
    Tensor& out = outputs[i];
    out.shape = layer.output_shape;
    out.data = buffers[memory.output_buffer] + memory.output_offset;

    // Stream this layer's weights from flash into RAM.
    std::map<std::string, const float*> weights;
    char* weight_memory = nullptr;
    if (memory.weight_bytes) {
      weight_memory = static_cast<char*>(
          arena.allocate(memory.weight_bytes, allocation_purpose(node_label_, layer, "weights")));
      char* cursor = weight_memory;
      for (const auto& [blob_name, blob] : layer.weights) {
        std::memcpy(cursor, blob.values.data(), blob.bytes());
        weights[blob_name] = reinterpret_cast<const float*>(cursor);
        cursor += blob.bytes();
      }
    }
    float* scratch = nullptr;
    if (memory.scratch_bytes)
      scratch = static_cast<float*>(
          arena.allocate(memory.scratch_bytes, allocation_purpose(node_label_, layer, "scratch")));

    if (layer.op == Op::input) {
      fill_input(out);
    } else {
      std::vector<const Tensor*> inputs;
      for (int input : layer.inputs) inputs.push_back(&outputs[input]);
      compute(layer, inputs, out, weights, scratch);
    }
    if (scratch) arena.release(scratch);
    if (weight_memory) arena.release(weight_memory);
    if (on_layer) on_layer(static_cast<int>(i), out);
    for (int buffer : memory.released_after) arena.release(buffers[buffer]);
  }
  on_output(outputs[model_.output]);
  arena.release(buffers[schedule_.layers[model_.output].output_buffer]);
}

void Executor::compute(const Layer& layer, const std::vector<const Tensor*>& inputs, Tensor& out,
                       const std::map<std::string, const float*>& weights, float* scratch) const {
  const auto weight = [&](const char* blob_name) -> const float* {
    auto found = weights.find(blob_name);
    return found == weights.end() ? nullptr : found->second;
  };
  const Tensor& in = *inputs[0];
  const Placement in_at = Placement::whole(in.shape);
  const Placement out_at = Placement::whole(out.shape);
  const bool reference = kernels_ == Kernels::reference;
  switch (layer.op) {
    case Op::input:
      break;
    case Op::conv2d:
      if (reference)
        conv2d_reference(layer.conv, in, in_at, weight("weight"), weight("bias"), out, out_at);
      else
        conv2d(layer.conv, in, in_at, weight("weight"), weight("bias"), out, out_at, scratch);
      break;
    case Op::linear:
      if (reference)
        linear_reference(in, weight("weight"), weight("bias"), out);
      else
        linear(in, weight("weight"), weight("bias"), out);
      break;
    case Op::batchnorm:
      batchnorm({weight("gamma"), weight("beta"), weight("running_mean"), weight("running_var"),
                 layer.eps},
                in, out);
      break;
    case Op::relu:
      activation(Activation::relu, 0, in, out);
      break;
    case Op::relu6:
      activation(Activation::relu6, 0, in, out);
      break;
    case Op::leaky_relu:
      activation(Activation::leaky_relu, layer.negative_slope, in, out);
      break;
    case Op::sigmoid:
      activation(Activation::sigmoid, 0, in, out);
      break;
    case Op::silu:
      activation(Activation::silu, 0, in, out);
      break;
    case Op::hardswish:
      activation(Activation::hardswish, 0, in, out);
      break;
    case Op::hardsigmoid:
      activation(Activation::hardsigmoid, 0, in, out);
      break;
    case Op::add:
      add(in, *inputs[1], out);
      break;
    case Op::mul:
      mul(in, *inputs[1], out);
      break;
    case Op::concat:
      concat(inputs, out);
      break;
    case Op::channel_shuffle:
      channel_shuffle(in, layer.shuffle_groups, out);
      break;
    case Op::slice:
    case Op::flatten:
      break;  // views: the schedule placed the output inside the input
    case Op::maxpool:
      maxpool(layer.pool, in, in_at, out, out_at);
      break;
    case Op::avgpool:
      avgpool(layer.pool, in, in_at, out, out_at);
      break;
    case Op::global_avgpool:
      global_avgpool(in, out);
      break;
    case Op::upsample_nearest:
      upsample_nearest(layer.scale_h, layer.scale_w, in, in_at, out, out_at);
      break;
  }
}

}  // namespace splitinfer
