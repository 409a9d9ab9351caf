#pragma once
// From a plan's regions (which part of every layer each node computes) to
// each node's program: needed input regions from receptive fields, the
// pieces exchanged, and the node's memory layout. The planner uses it to
// predict; the run uses it to execute, so the two cannot disagree.
#include <vector>

#include "../src/graph.hpp"
#include "../src/node_program.hpp"

namespace splitinfer {

// A run of layers every node computes part by part (see Stream in
// src/node_program.hpp): `last`'s region cut into tiles of at most part_rows
// x part_cols (0: the whole extent), each part computing, in every layer of
// the run, what the later ones read of it.
// With part_channels (a single conv2d or linear layer, first == last), the
// parts are its output channels instead, each streaming only its weights:
// a layer whose weight slice does not fit the RAM whole still runs.
struct StreamGroup {
  int first = 0, last = 0;
  int64_t part_rows = 0, part_cols = 0, part_channels = 0;
  // Its layers' weights read from flash once and kept in RAM for the whole
  // run (a board with RAM to spare), instead of once per part.
  bool keep_weights = false;
};
using StreamGroups = std::vector<StreamGroup>;

// A layer a stream can compute part by part: a spatial map, and an op that
// computes any part of it from the matching part of its inputs
// (convolutions, pooling, element-wise ops).
bool streamable_layer(const Layer& layer);

// Throws Error unless `groups` are in order, disjoint, and streamable: every
// layer of a run streamable_layer(), the layers before `last` read only by
// later layers of the run and not the model's output, parts of at least a row
// or column; or one conv2d or linear layer cut by output channels.
void check_stream_groups(const Model& model, const StreamGroups& groups);

// regions[layer][node - 1]: the part of the layer's output each node computes.
// Every layer's regions partition its map (disjoint, covering); the input
// layer's are empty (the coordinator holds the input).
using LayerRegions = std::vector<std::vector<Region>>;

// The region of input `slot` of `layer` that computing `out` reads (its op's
// `reads` in the op table), clipped to that input's map; empty when `out` is
// empty or reads none of it.
Region needed_region(const Model& model, const Layer& layer, int slot, const Region& out);

// Bytes of the weight slice a node holds for `layer` when computing `out`:
// in flash, or once streamed into RAM (`in_ram`: float16 widened to float32).
uint64_t weight_slice_bytes(const Layer& layer, const Region& out, bool in_ram);

// `regions` are what each node computes. They may overlap (fused tiles
// recompute the borders they share); `owners` then says which node sends each
// piece: a partition of every map with owners[layer][k] inside
// regions[layer][k] (empty: the regions themselves partition every map). A
// node receives nothing for an input it computed all of itself.
// With `via_coordinator` (the relay baseline), nodes exchange nothing
// directly: every computed region goes to the coordinator, and every input a
// node needs comes whole from it, its own part included.
// `streams` (checked with check_stream_groups) are computed part by part: a
// node's regions of the layers before each run's last must hold what the run
// reads of them (Error otherwise), so nothing of them moves between nodes.
NodeProgram build_node_program(const Model& model, const LayerRegions& regions, int node,
                               bool via_coordinator = false, const LayerRegions& owners = {},
                               const StreamGroups& streams = {});

// Every node's program (nodes 1..N), sharing the work they have in common.
std::vector<NodeProgram> build_node_programs(const Model& model, const LayerRegions& regions,
                                             bool via_coordinator = false,
                                             const LayerRegions& owners = {},
                                             const StreamGroups& streams = {});

// The program of one task (work stealing, partition/task_plan.hpp), run by
// whichever node takes it: it computes `regions[layer]` of every layer (empty
// outside its stage); the layers `from_coordinator` marks (and the input)
// come from the coordinator, piece by piece; nothing moves between nodes; at
// the end it returns `results` (NodeProgram::results) to the coordinator.
// Throws Error("internal: ...") when it reads what it neither computes nor
// receives.
NodeProgram build_task_program(const Model& model, const std::vector<Region>& regions,
                               const std::vector<char>& from_coordinator,
                               const std::vector<int>& results);

// Makes `program` read every layer's weights where flash holds them, with no
// RAM for them, except float16 weights (widened into RAM as before).
void read_weights_in_place(const Model& model, NodeProgram& program);

// The piece of layer `source`'s output node `from` sends node `to` so that
// `to` can read `needed` of it: what `from` owns of `needed`, unless `to`
// computed it itself; empty when nothing moves.
Region piece_to_send(const LayerRegions& regions, const LayerRegions& owners, int source, int from,
                     int to, const Region& needed);

}  // namespace splitinfer
