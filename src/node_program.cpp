#include "node_program.hpp"

namespace splitinfer {

std::string allocation_purpose(const std::string& node_label, const Layer& layer,
                               const char* what) {
  return node_label + ", layer '" + layer.name + "' (" + op_name(layer.op) + "): " + what;
}

uint64_t replay_memory(const Model& model, const NodeProgram& program, ArenaLayout& layout,
                       const std::string& node_label, std::vector<uint64_t>* layer_footprints) {
  std::vector<uint64_t> offsets(program.buffer_bytes.size());
  if (layer_footprints) layer_footprints->clear();
  for (size_t i = 0; i < model.layers.size(); ++i) {
    const Layer& layer = model.layers[i];
    const LayerStep& step = program.layers[i];
    std::vector<uint64_t> transient;
    for (const InputSlot& input : step.inputs)
      if (!input.needed.empty() && !input.direct)
        transient.push_back(layout.allocate(input.needed.bytes(input.element_bytes),
                                            allocation_purpose(node_label, layer, "input tile")));
    if (!step.out.empty()) {
      if (step.allocates_out)
        offsets[step.out_buffer] =
            layout.allocate(program.buffer_bytes[step.out_buffer],
                            allocation_purpose(node_label, layer, "output activation"));
      if (step.weight_bytes)
        transient.push_back(
            layout.allocate(step.weight_bytes, allocation_purpose(node_label, layer, "weights")));
      if (step.scratch_bytes)
        transient.push_back(
            layout.allocate(step.scratch_bytes, allocation_purpose(node_label, layer, "scratch")));
    }
    if (layer_footprints) layer_footprints->push_back(layout.high_water());
    for (uint64_t offset : transient) layout.release(offset);
    for (int buffer : step.released_after) layout.release(offsets[buffer]);
  }
  return layout.peak_bytes();
}

std::vector<LayerTraffic> layer_traffic(const Model& model, const NodeProgram& program) {
  std::vector<LayerTraffic> traffic(model.layers.size());
  for (size_t i = 0; i < model.layers.size(); ++i) {
    const LayerStep& step = program.layers[i];
    for (const InputSlot& input : step.inputs) {
      for (const Transfer& piece : input.sends)
        traffic[i].sent += piece.region.bytes(input.element_bytes);
      for (const Transfer& piece : input.receives)
        traffic[i].received += piece.region.bytes(input.element_bytes);
    }
    if (step.to_coordinator || static_cast<int>(i) == model.output)
      traffic[i].sent += step.out.bytes(step.element_bytes);
  }
  return traffic;
}

}  // namespace splitinfer
