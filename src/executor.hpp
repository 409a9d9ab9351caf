#pragma once
// Runs one node's program: for every layer, assembles the input tiles it
// needs (its own data plus the pieces the Exchange brings), computes its
// region of the output, and allocates as its program's schedule says (the
// schedule replay_memory() replays to predict).
#include <functional>
#include <string>
#include <utility>

#include "arena.hpp"
#include "graph.hpp"
#include "node_program.hpp"
#include "ops/gemm.hpp"
#include "tensor.hpp"
#include "trace.hpp"

namespace splitinfer {

enum class Kernels { fast, reference };

// Moves pieces between this node, the other nodes and the coordinator (MPI in
// the runtime). The executor calls it on every node in the same order: for
// every input slot that has receives or sends, or whose `exchange` flag is set.
class Exchange {
 public:
  virtual ~Exchange() = default;
  // Starts sending the pieces `input.sends` lists from `stored` (this node's
  // region `stored_region` of the input layer; null when empty) and
  // receiving the pieces `input.receives` lists into `tile` (holding
  // input.needed; null when the slot is read in place). The received pieces
  // are in `tile`, and `stored` may change, only after finish().
  virtual void exchange(int layer_index, int slot, const InputSlot& input, const void* stored,
                        const Region& stored_region, void* tile) = 0;
  // Completes every exchange started.
  virtual void finish() {}
  // Sends this node's computed region of a layer to the coordinator (steps
  // with `to_coordinator`: the relay baseline).
  virtual void to_coordinator(int layer_index, const Tensor& out) = 0;
};

// An intermittently powered node (run --power): its emulated power supply
// and non-volatile memory (src/runtime/power.hpp). The executor cuts each
// layer's output into jobs (tiles of bands of channels by bands of rows, as
// the power supply sizes them) and hands each job's output to job(); when the power
// fails the node's RAM (its arena) is lost, and the executor reads back what
// NVM holds and computes the job again. Everything kept in NVM has a key
// (nvm_keys()). As on DynBal's board the maps live in the NVM: a job reads
// its inputs from it and writes its output to it; the arena mirrors the NVM,
// read back after a failure at no device time.
class PowerSupply {
 public:
  virtual ~PowerSupply() = default;
  // A contiguous run of a kept tensor: `bytes` at `data`, `offset` bytes into it.
  struct Chunk {
    uint64_t offset = 0;
    const void* data = nullptr;
    uint64_t bytes = 0;
  };
  // Keeps `chunk` of `key` in NVM: what the node received for a layer,
  // before it computes the layer (the power holds meanwhile).
  virtual void keep(int64_t key, const Chunk& chunk) = 0;
  // What a job did: read `input_bytes` from NVM and `weight_bytes` from
  // flash, computed `macs` MACs of `layer`; its output (`chunks` of `key`)
  // goes to NVM and is committed as `progress`.
  struct Job {
    int layer = 0;
    uint64_t input_bytes = 0, weight_bytes = 0, macs = 0;
    int64_t key = 0;
    std::vector<Chunk> chunks;
    std::string progress;
  };
  // False: the power failed first (while the job read or computed, or
  // tearing its writes): the node lost its RAM and waited out the recharge.
  virtual bool job(const Job& job) = 0;
  // A job's share of a layer's output: a band of `channels` channels by a
  // band of `rows` rows (all columns).
  struct Tile {
    int64_t channels = 1, rows = 1;
    bool operator==(const Tile& other) const {
      return channels == other.channels && rows == other.rows;
    }
  };
  // A layer about to be cut into jobs: its output's channels and rows, and
  // what each job of it costs: the inputs a tile reads from NVM (a band of
  // channels of a dense convolution reads every input channel, a band of
  // rows its rows and their halo), and the weights, MACs and output bytes of
  // the layer (a tile's share is its channels' share of the weights, its
  // share of the MACs and output).
  struct LayerShape {
    int layer = 0;
    int64_t channels = 1, rows = 1;
    std::function<uint64_t(const Tile&)> input_bytes;
    uint64_t weight_bytes = 0;  // the layer's, flash-side
    uint64_t macs = 0;          // the layer's
    uint64_t output_bytes = 0;  // the layer's
  };
  // The tile of one job of the layer (at least one channel and one row; at
  // most the layer's). Jobs run one band of channels after another, each
  // band's rows top to bottom.
  virtual Tile job_tile(const LayerShape& layer) = 0;
  // Reads `bytes` of `key` at `offset` back into `data` after a failure.
  virtual void restore(int64_t key, uint64_t offset, void* data, uint64_t bytes) = 0;
};

// The NVM keys of `program` and their bytes: every layer's output region
// (nvm_output_key()) and every input tile assembled from received pieces
// (nvm_tile_key()).
std::vector<std::pair<int64_t, uint64_t>> nvm_keys(const Model& model, const NodeProgram& program);
inline int64_t nvm_output_key(int64_t layer) { return layer * 1024; }
// Throws Error for a slot beyond 1022 (no layer of a model file has so many inputs).
int64_t nvm_tile_key(int64_t layer, int64_t slot);

class Executor {
 public:
  // `model` is validated, with this node's weights (slices); it must outlive
  // the executor.
  Executor(const Model& model, NodeProgram program, std::string node_label,
           Kernels kernels = Kernels::fast);

