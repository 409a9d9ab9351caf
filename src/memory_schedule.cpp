#include "memory_schedule.hpp"

#include <algorithm>

#include "error.hpp"
#include "tensor.hpp"

namespace splitinfer {
namespace {

bool is_unary_elementwise(Op op) {
  switch (op) {
    case Op::batchnorm:
    case Op::relu:
    case Op::relu6:
    case Op::leaky_relu:
    case Op::sigmoid:
    case Op::silu:
    case Op::hardswish:
    case Op::hardsigmoid:
      return true;
    default:
      return false;
  }
}

uint64_t tensor_bytes(const Shape& shape) {
  return static_cast<uint64_t>(shape.elements()) * sizeof(float);
}

}  // namespace

MemorySchedule schedule_memory(const Model& model) {
  MemorySchedule schedule;
  const int count = static_cast<int>(model.layers.size());
  schedule.layers.resize(count);
  std::vector<int> last_consumer(count, -1);  // per layer: the last layer reading its output
  for (int i = 0; i < count; ++i)
    for (int input : model.layers[i].inputs)
      last_consumer[input] = std::max(last_consumer[input], i);

  // Whether anything after layer i still reads `buffer` (through any of the
  // outputs placed in it so far), or it holds the model's output.
  const auto read_after = [&](int buffer, int i) {
    for (int v = 0; v < i; ++v)
      if (schedule.layers[v].output_buffer == buffer && (last_consumer[v] > i || v == model.output))
        return true;
    return false;
  };

  for (int i = 0; i < count; ++i) {
    const Layer& layer = model.layers[i];
    LayerMemory& memory = schedule.layers[i];
    if (layer.op == Op::flatten ||
        layer.op == Op::slice) {  // views: batch 1 makes a channel range contiguous
      const LayerMemory& source = schedule.layers[layer.inputs[0]];
      memory.output_buffer = source.output_buffer;
      memory.output_offset = source.output_offset;
      if (layer.op == Op::slice)
        memory.output_offset +=
            tensor_bytes(layer.output_shape) / layer.output_shape.c * layer.slice_start;
      continue;
    }
    // An element-wise op writes over an input of its own size that nothing
    // reads afterwards, as a device would, instead of taking new memory.
    const bool elementwise =
        is_unary_elementwise(layer.op) || layer.op == Op::add || layer.op == Op::mul;
    for (int input : layer.inputs) {
      if (!elementwise) break;
      const LayerMemory& source = schedule.layers[input];
      if (model.layers[input].output_shape == layer.output_shape && source.output_offset == 0 &&
          schedule.buffer_bytes[source.output_buffer] == tensor_bytes(layer.output_shape) &&
          !read_after(source.output_buffer, i)) {
        memory.output_buffer = source.output_buffer;
        break;
      }
    }
    if (memory.output_buffer < 0) {
      memory.allocates_output = true;
      memory.output_buffer = static_cast<int>(schedule.buffer_bytes.size());
      schedule.buffer_bytes.push_back(tensor_bytes(layer.output_shape));
    }
    memory.weight_bytes = layer.weight_bytes();
    if (layer.op == Op::conv2d)
      memory.scratch_bytes = conv2d_scratch_bytes(
          layer.conv, model.layers[layer.inputs[0]].output_shape, layer.output_shape);
  }

  // Each buffer is released after the last layer that produces into or reads
  // from it; the one holding the model's output is kept to the end.
  std::vector<int> release_at(schedule.buffer_bytes.size(), -1);
  for (int v = 0; v < count; ++v) {
    int& at = release_at[schedule.layers[v].output_buffer];
    if (v == model.output || at == count)
      at = count;
    else
      at = std::max({at, v, last_consumer[v]});
  }
  for (size_t buffer = 0; buffer < release_at.size(); ++buffer)
    if (release_at[buffer] < count)
      schedule.layers[release_at[buffer]].released_after.push_back(static_cast<int>(buffer));
  return schedule;
}

std::string allocation_purpose(const std::string& node_label, const Layer& layer,
                               const char* what) {
  return node_label + ", layer '" + layer.name + "' (" + op_name(layer.op) + "): " + what;
}

uint64_t replay_memory(const Model& model, const MemorySchedule& schedule, ArenaLayout& layout,
                       const std::string& node_label) {
  std::vector<uint64_t> offsets(schedule.buffer_bytes.size());
  for (size_t i = 0; i < model.layers.size(); ++i) {
    const Layer& layer = model.layers[i];
    const LayerMemory& memory = schedule.layers[i];
    if (memory.allocates_output)
      offsets[memory.output_buffer] =
          layout.allocate(schedule.buffer_bytes[memory.output_buffer],
                          allocation_purpose(node_label, layer, "output activation"));
    std::vector<uint64_t> transient;
    if (memory.weight_bytes)
      transient.push_back(
          layout.allocate(memory.weight_bytes, allocation_purpose(node_label, layer, "weights")));
    if (memory.scratch_bytes)
      transient.push_back(
          layout.allocate(memory.scratch_bytes, allocation_purpose(node_label, layer, "scratch")));
    for (uint64_t offset : transient) layout.release(offset);
    for (int buffer : memory.released_after) layout.release(offsets[buffer]);
  }
  return layout.peak_bytes();
}

}  // namespace splitinfer
