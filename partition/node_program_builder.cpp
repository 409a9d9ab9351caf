#include "node_program_builder.hpp"

#include <algorithm>
#include <set>

#include "../src/error.hpp"

namespace splitinfer {
namespace {

// `needed` is a channel range of `stored` with the same rows and columns:
// contiguous inside the stored tile, so it can be read in place.
bool readable_in_place(const Region& needed, const Region& stored) {
  return !stored.empty() && needed.y0 == stored.y0 && needed.y1 == stored.y1 &&
         needed.x0 == stored.x0 && needed.x1 == stored.x1 && stored.c0 <= needed.c0 &&
         needed.c1 <= stored.c1;
}

// `piece` less what `held` covers of it, when that leaves a box: `held`
// spans the piece along two axes and covers one end of it along the third.
Region trimmed(Region piece, const Region& held) {
  const auto spans = [](int64_t h0, int64_t h1, int64_t p0, int64_t p1) {
    return h0 <= p0 && p1 <= h1;
  };
  const bool c = spans(held.c0, held.c1, piece.c0, piece.c1);
  const bool y = spans(held.y0, held.y1, piece.y0, piece.y1);
  const bool x = spans(held.x0, held.x1, piece.x0, piece.x1);
  const auto cut = [](int64_t h0, int64_t h1, int64_t& p0, int64_t& p1) {
    if (h0 <= p0 && h1 > p0)
      p0 = std::min(h1, p1);  // held covers the start
    else if (h1 >= p1 && h0 < p1)
      p1 = std::max(h0, p0);  // held covers the end
  };
  if (c && y)
    cut(held.x0, held.x1, piece.x0, piece.x1);
  else if (c && x)
    cut(held.y0, held.y1, piece.y0, piece.y1);
  else if (y && x)
    cut(held.c0, held.c1, piece.c0, piece.c1);
  return piece;
}

}  // namespace

Region needed_region(const Model& model, const Layer& layer, int slot, const Region& out) {
  const Shape& in = model.layers[layer.inputs[slot]].output_shape;
  if (out.empty()) return {};
  return op_traits(layer.op).reads(model, layer, slot, out).intersect(Region::whole(in));
}

uint64_t weight_slice_bytes(const Layer& layer, const Region& out, bool in_ram) {
  if (out.empty()) return 0;
  uint64_t bytes = 0;
  for (const auto& [name, blob] : layer.weights) {
    const uint64_t blob_bytes = in_ram ? blob.ram_bytes() : blob.bytes();
    if (blob.dims[0] == layer.output_shape.c)  // per output channel
      bytes += blob_bytes / blob.dims[0] * (out.c1 - out.c0);
    else  // per tensor (a quantized layer's weight scale): whole on every node
      bytes += blob_bytes;
  }
  return bytes;
}

Region piece_to_send(const LayerRegions& regions, const LayerRegions& owners, int source, int from,
                     int to, const Region& needed) {
  const Region& computed = regions[source][to - 1];
  if (from == to || computed.contains(needed)) return {};
  const Region piece = (owners.empty() ? regions : owners)[source][from - 1].intersect(needed);
  if (piece.empty() || computed.contains(piece)) return {};
  return trimmed(piece, computed);
}

namespace {

// What every node needs of every input slot of every layer ([layer][slot][k],
// k = 1..N), and whether the slot moves anything between nodes: the same for
// every node's program, so computed once for all of them.
struct Needs {
  std::vector<std::vector<std::vector<Region>>> needed;
  std::vector<std::vector<char>> exchange;
};

Needs all_needs(const Model& model, const LayerRegions& regions, bool via_coordinator,
                const LayerRegions& owners) {
  const int nodes = static_cast<int>(regions[0].size());
  Needs needs;
  needs.needed.resize(model.layers.size());
  needs.exchange.resize(model.layers.size());
  for (size_t i = 0; i < model.layers.size(); ++i) {
    const Layer& layer = model.layers[i];
    for (int slot = 0; slot < static_cast<int>(layer.inputs.size()); ++slot) {
      std::vector<Region> needed(nodes + 1);
      for (int k = 1; k <= nodes; ++k)
        needed[k] = needed_region(model, layer, slot, regions[i][k - 1]);
      const int source = layer.inputs[slot];
      bool exchange = false;
      if (model.layers[source].op != Op::input && !via_coordinator)
        for (int j = 1; j <= nodes && !exchange; ++j)
          for (int k = 1; k <= nodes && !exchange; ++k)
            exchange = !piece_to_send(regions, owners, source, j, k, needed[k]).empty();
      needs.needed[i].push_back(std::move(needed));
      needs.exchange[i].push_back(exchange);
    }
  }
  return needs;
}

// A task's inputs and results (build_task_program()); none for a node's program.
struct TaskEnds {
  const std::vector<char>* from_coordinator = nullptr;  // per layer
  std::vector<int> results;
};

NodeProgram build_with_needs(const Model& model, const LayerRegions& regions, int node,
                             bool via_coordinator, const LayerRegions& owners, const Needs& needs,
                             const StreamGroups& streams, const TaskEnds& task = {});

bool streamable_op(Op op) {
  const OpKind kind = op_traits(op).kind;
  return kind == OpKind::elementwise || kind == OpKind::windowed;
}

// Kernel scratch for computing `out` of `layer` from `needed` of its input.
uint64_t scratch_bytes(const Model& model, const Layer& layer, const Region& needed,
                       const Region& out) {
  return out.empty() ? 0 : op_traits(layer.op).scratch_bytes(model, layer, needed, out);
}

// Bytes in RAM of the weights for computing `part` of the node's `region`
// of `layer`: the per-output-channel blobs' share of its channels. The layer
// holds the whole model's weights (the planner) or the node's slice (a run).
uint64_t part_weight_bytes(const Layer& layer, const Region& region, const Region& part) {
  if (part.c0 == region.c0 && part.c1 == region.c1) return weight_slice_bytes(layer, region, true);
  uint64_t bytes = 0;
  for (const auto& [name, blob] : layer.weights) {
    const int64_t rows = blob.dims[0];
    const bool per_channel = rows == layer.output_shape.c || rows == region.c1 - region.c0;
    bytes += per_channel ? blob.ram_bytes() / rows * (part.c1 - part.c0) : blob.ram_bytes();
  }
  return bytes;
}

// `group`'s parts on `node`.
Stream stream_parts(const Model& model, const LayerRegions& regions, int node,
                    const StreamGroup& group) {
  Stream stream;
  stream.first = group.first;
  stream.last = group.last;
  stream.keep_weights = group.keep_weights;
  const int length = group.last - group.first + 1;
  const auto region = [&](int layer) -> const Region& { return regions[layer][node - 1]; };
  stream.last_reader.assign(length - 1, -1);
  for (int m = group.first + 1; m <= group.last; ++m)
    for (int source : model.layers[m].inputs)
      if (source >= group.first) stream.last_reader[source - group.first] = m;
  const Region& whole = region(group.last);
  const std::string where = "the plan's stream of layers '" + model.layers[group.first].name +
                            "'..'" + model.layers[group.last].name + "' on node " +
                            std::to_string(node);
  if (whole.empty()) {
    for (int j = group.first; j < group.last; ++j)
      if (!region(j).empty())
        throw Error(where + " computes some of layer '" + model.layers[j].name +
                    "' but nothing of the run's last layer");
    return stream;
  }
  if (group.part_channels > 0) {  // one layer, by output channels
    const Layer& layer = model.layers[group.last];
    for (int64_t c = whole.c0; c < whole.c1; c += group.part_channels) {
      PartStep part;
      part.out = whole;
      part.out.c0 = c;
      part.out.c1 = std::min(whole.c1, c + group.part_channels);
      for (size_t slot = 0; slot < layer.inputs.size(); ++slot)
        part.needed.push_back(needed_region(model, layer, static_cast<int>(slot), part.out));
      part.weight_bytes = part_weight_bytes(layer, whole, part.out);
      part.scratch_bytes = scratch_bytes(model, layer, part.needed[0], part.out);
      stream.parts.push_back({part});
    }
    return stream;
  }
  // Tiles of `whole`: its rows and columns cut every part_rows / part_cols.
  const auto cuts = [](int64_t begin, int64_t end, int64_t step) {
    std::vector<std::pair<int64_t, int64_t>> ranges;
    if (step <= 0) step = end - begin;
    for (int64_t at = begin; at < end; at += step)
      ranges.emplace_back(at, std::min(end, at + step));
    return ranges;
  };
  const auto rows = cuts(whole.y0, whole.y1, group.part_rows);
  const auto cols = cuts(whole.x0, whole.x1, group.part_cols);
  for (size_t r = 0; r < rows.size(); ++r)
    for (size_t c = 0; c < cols.size(); ++c) {
      std::vector<PartStep> part(length);
      part[length - 1].out = {whole.c0,       whole.c1,      rows[r].first,
                              rows[r].second, cols[c].first, cols[c].second};
      for (int j = group.last - 1; j >= group.first; --j) {
        Region box;  // what the run's later layers read of this layer in this part
        for (int m = j + 1; m <= group.last; ++m)
          for (size_t slot = 0; slot < model.layers[m].inputs.size(); ++slot)
            if (model.layers[m].inputs[slot] == j)
              box = box.bounding(needed_region(model, model.layers[m], static_cast<int>(slot),
                                               part[m - group.first].out));
        if (box.empty()) continue;
        // Together the parts compute the node's whole region of the layer:
        // the first and last tiles reach its edges, and a tile starts where
        // the one before it ended (a stride wider than the kernel skips rows
        // that nothing reads).
        const Region& held = region(j);
        box.c0 = held.c0, box.c1 = held.c1;
        if (r == 0) box.y0 = std::min(box.y0, held.y0);
        if (r + 1 == rows.size()) box.y1 = std::max(box.y1, held.y1);
        if (c == 0) box.x0 = std::min(box.x0, held.x0);
        if (c + 1 == cols.size()) box.x1 = std::max(box.x1, held.x1);
        if (r > 0)
          box.y0 =
              std::min(box.y0, stream.parts[(r - 1) * cols.size() + c][j - group.first].out.y1);
        if (c > 0) box.x0 = std::min(box.x0, stream.parts.back()[j - group.first].out.x1);
        if (!held.contains(box))
          throw Error(where + " reads " + box.str() + " of layer '" + model.layers[j].name +
                      "', more than the node's region " + held.str() + " of it");
        part[j - group.first].out = box;
      }
      for (int j = group.first; j <= group.last; ++j) {
        PartStep& step = part[j - group.first];
        const Layer& layer = model.layers[j];
        for (size_t slot = 0; slot < layer.inputs.size(); ++slot)
          step.needed.push_back(needed_region(model, layer, static_cast<int>(slot), step.out));
        step.weight_bytes = group.keep_weights ? 0 : part_weight_bytes(layer, region(j), step.out);
        step.scratch_bytes =
            scratch_bytes(model, layer, step.needed.empty() ? Region{} : step.needed[0], step.out);
      }
      stream.parts.push_back(std::move(part));
    }
  return stream;
}

}  // namespace

bool streamable_layer(const Layer& layer) {
  return streamable_op(layer.op) && layer.output_shape.rank != 2 &&
         layer.output_shape.h * layer.output_shape.w > 1;
}

void check_stream_groups(const Model& model, const StreamGroups& groups) {
  const int count = static_cast<int>(model.layers.size());
  std::vector<std::vector<int>> readers(count);
  for (int i = 0; i < count; ++i)
    for (int source : model.layers[i].inputs) readers[source].push_back(i);
  int previous_last = 0;
  for (const StreamGroup& group : groups) {
    const bool by_channels = group.part_channels > 0;
    if (group.first <= previous_last || group.last < group.first + (by_channels ? 0 : 1) ||
        group.last >= count)
      throw Error(
          "the plan's streams must be runs of at least two layers after the input, in order, "
          "not overlapping (not layers " +
          std::to_string(group.first) + ".." + std::to_string(group.last) + ")");
    const std::string run = "the stream of layers '" + model.layers[group.first].name + "'..'" +
                            model.layers[group.last].name + "'";
    if (by_channels) {
      const Layer& layer = model.layers[group.first];
      if (group.last != group.first || group.part_rows != 0 || group.part_cols != 0 ||
          (layer.op != Op::conv2d && layer.op != Op::linear))
        throw Error(run +
                    " is cut by channels, which takes one conv2d or linear layer, not also "
                    "by rows or columns");
      if (group.keep_weights)
        throw Error(run + " is cut by channels to stream its weights, so it cannot keep them");
      previous_last = group.last;
      continue;
    }
    if (group.part_rows < 0 || group.part_cols < 0 ||
        (group.part_rows == 0 && group.part_cols == 0))
      throw Error(run + " needs parts of at least 1 row or column (not " +
                  std::to_string(group.part_rows) + "x" + std::to_string(group.part_cols) + ")");
    for (int j = group.first; j <= group.last; ++j) {
      const Layer& layer = model.layers[j];
      if (!streamable_layer(layer))
        throw Error(run + " holds layer '" + layer.name + "' (" + op_name(layer.op) +
                    "), which cannot be computed part by part");
      if (j == group.last) continue;
      if (j == model.output || std::any_of(readers[j].begin(), readers[j].end(),
                                           [&](int reader) { return reader > group.last; }))
        throw Error(run + " holds layer '" + layer.name + "', which is read after the run");
    }
    previous_last = group.last;
  }
}

void read_weights_in_place(const Model& model, NodeProgram& program) {
  program.weights_in_place = true;
  for (size_t i = 0; i < model.layers.size(); ++i) {
    const Layer& layer = model.layers[i];
    if (std::any_of(layer.weights.begin(), layer.weights.end(),
                    [](const auto& blob) { return blob.second.dtype == DType::f16; }))
      continue;
    program.layers[i].weight_bytes = 0;
    for (Stream& stream : program.streams)
      if (static_cast<int>(i) >= stream.first && static_cast<int>(i) <= stream.last)
        for (std::vector<PartStep>& part : stream.parts) part[i - stream.first].weight_bytes = 0;
  }
  schedule_memory(model, program);  // without the weights' blocks
}

NodeProgram build_node_program(const Model& model, const LayerRegions& regions, int node,
                               bool via_coordinator, const LayerRegions& owners,
                               const StreamGroups& streams) {
  return build_with_needs(model, regions, node, via_coordinator, owners,
                          all_needs(model, regions, via_coordinator, owners), streams);
}

NodeProgram build_task_program(const Model& model, const std::vector<Region>& regions,
                               const std::vector<char>& from_coordinator,
                               const std::vector<int>& results) {
  LayerRegions column(model.layers.size());
  for (size_t i = 0; i < model.layers.size(); ++i) column[i] = {regions[i]};
  TaskEnds task{&from_coordinator, results};
  NodeProgram program = build_with_needs(model, column, 1, false, {},
                                         all_needs(model, column, false, {}), {}, task);
  // What the task reads must be computed by itself or come from the coordinator.
  for (size_t i = 0; i < model.layers.size(); ++i)
    for (size_t slot = 0; slot < model.layers[i].inputs.size(); ++slot) {
      const int source = model.layers[i].inputs[slot];
      const InputSlot& input = program.layers[i].inputs[slot];
      if (!input.needed.empty() && !from_coordinator[source] &&
          model.layers[source].op != Op::input && !regions[source].contains(input.needed))
        throw Error("internal: a task computing " + regions[i].str() + " of layer '" +
                    model.layers[i].name + "' reads " + input.needed.str() + " of layer '" +
                    model.layers[source].name + "', which it computes only " +
                    regions[source].str() + " of");
    }
  return program;
}

std::vector<NodeProgram> build_node_programs(const Model& model, const LayerRegions& regions,
                                             bool via_coordinator, const LayerRegions& owners,
                                             const StreamGroups& streams) {
  const Needs needs = all_needs(model, regions, via_coordinator, owners);
  std::vector<NodeProgram> programs;
  for (int k = 1; k <= static_cast<int>(regions[0].size()); ++k)
    programs.push_back(
        build_with_needs(model, regions, k, via_coordinator, owners, needs, streams));
  return programs;
}

namespace {

NodeProgram build_with_needs(const Model& model, const LayerRegions& regions, int node,
                             bool via_coordinator, const LayerRegions& owners, const Needs& needs,
                             const StreamGroups& streams, const TaskEnds& task) {
  const int count = static_cast<int>(model.layers.size());
  const int nodes = static_cast<int>(regions[0].size());
  NodeProgram program;
  program.node = node;
  program.layers.resize(count);
  program.results = task.results;
  std::vector<char> is_result(count, 0);
  for (int layer : result_layers(model, program)) is_result[layer] = 1;
  const auto from_coordinator = [&](int source) {
    return model.layers[source].op == Op::input || via_coordinator ||
           (task.from_coordinator && (*task.from_coordinator)[source]);
  };
  const auto owned = [&](int layer, int k) -> const Region& { return regions[layer][k - 1]; };
  const auto moved = [&](int source, int from, int to, const Region& needed) {
    return piece_to_send(regions, owners, source, from, to, needed);
  };
  std::set<int> neighbours;

  // What every input slot of every layer needs, on every node (the sends of
  // one node are the receives of others).
  for (int i = 0; i < count; ++i) {
    const Layer& layer = model.layers[i];
    LayerStep& step = program.layers[i];
    step.out = owned(i, node);
    step.element_bytes = dtype_bytes(layer.dtype);
    for (int slot = 0; slot < static_cast<int>(layer.inputs.size()); ++slot) {
      const int source = layer.inputs[slot];
      const std::vector<Region>& needed = needs.needed[i][slot];
      InputSlot input;
      input.needed = needed[node];
      input.element_bytes = dtype_bytes(model.layers[source].dtype);
      if (from_coordinator(source)) {
        if (!input.needed.empty()) input.receives.push_back({0, input.needed});
      } else {
        const Region& stored = owned(source, node);
        input.direct = !input.needed.empty() && readable_in_place(input.needed, stored);
        for (int k = 1; k <= nodes; ++k) {
          if (k == node) continue;
          const Region theirs_to_me = moved(source, k, node, input.needed);
          const Region mine_to_them = moved(source, node, k, needed[k]);
          if (!theirs_to_me.empty())
            input.receives.push_back({k, theirs_to_me}), neighbours.insert(k);
          if (!mine_to_them.empty()) input.sends.push_back({k, mine_to_them}), neighbours.insert(k);
        }
        input.exchange = needs.exchange[i][slot] != 0;
      }
      step.inputs.push_back(std::move(input));
    }
  }
  for (int i = 0; i < count;
       ++i) {  // relay: every region a later layer reads goes to the coordinator
    LayerStep& step = program.layers[i];
    step.to_coordinator =
        via_coordinator && !step.out.empty() &&
        std::any_of(model.layers.begin() + i + 1, model.layers.end(), [&](const Layer& later) {
          return std::find(later.inputs.begin(), later.inputs.end(), i) != later.inputs.end();
        });
  }
  program.neighbours.assign(neighbours.begin(), neighbours.end());
  if (via_coordinator && !streams.empty())
    throw Error("a relay plan cannot stream (every layer goes whole to the coordinator)");
  for (const StreamGroup& group : streams) {
    for (int j = group.first; j <= group.last; ++j) {
      program.layers[j].stream = static_cast<int>(program.streams.size());
      for (size_t slot = 0; slot < model.layers[j].inputs.size() && j > group.first; ++slot) {
        const InputSlot& input = program.layers[j].inputs[slot];
        if (model.layers[j].inputs[slot] >= group.first && input.exchange)
          throw Error("the plan's regions move pieces of layer '" +
                      model.layers[model.layers[j].inputs[slot]].name +
                      "' between nodes, but it is streamed and never whole on a node");
      }
    }
    program.streams.push_back(stream_parts(model, regions, node, group));
    // The model's input, when one slot of the run reads it, comes part by
    // part from the coordinator (one slot: the coordinator sends the parts
    // in the order that slot reads them).
    std::vector<std::pair<int, int>> input_slots;
    for (int j = group.first; j <= group.last; ++j)
      for (int slot = 0; slot < static_cast<int>(model.layers[j].inputs.size()); ++slot)
        if (model.layers[model.layers[j].inputs[slot]].op == Op::input)
          input_slots.emplace_back(j, slot);
    if (input_slots.size() == 1 && !task.from_coordinator) {
      InputSlot& input = program.layers[input_slots[0].first].inputs[input_slots[0].second];
      input.per_part = true;
      input.receives.clear();
    }
  }
  for (const Message& message : node_messages(model, program))
    (message.from == node ? program.bytes_sent : program.bytes_received) += message.bytes();

  // Memory: every computed region is a buffer, except views (flatten, slice
  // read in place) and element-wise ops written over an input that nothing
  // reads afterwards. Tiles, weights and scratch live for their layer only.
  std::vector<int> last_use(count,
                            -1);  // per layer: the last layer reading or sending its region here
  for (int i = 0; i < count; ++i)
    for (size_t slot = 0; slot < model.layers[i].inputs.size(); ++slot) {
      const InputSlot& input = program.layers[i].inputs[slot];
      const int source = model.layers[i].inputs[slot];
      const bool reads_own =
          !via_coordinator && !input.needed.intersect(owned(source, node)).empty();
      if (reads_own || !input.sends.empty()) last_use[source] = std::max(last_use[source], i);
    }
  const auto read_after = [&](int buffer, int i) {
    for (int v = 0; v < i; ++v)
      if (program.layers[v].out_buffer == buffer && (last_use[v] > i || is_result[v]))
        return true;
    return false;
  };
  for (int i = 0; i < count; ++i) {
    const Layer& layer = model.layers[i];
    LayerStep& step = program.layers[i];
    if (step.out.empty()) continue;
    const Stream* stream = step.stream >= 0 ? &program.streams[step.stream] : nullptr;
    if (stream && i != stream->last) {  // computed part by part, never whole
      step.weight_bytes = weight_slice_bytes(layer, step.out, true);
      continue;
    }
    const InputSlot* first = step.inputs.empty() ? nullptr : &step.inputs[0];
    const int source = layer.inputs.empty() ? -1 : layer.inputs[0];
    if (first && first->direct) {
      const LayerStep& stored = program.layers[source];
      const Shape& in = model.layers[source].output_shape;
      const uint64_t plane_bytes =
          static_cast<uint64_t>((stored.out.y1 - stored.out.y0) * (stored.out.x1 - stored.out.x0)) *
          stored.element_bytes;
      const uint64_t offset = stored.out_offset + (first->needed.c0 - stored.out.c0) * plane_bytes;
      const bool slice_view = layer.op == Op::slice;
      const bool flatten_view = layer.op == Op::flatten && stored.out.y0 == 0 &&
                                stored.out.y1 == in.h && stored.out.x0 == 0 &&
                                stored.out.x1 == in.w &&
                                step.out.c0 == first->needed.c0 * in.h * in.w &&
                                step.out.c1 == first->needed.c1 * in.h * in.w;
      if (slice_view || flatten_view) {
        step.out_buffer = stored.out_buffer;
        step.out_offset = offset;
        continue;
      }
    }
    // Any input read in place may be written over (an SE gate's multiply
    // writes over the map, not over the received gate).
    // Not a stream's last layer: later parts still read the inputs.
    for (size_t slot = 0; slot < step.inputs.size() && is_elementwise(layer.op) && !stream;
         ++slot) {
      const InputSlot& input = step.inputs[slot];
      const LayerStep& candidate = program.layers[layer.inputs[slot]];
      if (input.direct && input.needed == candidate.out && candidate.out == step.out &&
          candidate.out_offset == 0 && candidate.element_bytes == step.element_bytes &&
          program.buffer_bytes[candidate.out_buffer] == step.out.bytes(step.element_bytes) &&
          model.layers[layer.inputs[slot]].op != Op::input &&
          !read_after(candidate.out_buffer, i)) {
        step.out_buffer = candidate.out_buffer;
        break;
      }
    }
    if (step.out_buffer < 0) {
      step.allocates_out = true;
      step.out_buffer = static_cast<int>(program.buffer_bytes.size());
      program.buffer_bytes.push_back(step.out.bytes(step.element_bytes));
    }
    step.weight_bytes = weight_slice_bytes(layer, step.out, true);
    if (!stream)
      step.scratch_bytes = scratch_bytes(model, layer, first ? first->needed : Region{}, step.out);
  }
  // Each buffer is released after the last layer that writes, reads or sends
  // it; those holding results (the model's output) are kept to the end.
  std::vector<int> release_at(program.buffer_bytes.size(), -1);
  for (int v = 0; v < count; ++v) {
    const int buffer = program.layers[v].out_buffer;
    if (buffer < 0) continue;
    int& at = release_at[buffer];
    if (is_result[v] || at == count)
      at = count;
    else
      at = std::max({at, v, last_use[v]});
  }
  for (size_t buffer = 0; buffer < release_at.size(); ++buffer)
    if (release_at[buffer] < count)
      program.layers[release_at[buffer]].released_after.push_back(static_cast<int>(buffer));
  schedule_memory(model, program);
  return program;
}

}  // namespace

}  // namespace splitinfer