  const NodeProgram& program() const { return program_; }
  // How int8 accumulators are requantized (default: the model's own).
  void set_requantization(Requantization mode) { requantization_ = mode; }
  // Compute a relu or relu6 after a float32 convolution as the convolution
  // stores its values (default: off). Only the activation's values are then
  // seen: a convolution's own are gone (off for --dump-layers).
  void set_fuse_activations(bool fuse) { fuse_activations_ = fuse; }
  // Record a slice per layer computed into `trace` (null: none).
  void set_trace(Trace* trace) { trace_ = trace; }
  // A straggler on purpose (`run --slow`): every kernel call is followed by a
  // sleep of (factor - 1) times its own time, so the node takes `factor`
  // times as long to compute and frees its core meanwhile. Default 1.
  void set_slowdown(double factor) { slowdown_ = factor; }
  // The seconds spent computing (kernels, and the sleeps of a slowdown) since
  // the last call of reset_busy_seconds(): the rest of an inference is spent
  // waiting for pieces and sending them.
  double busy_seconds() const { return busy_seconds_; }
  void reset_busy_seconds() { busy_seconds_ = 0; }
  // Intermittent power (null: none): jobs, their outputs kept in NVM, and
  // after every power failure the arena overwritten and read back. Programs
  // with streams are refused; activations are computed on their own.
  void set_power(PowerSupply* power) { power_ = power; }
  // The next run() under power resumes an inference whose NVM holds the
  // first `jobs_done` jobs of `tile` of layer `layer` (run --resume): the
  // layers before it and those jobs are read back from NVM, not computed
  // (the exchanges still take place, as the neighbours run them), and the
  // layer's other jobs keep that tile; layer -1: none.
  void set_resume(int layer, PowerSupply::Tile tile, int64_t jobs_done) {
    resume_layer_ = layer;
    resume_tile_ = tile;
    resume_jobs_ = jobs_done;
  }

  // One inference. `on_layer` (may be empty) sees this node's region of every
  // layer it computes right after computing it (and may change it: a checker
  // can feed later layers reference values; a stream's layers are seen after
  // the whole stream); `on_output` sees its region of
  // the model's output (when not empty), or of each of the program's
  // results in turn. The arena is empty again afterwards.
  void run(Arena& arena, Exchange& exchange,
           const std::function<void(int layer_index, Tensor&)>& on_layer,
           const std::function<void(const Tensor&)>& on_output) const;

 private:
  // Input `slot` of a layer as the node holds it for the whole layer: a view
  // of its stored region, or its tile (the schedule's block) of its own data
  // and the pieces the exchange brings.
  Tensor input(int layer_index, int slot, const ScheduledArena& memory, Exchange& exchange,
               const std::vector<Tensor>& outputs) const;
  // The weights for computing `out` (of the layer's region): streamed from
  // flash into `in_ram` (its block), or read where flash holds them (null).
  // `block_bytes`: the room at `in_ram` when it has more than `out`'s
  // weights need (a job's channels in the layer's block), so that each blob
  // can start aligned; 0: exactly as much.
  std::map<std::string, const void*> weights(int layer_index, const Region& out,
                                             char* in_ram, uint64_t* streamed = nullptr,
                                             uint64_t block_bytes = 0) const;
  // run() under intermittent power (set_power()).
  void run_powered(Arena& arena, Exchange& exchange,
                   const std::function<void(int layer_index, Tensor&)>& on_layer,
                   const std::function<void(const Tensor&)>& on_output) const;
  // A stream's layers, part by part; with `assembled`, also each earlier
  // layer's region, from its parts, into outputs[] (outside the arena).
  void run_stream(const Stream& stream, ScheduledArena& memory, Exchange& exchange,
                  std::vector<Tensor>& outputs, std::vector<std::vector<char>>* assembled) const;
  // `out` (region `out_region` of the layer) from `inputs` (regions
  // `needed`) with the layer's kernel from the op table; a float32
  // convolution computes only rows [row_begin, row_end) of `out` (-1: to the
  // last).
  void compute(int layer_index, const std::vector<Tensor>& inputs,
               const std::vector<Region>& needed, const Region& out_region, Tensor& out,
               const std::map<std::string, const void*>& weights, void* scratch,
               int64_t row_begin = 0, int64_t row_end = -1,
               Epilogue epilogue = Epilogue::none) const;
  // The activation layer `layer_index` computes as it stores (the next
  // layer, then skipped), or none.
  Epilogue fused_activation(int layer_index) const;
  // The rows [first, last) of the node's region of a layer (counted from its
  // top) that it can compute before the exchange of its input finishes: all
  // of them when it receives nothing for the layer (any op, unless written
  // over an input being sent); for a float32 convolution, the one range of
  // rows whose window reads only the node's own part of the input. Empty
  // when the layer cannot be split so.
  std::pair<int64_t, int64_t> rows_without_halo(int layer_index,
                                                const std::vector<Tensor>& outputs) const;

  const Model& model_;
  NodeProgram program_;
  std::string node_label_;
  Kernels kernels_;
  Requantization requantization_;
  Trace* trace_ = nullptr;
  bool fuse_activations_ = false;
  double slowdown_ = 1;
  PowerSupply* power_ = nullptr;
  mutable int resume_layer_ = -1;
  mutable PowerSupply::Tile resume_tile_;
  mutable int64_t resume_jobs_ = 0;
  mutable double busy_seconds_ = 0;
  mutable double owed_seconds_ = 0;  // of a slowdown, not slept yet
};

}  // namespace splitinfer
