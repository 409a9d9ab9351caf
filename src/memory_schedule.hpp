#pragma once
// When a node allocates and frees what, layer by layer: the single source of
// a node's memory behaviour. The executor follows it over a real Arena; the
// planner replays it over an ArenaLayout to predict the peak, so prediction
// and measurement agree by construction and a test checks they do.
#include <cstdint>
#include <string>
#include <vector>

#include "arena.hpp"
#include "graph.hpp"

namespace splitinfer {

struct LayerMemory {
  int output_buffer = -1;      // buffer holding this layer's output
  uint64_t output_offset = 0;  // bytes into that buffer (slices are views)
  bool allocates_output =
      false;                   // false: the output is a view of, or written into, an input's buffer
  uint64_t weight_bytes = 0;   // streamed from flash for this layer only
  uint64_t scratch_bytes = 0;  // kernel scratch for this layer only
  std::vector<int> released_after;  // buffers whose last reader is this layer
};

struct MemorySchedule {
  std::vector<uint64_t> buffer_bytes;  // per buffer
  std::vector<LayerMemory> layers;     // per layer of the model
};

MemorySchedule schedule_memory(const Model& model);

// Replays the schedule on `layout` (whose capacity is the RAM cap), throwing
// the Error of the first allocation that does not fit, naming `node_label`
// and the layer. Returns the peak bytes.
uint64_t replay_memory(const Model& model, const MemorySchedule& schedule, ArenaLayout& layout,
                       const std::string& node_label);

// What an allocation is for, as error messages name it.
std::string allocation_purpose(const std::string& node_label, const Layer& layer, const char* what);

}  // namespace splitinfer
