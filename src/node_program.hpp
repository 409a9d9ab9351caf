#pragma once
// What one node does, layer by layer: the region of each layer it computes,
// the input regions it needs and where their pieces come from, what it sends
// to others, and when it allocates and frees what. Pure data, built from a
// plan's regions by partition/ (the same function for the planner's
// predictions and for the run), executed by the Executor.
#include <cstdint>
#include <vector>

#include "region.hpp"

namespace splitinfer {

// A piece of a layer's output moving between this node and `peer` (a node
// number 1..N, or 0 for the coordinator).
struct Transfer {
  int peer = 0;
  Region region;
};

// One input of a layer, as this node reads it.
struct InputSlot {
  Region needed;        // of the input layer's output; empty: nothing needed
  bool direct = false;  // needed is a channel range of this node's stored region: read it in place
  std::vector<Transfer> receives;  // pieces of `needed` held by others
  std::vector<Transfer> sends;     // pieces of this node's stored region of the input others need
  bool exchange = false;  // some node sends some node something for this slot (same on every node)
  size_t element_bytes = 4;  // of the input layer's elements (4 float32, 1 quint8)
  int tile_block = -1;       // the block (NodeProgram::blocks) holding `needed`; -1: read in place
  // A stream's one reader of the model's input: nothing is received whole
  // (receives is empty); each part receives from the coordinator what it
  // reads (PartStep::needed), as a camera hands over rows as they come.
  bool per_part = false;
};

struct LayerStep {
  Region out;  // this node's region of the layer's output; empty: it computes nothing here
  size_t element_bytes = 4;  // of the layer's output elements
  std::vector<InputSlot> inputs;
  int out_buffer = -1;              // buffer holding `out`
  uint64_t out_offset = 0;          // bytes into it (views)
  bool allocates_out = false;       // false: a view of, or written over, an input's buffer
  bool to_coordinator = false;      // send `out` to the coordinator after computing it (relay)
  uint64_t weight_bytes = 0;        // this node's weight slice of the layer, streamed from flash
  uint64_t scratch_bytes = 0;       // kernel scratch
  std::vector<int> released_after;  // buffers whose last use is this layer
  int stream = -1;  // the stream (program.streams) computing this layer part by part; -1: none
  // Blocks holding its weights streamed from flash (a stream's: kept for the
  // whole run) and its kernel scratch; -1: none.
  int weights_block = -1, scratch_block = -1;
};

// One layer's share of one part of a stream.
struct PartStep {
  Region out;                  // what of the layer's region this part computes (empty: nothing)
  std::vector<Region> needed;  // per input slot: what of that input it reads
  uint64_t weight_bytes = 0;   // the weights it streams from flash (its channels')
  uint64_t scratch_bytes = 0;  // kernel scratch for this part
  // Blocks: per input slot the tile of `needed` (-1: the part reads the
  // input as it holds it), the part's output (-1: written straight into the
  // last layer's buffer), its weights and scratch (-1: none).
  std::vector<int> tile_blocks;
  int out_block = -1, weights_block = -1, scratch_block = -1;
};

// Layers first..last computed part by part (streaming, as MCUNetV2 and
// DeepThings do): `last`'s region is cut into parts (row bands, or tiles),
// and for each part every layer of the run computes only what the later
// ones read of it, so no map before `last` ever exists whole on the node.
// Overlaps between parts are recomputed; every layer's weights are streamed
// from flash once per part. A single conv or linear layer may instead be cut
// into parts by output channels, each streaming only its channels' weights. The layers before
// `last` are read by nothing outside the run; the inputs from outside it (the run's input, a
// residual) are whole on the node, read or received before the first part, except the
// model's input when one layer of the run reads it: each part receives its share of it
// from the coordinator (InputSlot::per_part), so the input is never whole on the node.
struct Stream {
  int first = 0, last = 0;
  std::vector<std::vector<PartStep>> parts;  // [part][layer - first]
  // Per layer before `last` (index layer - first): the layer of the run that
  // reads its part last, after which the part's buffer is released.
  std::vector<int> last_reader;
  // Every layer's weights streamed once, before the first part, and kept to
  // the end of the run (the parts stream none).
  bool keep_weights = false;
};

// One allocation from the node's arena: what it holds, for which layer, and
// its bytes. Block b < buffer_bytes.size() is buffer b.
struct Block {
  enum class Use { output, input_tile, part, weights, kept_weights, scratch };
  Use use = Use::output;
  int layer = 0;
  uint64_t bytes = 0;
};

// One step of a node's allocation schedule: a block allocated or released,
// a layer (or one part of a streamed layer) computed with what is allocated
// then, or a stream starting (its whole inputs, kept weights and last
// layer's buffer allocated).
struct MemoryEvent {
  enum class Kind { allocate, release, compute, begin_stream };
  Kind kind = Kind::allocate;
  int block = -1;             // allocate, release
  int layer = -1, part = -1;  // compute (part -1 outside streams), begin_stream (its first layer)
};

struct NodeProgram {
  int node = 1;
  std::vector<uint64_t> buffer_bytes;  // per buffer
  // Every allocation and release the executor makes, in its order, between
  // the points where it computes (schedule_memory()); the memory prediction
  // replays the same sequence.
  std::vector<Block> blocks;
  std::vector<MemoryEvent> schedule;
  std::vector<LayerStep> layers;  // per model layer
  std::vector<int> neighbours;    // nodes this node exchanges with directly (sorted)
  std::vector<Stream> streams;
  // Layers whose regions go to the coordinator at the end, in this order,
  // their buffers kept to the end: empty for the model's output alone. A
  // task (work stealing, partition/task_plan.hpp) returns every layer a
  // later task reads.
  std::vector<int> results;
  // Layers with weight_bytes 0 read their weights where flash holds them
  // (read_weights_in_place()).
  bool weights_in_place = false;

