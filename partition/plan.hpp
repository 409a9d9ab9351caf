#pragma once
// A plan: which node computes what, and what each node is predicted to need
// (RAM peak, flash, bytes sent and received). Pure data: `run` executes it.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "../src/arena.hpp"
#include "../src/graph.hpp"
#include "cost_model.hpp"
#include "device.hpp"
#include "node_program_builder.hpp"
#include "strategy_registry.hpp"
#include "task_plan.hpp"

namespace splitinfer {

struct NodePlan {
  int node = 1;  // MPI rank of the node (rank 0 is the coordinator)
  uint64_t predicted_peak_ram_bytes = 0;
  uint64_t flash_bytes = 0;  // the node's weight slice
  uint64_t predicted_bytes_sent = 0;
  uint64_t predicted_bytes_received = 0;
  // Per layer: the arena footprint while it runs, the bytes sent and received.
  std::vector<uint64_t> layer_peak_ram_bytes, layer_bytes_sent, layer_bytes_received;
  std::vector<uint64_t> layer_macs;  // per layer: MACs it computes (a stream's parts: all of them)
  // digest() of the node file's bytes, recorded when the plan is written;
  // empty for plans written before it (their node files are not checked).
  std::string file_digest;
  // The node's own caps: its device's RAM and flash (heterogeneous
  // clusters), else the plan's.
  uint64_t ram_cap_bytes = ArenaLayout::kUnlimited;
  uint64_t flash_cap_bytes = ArenaLayout::kUnlimited;
};

struct Plan {
  int nodes = 1;
  Strategy strategy = Strategy::spatial;
  int grid_rows = 1, grid_cols = 1;  // spatial, fused
  bool via_coordinator = false;      // relay: every piece goes through rank 0
  std::string plan_id;               // ties the node files to this plan
  std::string model_digest;          // PlanOptions::model_digest of the model planned
  // The caps (a heterogeneous cluster: the largest node's; NodePlan has each node's).
  uint64_t ram_cap_bytes = ArenaLayout::kUnlimited;
  uint64_t flash_cap_bytes = ArenaLayout::kUnlimited;
  std::vector<NodePlan> node_plans;
  LayerRegions regions;  // [layer][node - 1]: what each node computes
  // fused: which node sends each piece (a partition of every map inside the
  // regions, which overlap); empty when the regions partition every map.
  LayerRegions owners;
  int fuse = 0;        // fused: layers per block (0: as many as possible)
  bool reuse = false;  // fused: overlap reuse instead of recomputation
  // Per layer, what cut it, for people (plan's table, jobs/plot): the
  // strategy's name, or another's for layers it leaves to one ("spatial"
  // between fused blocks and after joined branches); auto: the chosen
  // candidate ("spatial 2x2", "channel"), the input layer's empty; " streamed"
  // appended to layers of streams.
  std::vector<std::string> layer_strategies;
  // Runs of layers computed part by part on every node (streaming); their
  // layers' regions hold what the run reads, like fused blocks.
  StreamGroups streams;
  bool weights_in_place = false;  // see PlanOptions
  bool input_pixels = false;      // see PlanOptions
  // MACs computed beyond the model's own: borders recomputed by fused tiles
  // and by the parts of streams.
  uint64_t recomputed_macs = 0;
  // Planned for devices: node k's profile devices[k - 1] (the same for
  // every node unless the cluster is mixed), and the emulated time of one
  // inference on that cluster (partition/cost_model.hpp); empty: none.
  std::vector<DeviceProfile> devices;
  TimeEstimate emulated;
  // Planned for devices with an NVM (intermittent power, run --power): the
  // job durations (seconds of device time; 0: a whole layer) that run
  // --reconfigure dynamic chooses among, DynBal's candidate configurations.
  std::vector<double> job_seconds_candidates;
  // With --tasks: the tiles as tasks (work stealing); `regions` then hold,
  // per node, the weights it keeps in flash (node_weight_regions()), and
  // the predictions are for the static schedule (each node its own tasks),
  // the peak the largest of any task it may take.
  TaskTable tasks;
};

// The most nodes a plan has: plan refuses to make a larger one and run to
// read one (65536 ranks is beyond any emulated cluster splitinfer targets,
// and keeps per-node tables of a plan file small).
constexpr int kMaxNodes = 65536;

struct PlanOptions {
  int nodes = 1;  // auto: 0 asks for the fewest nodes that fit; -1: not given (1, or auto's fewest)
  Strategy strategy = Strategy::spatial;
  std::string grid;    // "RxC" for spatial and fused; empty: rows only (N x 1)
  int fuse = 0;        // fused: layers per block (0: as many as possible)
  bool reuse = false;  // fused: overlap reuse
  // spatial and fused: "R" or "RxC", stream every run of layers that can
  // be streamed in parts of at most R rows (and C columns); empty: none.
  std::string stream;
  bool keep_weights = false;  // with stream: the runs keep their weights in RAM
  // spatial and fused: cut the maps into this many tiles (more than the
  // nodes), run as tasks any node may take (run --schedule steal); 0: none.
  int tasks = 0;
  // spatial in rows (grid N x 1): node k's share of every map's rows (e.g.
  // 2,1 for a node twice as fast as the other); empty: equal.
  std::vector<double> row_shares;
  // Nodes read weights where flash holds them (memory-mapped flash,
  // execute-in-place) instead of copying each layer's into RAM; float16
  // weights are still widened into RAM.
  bool weights_in_place = false;
  // The input arrives as 8-bit pixels, normalised and quantized by the
  // model's first op on the nodes (take_input_as_pixels() of graph.hpp): a
  // quarter of float32's bytes over the links and in the nodes' RAM.
  bool input_pixels = false;
  uint64_t ram_cap_bytes = ArenaLayout::kUnlimited;
  uint64_t flash_cap_bytes = ArenaLayout::kUnlimited;
  std::string model_digest;  // identifies the model's content
  // With a device profile: predict the emulated time on nodes of this profile.
  std::optional<DeviceProfile> device;
  // A cluster node by node (plan --devices), node k's profile devices[k - 1]:
  // fixes the node count; each node's RAM and flash caps are its device's
  // (ram_cap_bytes and flash_cap_bytes, when not unlimited, replace them for
  // every node); static cuts give each node work in proportion to its MAC
  // rate, less where its own caps require; the cost model times each node
  // on its device. Excludes `device`.
  std::vector<DeviceProfile> devices;
  // Per node, the weight of its part in the static cuts (spatial and fused
  // tiles, channel ranges, relay); empty: equal parts. make_plan() sets it
  // from `devices`; cuts into tasks leave it aside.
  std::vector<double> node_shares;
};

// Plans `model` (validated, with weights). Throws Error when the options
// cannot be met, saying the smallest cap that would fit.
Plan make_plan(const Model& model, const PlanOptions& options);

// The devices of the cluster planned for, node by node: `devices`, or
// `device` for each of `nodes` nodes; empty without either.
std::vector<DeviceProfile> cluster_devices(const PlanOptions& options, int nodes);
// Node `node`'s RAM and flash caps under `options` (see PlanOptions::devices).
uint64_t node_ram_cap(const PlanOptions& options, int node);
uint64_t node_flash_cap(const PlanOptions& options, int node);

// The job durations a plan for devices with an NVM offers run --reconfigure
// dynamic (Plan::job_seconds_candidates).
const std::vector<double>& default_job_seconds_candidates();

// Per node, the work static cuts give it on a mixed cluster: its device's MAC
// rate for the model's arithmetic (int8 when most MACs are quantized); empty
// for a cluster of one profile (equal cuts).
std::vector<double> device_shares(const Model& model, const std::vector<DeviceProfile>& devices);

// FNV-1a 64-bit of `bytes`, as 16 hex digits: a content digest for files.
std::string digest(const std::string& bytes);
// digest() of a file's bytes; throws Error when it cannot be read.
std::string file_digest(const std::string& path);

}  // namespace splitinfer
