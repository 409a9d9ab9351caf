#include "node_program.hpp"

namespace splitinfer {

std::string allocation_purpose(const std::string& node_label, const Layer& layer,
                               const char* what) {
  return node_label + ", layer '" + layer.name + "' (" + op_name(layer.op) + "): " + what;
}

uint64_t replay_memory(const Model& model, const NodeProgram& program, ArenaLayout& layout,
                       const std::string& node_label) {
  std::vector<uint64_t> offsets(program.buffer_bytes.size());
  for (size_t i = 0; i < model.layers.size(); ++i) {
    const Layer& layer = model.layers[i];
    const LayerStep& step = program.layers[i];
    std::vector<uint64_t> transient;
    for (const InputSlot& input : step.inputs)
      if (!input.needed.empty() && !input.direct)
        transient.push_back(layout.allocate(input.needed.bytes(),
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
    for (uint64_t offset : transient) layout.release(offset);
    for (int buffer : step.released_after) layout.release(offsets[buffer]);
  }
  return layout.peak_bytes();
}

}  // namespace splitinfer