  // Bytes this node sends to and receives from other nodes and the
  // coordinator in one inference (its output to the coordinator included).
  uint64_t bytes_sent = 0, bytes_received = 0;
};

}  // namespace splitinfer

#include <string>

#include "arena.hpp"
#include "graph.hpp"

namespace splitinfer {

// Fills program.blocks and program.schedule (and the steps' block numbers)
// from its steps: per layer its input tiles, output buffer, weights and
// scratch, computed, then its transient blocks and the buffers whose last
// use it is released; a stream's whole inputs, kept weights and last
// buffer, then part by part as above; last the model output's buffer. The
// builder calls it, and read_weights_in_place() again.
void schedule_memory(const Model& model, NodeProgram& program);

// Replays program.schedule on `layout` (whose capacity is the RAM cap),
// throwing the Error of the first allocation that does not fit. Returns the
// peak bytes. With `layer_footprints`, also each layer's footprint: the
// bytes the arena spans while the layer computes (the largest of its parts').
uint64_t replay_memory(const Model& model, const NodeProgram& program, ArenaLayout& layout,
                       const std::string& node_label,
                       std::vector<uint64_t>* layer_footprints = nullptr);

// The executor's arena, following its program's schedule: advance() performs
// every event up to the next compute (or begin_stream) point and checks that
// it is the one the executor is at, so the executor allocates nothing of its
// own accord and the prediction cannot drift from the run.
class ScheduledArena {
 public:
  ScheduledArena(Arena& arena, const Model& model, const NodeProgram& program,
                 const std::string& node_label);
  // Performs the schedule up to the point `kind` (compute or begin_stream)
  // of `layer` (and `part`); throws Error("internal: ...") when the next
  // point is another.
  void advance(MemoryEvent::Kind kind, int layer, int part = -1);
  // Performs the rest of the schedule (releases): the arena is empty again.
  void finish();
  // Where block `block` is now (null: not allocated, or -1).
  char* at(int block) const { return block < 0 ? nullptr : pointers_[block]; }
  // The blocks the last advance() released.
  const std::vector<int>& released() const { return released_; }

 private:
  void perform(const MemoryEvent& event);

  Arena& arena_;
  const Model& model_;
  const NodeProgram& program_;
  const std::string& node_label_;
  size_t next_ = 0;
  std::vector<char*> pointers_;
  std::vector<int> released_;
};

// One message of an inference between two ranks (0 the coordinator, 1..N
// the nodes): a region of some layer's output. Every transfer the run makes,
// every byte count the planner predicts and the cost model's phases come
// from node_messages() and cluster_messages(), so they cannot disagree.
struct Message {
  enum class Kind {
    input_piece,  // coordinator -> node: a piece of a map the coordinator holds (the input; relay)
    halo,         // node -> node: a piece of a map the sender computed
    relay,        // node -> coordinator: its region of a layer (the relay baseline)
    output,       // node -> coordinator: its region of the model's output
  };
  Kind kind = Kind::input_piece;
  int from = 0, to = 0;
  // Pieces: the layer whose input slot `slot` they feed. Relay and output:
  // the layer whose region they carry (slot -1).
  int layer = 0, slot = -1;
  Region region;  // of the map it is a piece of
  size_t element_bytes = 4;
  uint64_t bytes() const { return region.bytes(element_bytes); }
};

// Every message `program`'s node sends or receives in one inference, in the
// order it makes them: layer by layer, each input slot's pieces received
// then sent (as the slot lists them), then the relay of its region; last its
// region of the model's output.
std::vector<Message> node_messages(const Model& model, const NodeProgram& program);

// Every message of one inference, once, in the coordinator's order: layer by
// layer, the pieces of each input slot (node by node, as each receives
// them), then the relay of the layer's regions; last the output gather.
std::vector<Message> cluster_messages(const Model& model, const std::vector<NodeProgram>& programs);

// Bytes a node sends and receives for each layer (the layer's input pieces,
// relayed regions, and the output to the coordinator): node_messages() by layer.
struct LayerTraffic {
  uint64_t sent = 0, received = 0;
};
std::vector<LayerTraffic> layer_traffic(const Model& model, const NodeProgram& program);

// What the node computes of layer `layer_index`: its region, or, in a
// stream, every part's share (overlapping where parts recompute borders).
std::vector<Region> computed_parts(const NodeProgram& program, int layer_index);

// Whether part `out` of a layer whose region is `region` lies contiguous in
// the region's buffer (all its rows and columns, some channels): computed
// there in place. Returns the byte offset, or -1.
int64_t part_offset(const Region& out, const Region& region, size_t element_bytes);

// What part `part` of `stream` holds of input `slot` of layer `layer_index`
// (reading layer `source`): the source's part when the source is in the run,
// else the input as the node holds it for the whole run (input.needed).
const Region& held_region(const NodeProgram& program, const Stream& stream, size_t part,
                          int layer_index, int slot, int source);

// The layers `program` returns to the coordinator at the end (results), in
// order: program.results, or the model's output when it names none.
std::vector<int> result_layers(const Model& model, const NodeProgram& program);

// What an allocation is for, as error messages name it.
std::string allocation_purpose(const std::string& node_label, const Layer& layer, const char* what);
std::string allocation_purpose(const std::string& node_label, const Model& model,
                               const Block& block);

}  // namespace splitinfer
