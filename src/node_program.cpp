#include "node_program.hpp"

#include <climits>
#include <optional>
#include <utility>

namespace splitinfer {

std::string allocation_purpose(const std::string& node_label, const Layer& layer,
                               const char* what) {
  return node_label + ", layer '" + layer.name + "' (" + op_name(layer.op) + "): " + what;
}

std::vector<Region> computed_parts(const NodeProgram& program, int layer_index) {
  const LayerStep& step = program.layers[layer_index];
  std::vector<Region> parts;
  if (step.stream < 0) {
    if (!step.out.empty()) parts.push_back(step.out);
    return parts;
  }
  const Stream& stream = program.streams[step.stream];
  for (const std::vector<PartStep>& part : stream.parts)
    if (!part[layer_index - stream.first].out.empty())
      parts.push_back(part[layer_index - stream.first].out);
  return parts;
}

int64_t part_offset(const Region& out, const Region& region, size_t element_bytes) {
  if (out.y0 != region.y0 || out.y1 != region.y1 || out.x0 != region.x0 || out.x1 != region.x1 ||
      out.c0 < region.c0 || out.c1 > region.c1)
    return -1;
  return (out.c0 - region.c0) * (region.y1 - region.y0) * (region.x1 - region.x0) *
         static_cast<int64_t>(element_bytes);
}

const Region& held_region(const NodeProgram& program, const Stream& stream, size_t part,
                          int layer_index, int slot, int source) {
  if (source >= stream.first) return stream.parts[part][source - stream.first].out;
  return program.layers[layer_index].inputs[slot].needed;  // a tile, or a view of the stored region
}

namespace {

// A stream's allocations, as Executor::run_stream makes them: the inputs from
// outside the run (whole), `last`'s buffer, then part by part and layer by
// layer the input tiles a part does not find as they are, the part's output
// (`last`'s goes straight into its buffer when the part is all of it),
// weights and scratch; then the releases.
void replay_stream(const Model& model, const NodeProgram& program, const Stream& stream,
                   ArenaLayout& layout, const std::string& node_label,
                   std::vector<uint64_t>& offsets, std::vector<uint64_t>* layer_footprints) {
  const int length = stream.last - stream.first + 1;
  std::vector<uint64_t> outside;
  for (int j = stream.first; j <= stream.last; ++j)
    for (size_t slot = 0; slot < model.layers[j].inputs.size(); ++slot) {
      const InputSlot& input = program.layers[j].inputs[slot];
      if (model.layers[j].inputs[slot] < stream.first && !input.needed.empty() && !input.direct)
        outside.push_back(
            layout.allocate(input.needed.bytes(input.element_bytes),
                            allocation_purpose(node_label, model.layers[j], "input tile")));
    }
  if (stream.keep_weights)
    for (int j = stream.first; j <= stream.last; ++j)
      if (program.layers[j].weight_bytes)
        outside.push_back(layout.allocate(
            program.layers[j].weight_bytes,
            allocation_purpose(node_label, model.layers[j], "weights kept for the stream")));
  const LayerStep& last = program.layers[stream.last];
  if (last.allocates_out)
    offsets[last.out_buffer] = layout.allocate(
        program.buffer_bytes[last.out_buffer],
        allocation_purpose(node_label, model.layers[stream.last], "output activation"));
  std::vector<uint64_t> footprints(length, 0);
  for (size_t p = 0; p < stream.parts.size(); ++p) {
    std::vector<uint64_t> part_buffers(length, ArenaLayout::kUnlimited);
    for (int j = stream.first; j <= stream.last; ++j) {
      const Layer& layer = model.layers[j];
      const LayerStep& step = program.layers[j];
      const PartStep& part = stream.parts[p][j - stream.first];
      if (part.out.empty()) continue;
      std::vector<uint64_t> transient;
      for (size_t slot = 0; slot < layer.inputs.size(); ++slot) {
        const Region& needed = part.needed[slot];
        if (needed.empty() || needed == held_region(program, stream, p, j, static_cast<int>(slot),
                                                    layer.inputs[slot]))
          continue;
        transient.push_back(layout.allocate(needed.bytes(step.inputs[slot].element_bytes),
                                            allocation_purpose(node_label, layer, "input tile")));
      }
      const bool into_buffer =
          j == stream.last && part_offset(part.out, step.out, step.element_bytes) >= 0;
      if (!into_buffer)
        part_buffers[j - stream.first] = layout.allocate(
            part.out.bytes(step.element_bytes), allocation_purpose(node_label, layer, "part"));
      if (part.weight_bytes)
        transient.push_back(
            layout.allocate(part.weight_bytes, allocation_purpose(node_label, layer, "weights")));
      if (part.scratch_bytes)
        transient.push_back(
            layout.allocate(part.scratch_bytes, allocation_purpose(node_label, layer, "scratch")));
      footprints[j - stream.first] = std::max(footprints[j - stream.first], layout.high_water());
      for (uint64_t offset : transient) layout.release(offset);
      if (j == stream.last && !into_buffer) layout.release(part_buffers[length - 1]);
      for (int m = stream.first; m < j; ++m)
        if (stream.last_reader[m - stream.first] == j &&
            part_buffers[m - stream.first] != ArenaLayout::kUnlimited)
          layout.release(part_buffers[m - stream.first]);
    }
  }
  for (uint64_t offset : outside) layout.release(offset);
  for (int j = stream.first; j <= stream.last; ++j) {
    if (layer_footprints) layer_footprints->push_back(footprints[j - stream.first]);
    for (int buffer : program.layers[j].released_after) layout.release(offsets[buffer]);
  }
}

}  // namespace

uint64_t replay_memory(const Model& model, const NodeProgram& program, ArenaLayout& layout,
                       const std::string& node_label, std::vector<uint64_t>* layer_footprints) {
  std::vector<uint64_t> offsets(program.buffer_bytes.size());
  if (layer_footprints) layer_footprints->clear();
  for (size_t i = 0; i < model.layers.size(); ++i) {
    const Layer& layer = model.layers[i];
    const LayerStep& step = program.layers[i];
    if (step.stream >= 0) {
      const Stream& stream = program.streams[step.stream];
      if (static_cast<int>(i) == stream.first)
        replay_stream(model, program, stream, layout, node_label, offsets, layer_footprints);
      continue;
    }
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

std::vector<Message> node_messages(const Model& model, const NodeProgram& program) {
  std::vector<Message> messages;
  const int node = program.node;
  for (size_t i = 0; i < model.layers.size(); ++i) {
    const int layer = static_cast<int>(i);
    const LayerStep& step = program.layers[i];
    for (size_t slot = 0; slot < step.inputs.size(); ++slot) {
      const InputSlot& input = step.inputs[slot];
      const int s = static_cast<int>(slot);
      for (const Transfer& piece : input.receives)
        messages.push_back({piece.peer == 0 ? Message::Kind::input_piece : Message::Kind::halo,
                            piece.peer, node, layer, s, piece.region, input.element_bytes});
      for (const Transfer& piece : input.sends)
        messages.push_back(
            {Message::Kind::halo, node, piece.peer, layer, s, piece.region, input.element_bytes});
    }
    if (step.to_coordinator)
      messages.push_back({Message::Kind::relay, node, 0, layer, -1, step.out, step.element_bytes});
  }
  const LayerStep& last = program.layers[model.output];
  if (!last.out.empty())
    messages.push_back(
        {Message::Kind::output, node, 0, model.output, -1, last.out, last.element_bytes});
  return messages;
}

std::vector<Message> cluster_messages(const Model& model,
                                      const std::vector<NodeProgram>& programs) {
  // Each node's receives and its messages to the coordinator are every
  // message once (a node's sends are other nodes' receives).
  std::vector<std::vector<Message>> per_node;
  for (const NodeProgram& program : programs) {
    std::vector<Message> own;
    for (Message& message : node_messages(model, program))
      if (message.to == program.node || message.to == 0) own.push_back(std::move(message));
    per_node.push_back(std::move(own));
  }
  // Ordered by layer; in a layer, pieces slot by slot, then the relay; the
  // output gather after every layer; nodes in order within each.
  const auto rank = [&](const Message& message) {
    const int layer = message.kind == Message::Kind::output ? static_cast<int>(model.layers.size())
                                                            : message.layer;
    return std::pair<int, int>{layer, message.slot < 0 ? INT32_MAX : message.slot};
  };
  std::vector<Message> messages;
  std::vector<size_t> next(per_node.size(), 0);
  for (;;) {
    std::optional<std::pair<int, int>> first;
    for (size_t k = 0; k < per_node.size(); ++k)
      if (next[k] < per_node[k].size()) {
        const auto at = rank(per_node[k][next[k]]);
        if (!first || at < *first) first = at;
      }
    if (!first) break;
    for (size_t k = 0; k < per_node.size(); ++k)
      while (next[k] < per_node[k].size() && rank(per_node[k][next[k]]) == *first)
        messages.push_back(per_node[k][next[k]++]);
  }
  return messages;
}

std::vector<LayerTraffic> layer_traffic(const Model& model, const NodeProgram& program) {
  std::vector<LayerTraffic> traffic(model.layers.size());
  for (const Message& message : node_messages(model, program)) {
    if (message.from == program.node) traffic[message.layer].sent += message.bytes();
    if (message.to == program.node) traffic[message.layer].received += message.bytes();
  }
  return traffic;
}

}  // namespace splitinfer
