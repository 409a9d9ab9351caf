#include "node_program.hpp"

#include <algorithm>
#include <climits>
#include <optional>
#include <utility>

#include "error.hpp"

namespace splitinfer {

std::string allocation_purpose(const std::string& node_label, const Layer& layer,
                               const char* what) {
  return node_label + ", layer '" + layer.name + "' (" + op_name(layer.op) + "): " + what;
}

std::vector<int> result_layers(const Model& model, const NodeProgram& program) {
  return program.results.empty() ? std::vector<int>{model.output} : program.results;
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

// Builds a program's schedule (schedule_memory()).
class Scheduler {
 public:
  Scheduler(const Model& model, NodeProgram& program) : model_(model), program_(program) {}

  void run() {
    program_.blocks.clear();
    program_.schedule.clear();
    for (size_t buffer = 0; buffer < program_.buffer_bytes.size(); ++buffer)
      program_.blocks.push_back({Block::Use::output, allocating_layer(static_cast<int>(buffer)),
                                 program_.buffer_bytes[buffer]});
    for (size_t i = 0; i < model_.layers.size(); ++i) {
      LayerStep& step = program_.layers[i];
      if (step.stream >= 0) {
        if (static_cast<int>(i) == program_.streams[step.stream].first)
          stream(program_.streams[step.stream]);
        continue;
      }
      layer(static_cast<int>(i));
    }
    std::vector<int> kept;  // results' buffers, each released once (a view shares one)
    for (int layer : result_layers(model_, program_)) {
      const LayerStep& result = program_.layers[layer];
      if (!result.out.empty() &&
          std::find(kept.begin(), kept.end(), result.out_buffer) == kept.end())
        kept.push_back(result.out_buffer);
    }
    for (int buffer : kept) release(buffer);
  }

 private:
  int allocating_layer(int buffer) const {
    for (size_t i = 0; i < program_.layers.size(); ++i)
      if (program_.layers[i].allocates_out && program_.layers[i].out_buffer == buffer)
        return static_cast<int>(i);
    return 0;
  }
  int allocate(Block::Use use, int layer, uint64_t bytes) {
    const int block = static_cast<int>(program_.blocks.size());
    program_.blocks.push_back({use, layer, bytes});
    program_.schedule.push_back({MemoryEvent::Kind::allocate, block});
    return block;
  }
  // A block of `bytes` when there are any, else -1; added to `transient`.
  int transient(Block::Use use, int layer, uint64_t bytes, std::vector<int>& transient) {
    if (!bytes) return -1;
    transient.push_back(allocate(use, layer, bytes));
    return transient.back();
  }
  void release(int block) { program_.schedule.push_back({MemoryEvent::Kind::release, block}); }
  void point(MemoryEvent::Kind kind, int layer, int part = -1) {
    program_.schedule.push_back({kind, -1, layer, part});
  }

  // A layer computed whole: its input tiles, output buffer, weights and
  // scratch; then the tiles, weights and scratch, and the buffers whose last
  // use it is.
  void layer(int i) {
    LayerStep& step = program_.layers[i];
    std::vector<int> blocks;
    for (InputSlot& input : step.inputs)
      input.tile_block = input.direct ? -1
                                      : transient(Block::Use::input_tile, i,
                                                  input.needed.bytes(input.element_bytes), blocks);
    step.weights_block = step.scratch_block = -1;
    if (!step.out.empty()) {
      if (step.allocates_out)
        program_.schedule.push_back({MemoryEvent::Kind::allocate, step.out_buffer});
      step.weights_block = transient(Block::Use::weights, i, step.weight_bytes, blocks);
      step.scratch_block = transient(Block::Use::scratch, i, step.scratch_bytes, blocks);
    }
    point(MemoryEvent::Kind::compute, i);
    for (int block : blocks) release(block);
    for (int buffer : step.released_after) release(buffer);
  }

  // A stream: the inputs from outside the run (whole), kept weights and the
  // last layer's buffer; then part by part and layer by layer the input
  // tiles a part does not find as they are, the part's output (the last
  // layer's goes straight into its buffer when the part is all of it),
  // weights and scratch, released after the layer's part (a part's output
  // after the part of its last reader); then the run's whole blocks.
  void stream(Stream& stream) {
    const int length = stream.last - stream.first + 1;
    std::vector<int> outside;
    for (int j = stream.first; j <= stream.last; ++j)
      for (size_t slot = 0; slot < model_.layers[j].inputs.size(); ++slot) {
        InputSlot& input = program_.layers[j].inputs[slot];
        input.tile_block = -1;
        if (model_.layers[j].inputs[slot] < stream.first && !input.direct && !input.per_part)
          input.tile_block = transient(Block::Use::input_tile, j,
                                       input.needed.bytes(input.element_bytes), outside);
      }
    for (int j = stream.first; j <= stream.last; ++j) {
      LayerStep& step = program_.layers[j];
      step.scratch_block = -1;
      step.weights_block = stream.keep_weights
                               ? transient(Block::Use::kept_weights, j, step.weight_bytes, outside)
                               : -1;
    }
    const LayerStep& last = program_.layers[stream.last];
    if (last.allocates_out)
      program_.schedule.push_back({MemoryEvent::Kind::allocate, last.out_buffer});
    point(MemoryEvent::Kind::begin_stream, stream.first);
    for (size_t p = 0; p < stream.parts.size(); ++p) {
      std::vector<int> part_outputs(length, -1);
      for (int j = stream.first; j <= stream.last; ++j) {
        const Layer& layer = model_.layers[j];
        const LayerStep& step = program_.layers[j];
        PartStep& part = stream.parts[p][j - stream.first];
        if (part.out.empty()) continue;
        std::vector<int> blocks;
        part.tile_blocks.assign(layer.inputs.size(), -1);
        for (size_t slot = 0; slot < layer.inputs.size(); ++slot) {
          const Region& needed = part.needed[slot];
          if (!step.inputs[slot].per_part &&
              needed ==
                  held_region(program_, stream, p, j, static_cast<int>(slot), layer.inputs[slot]))
            continue;
          part.tile_blocks[slot] = transient(Block::Use::input_tile, j,
                                             needed.bytes(step.inputs[slot].element_bytes), blocks);
        }
        const bool into_buffer =
            j == stream.last && part_offset(part.out, step.out, step.element_bytes) >= 0;
        part.out_block = part_outputs[j - stream.first] =
            into_buffer ? -1 : allocate(Block::Use::part, j, part.out.bytes(step.element_bytes));
        part.weights_block = transient(Block::Use::weights, j, part.weight_bytes, blocks);
        part.scratch_block = transient(Block::Use::scratch, j, part.scratch_bytes, blocks);
        point(MemoryEvent::Kind::compute, j, static_cast<int>(p));
        for (int block : blocks) release(block);
        if (j == stream.last && !into_buffer) release(part.out_block);
        for (int m = stream.first; m < j; ++m)
          if (stream.last_reader[m - stream.first] == j && part_outputs[m - stream.first] >= 0)
            release(part_outputs[m - stream.first]);
      }
    }
    for (int block : outside) release(block);
    for (int j = stream.first; j <= stream.last; ++j)
      for (int buffer : program_.layers[j].released_after) release(buffer);
  }

  const Model& model_;
  NodeProgram& program_;
};

const char* block_use_name(Block::Use use) {
  switch (use) {
    case Block::Use::output:
      return "output activation";
    case Block::Use::input_tile:
      return "input tile";
    case Block::Use::part:
      return "part";
    case Block::Use::weights:
      return "weights";
    case Block::Use::kept_weights:
      return "weights kept for the stream";
    case Block::Use::scratch:
      return "scratch";
  }
  return "?";
}

}  // namespace

std::string allocation_purpose(const std::string& node_label, const Model& model,
                               const Block& block) {
  return allocation_purpose(node_label, model.layers[block.layer], block_use_name(block.use));
}

void schedule_memory(const Model& model, NodeProgram& program) { Scheduler(model, program).run(); }

uint64_t replay_memory(const Model& model, const NodeProgram& program, ArenaLayout& layout,
                       const std::string& node_label, std::vector<uint64_t>* layer_footprints) {
  std::vector<uint64_t> offsets(program.blocks.size());
  if (layer_footprints) layer_footprints->assign(model.layers.size(), 0);
  for (const MemoryEvent& event : program.schedule) switch (event.kind) {
      case MemoryEvent::Kind::allocate:
        offsets[event.block] = layout.allocate(program.blocks[event.block].bytes, [&] {
          return allocation_purpose(node_label, model, program.blocks[event.block]);
        });
        break;
      case MemoryEvent::Kind::release:
        layout.release(offsets[event.block]);
        break;
      case MemoryEvent::Kind::compute:
        if (layer_footprints)
          (*layer_footprints)[event.layer] =
              std::max((*layer_footprints)[event.layer], layout.high_water());
        break;
      case MemoryEvent::Kind::begin_stream:
        break;
    }
  return layout.peak_bytes();
}

ScheduledArena::ScheduledArena(Arena& arena, const Model& model, const NodeProgram& program,
                               const std::string& node_label)
    : arena_(arena),
      model_(model),
      program_(program),
      node_label_(node_label),
      pointers_(program.blocks.size(), nullptr) {
  if (program.schedule.empty())
    throw Error("internal: " + node_label + "'s program has no allocation schedule");
}

void ScheduledArena::perform(const MemoryEvent& event) {
  if (event.kind == MemoryEvent::Kind::allocate) {
    pointers_[event.block] = static_cast<char*>(
        arena_.allocate(program_.blocks[event.block].bytes,
                        allocation_purpose(node_label_, model_, program_.blocks[event.block])));
  } else if (event.kind == MemoryEvent::Kind::release) {
    arena_.release(pointers_[event.block]);
    pointers_[event.block] = nullptr;
    released_.push_back(event.block);
  }
}

void ScheduledArena::advance(MemoryEvent::Kind kind, int layer, int part) {
  released_.clear();
  for (; next_ < program_.schedule.size(); ++next_) {
    const MemoryEvent& event = program_.schedule[next_];
    if (event.kind == MemoryEvent::Kind::allocate || event.kind == MemoryEvent::Kind::release) {
      perform(event);
      continue;
    }
    if (event.kind != kind || event.layer != layer || event.part != part)
      throw Error("internal: " + node_label_ + " computes layer " + std::to_string(layer) +
                  " (part " + std::to_string(part) + ") where its schedule is at layer " +
                  std::to_string(event.layer) + " (part " + std::to_string(event.part) + ")");
    ++next_;
    return;
  }
  throw Error("internal: " + node_label_ + " computes layer " + std::to_string(layer) +
              " after the end of its schedule");
}

void ScheduledArena::finish() {
  released_.clear();
  for (; next_ < program_.schedule.size(); ++next_) {
    const MemoryEvent& event = program_.schedule[next_];
    if (event.kind == MemoryEvent::Kind::compute || event.kind == MemoryEvent::Kind::begin_stream)
      throw Error("internal: " + node_label_ + " ended before computing layer " +
                  std::to_string(event.layer) + " of its schedule");
    perform(event);
  }
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
      if (input.per_part) {  // the stream's parts, in order
        const Stream& stream = program.streams[step.stream];
        for (const std::vector<PartStep>& part : stream.parts) {
          const PartStep& share = part[layer - stream.first];
          if (!share.out.empty() && !share.needed[slot].empty())
            messages.push_back({Message::Kind::input_piece, 0, node, layer, s, share.needed[slot],
                                input.element_bytes});
        }
      }
      for (const Transfer& piece : input.sends)
        messages.push_back(
            {Message::Kind::halo, node, piece.peer, layer, s, piece.region, input.element_bytes});
    }
    if (step.to_coordinator)
      messages.push_back({Message::Kind::relay, node, 0, layer, -1, step.out, step.element_bytes});
  }
  for (int layer : result_layers(model, program)) {
    const LayerStep& result = program.layers[layer];
    if (!result.out.empty())
      messages.push_back(
          {Message::Kind::output, node, 0, layer, -1, result.out, result.element_bytes});
  }
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
