#include "plan.hpp"

#include <cstdio>

#include "../src/error.hpp"
#include "../src/format.hpp"
#include "auto_plan.hpp"
#include "prediction.hpp"
#include "strategies.hpp"
#include "stream_plan.hpp"

namespace splitinfer {

std::string digest(const std::string& bytes) {
  uint64_t hash = 0xcbf29ce484222325ULL;  // FNV-1a 64-bit offset basis and prime
  for (unsigned char byte : bytes) {
    hash ^= byte;
    hash *= 0x100000001b3ULL;
  }
  char text[17];
  std::snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(hash));
  return text;
}

namespace {

void parse_grid(const std::string& grid, int nodes, int& rows, int& cols) {
  rows = nodes, cols = 1;
  if (grid.empty()) return;
  const size_t x = grid.find_first_of("xX");
  try {
    if (x == std::string::npos) throw Error("");
    size_t used = 0;
    rows = std::stoi(grid.substr(0, x), &used);
    if (used != x) throw Error("");
    cols = std::stoi(grid.substr(x + 1), &used);
    if (used != grid.size() - x - 1) throw Error("");
  } catch (const std::exception&) {
    throw Error("--grid '" + grid + "' is not RxC (e.g. 2x4)");
  }
  if (rows < 1 || cols < 1 || rows * cols != nodes)
    throw Error("--grid " + grid + " has " + std::to_string(rows * cols) + " tiles but there are " +
                std::to_string(nodes) + " nodes");
}

// "R" or "RxC": parts of at most R rows (and C columns).
void parse_parts(const std::string& parts, int64_t& rows, int64_t& cols) {
  const size_t x = parts.find_first_of("xX");
  try {
    size_t used = 0;
    rows = std::stoll(parts.substr(0, x), &used);
    if (used != std::min(x, parts.size())) throw Error("");
    cols = 0;
    if (x != std::string::npos) {
      cols = std::stoll(parts.substr(x + 1), &used);
      if (used != parts.size() - x - 1) throw Error("");
    }
  } catch (const std::exception&) {
    rows = -1;
  }
  if (rows < 1 || cols < 0)
    throw Error("--stream '" + parts +
                "' is not R or RxC (parts of at most R rows, and C columns; e.g. 4 or 8x8)");
}

double proxy_latency(const Model& model, const Plan& plan) {
  // Without a device profile: every layer as long as its busiest node's
  // MACs at 100 MMAC/s plus the bytes moved in it over one 100 Mbit/s link.
  double seconds = 0;
  for (size_t i = 1; i < model.layers.size(); ++i) {
    uint64_t busiest = 0, moved = 0;
    for (int k = 0; k < plan.nodes; ++k) {
      busiest = std::max(busiest, plan.node_plans[k].layer_macs[i]);
      moved += plan.node_plans[k].layer_bytes_received[i];
    }
    seconds += busiest / 1e8 + moved / 12.5e6;
  }
  return seconds;
}

}  // namespace

Plan make_plan(const Model& model, const PlanOptions& options) {
  if (options.strategy == "auto") {
    if (!options.grid.empty() || options.fuse != 0 || options.reuse || !options.stream.empty() ||
        options.keep_weights)
      throw Error(
          "--grid, --fuse, --reuse, --stream and --keep-weights do not apply to the auto strategy "
          "(it chooses)");
    if (options.nodes == 0 || options.nodes < -1)
      throw Error("--nodes must be at least 1 (or omitted: the fewest nodes that fit)");
    PlanOptions search = options;
    search.nodes = std::max(options.nodes, 0);
    // The emulated latency on the device, or without one a rough stand-in.
    const PlanScore score = [&](const Plan& candidate) {
      return options.device ? estimate_time(model, node_programs(model, candidate), *options.device)
                                  .total_seconds
                            : proxy_latency(model, candidate);
    };
    Plan plan = auto_plan(model, search, score);
    if (options.weights_in_place) {  // needs less RAM than the plan chosen with copies
      plan.weights_in_place = true;
      predict_nodes(model, plan);
    }
    if (options.device) {
      plan.device = options.device;
      plan.emulated = estimate_time(model, node_programs(model, plan), *plan.device);
    }
    plan.plan_id =
        digest(options.model_digest + "|auto|" + std::to_string(plan.nodes) + "|" +
               std::to_string(plan.ram_cap_bytes) + "|" + std::to_string(plan.flash_cap_bytes) +
               (options.weights_in_place ? "|in place" : ""));
    return plan;
  }
  if (options.nodes == -1)
    return make_plan(model, [&] {
      PlanOptions one = options;
      one.nodes = 1;
      return one;
    }());
  if (options.nodes < 1) throw Error("--nodes must be at least 1");
  Plan plan;
  plan.nodes = options.nodes;
  plan.strategy = options.strategy.empty() ? "spatial" : options.strategy;
  plan.ram_cap_bytes = options.ram_cap_bytes;
  plan.flash_cap_bytes = options.flash_cap_bytes;
  if ((options.fuse != 0 || options.reuse) && plan.strategy != "fused")
    throw Error(std::string(options.fuse != 0 ? "--fuse" : "--reuse") +
                " applies to the fused strategy only");
  if (options.fuse < 0) throw Error("--fuse must be 0 (whole blocks) or more");
  if (!options.grid.empty() && plan.strategy != "spatial" && plan.strategy != "fused")
    throw Error("--grid applies to the spatial and fused strategies only");
  plan.layer_strategies.assign(model.layers.size(), plan.strategy);
  if (plan.strategy == "spatial") {
    parse_grid(options.grid, plan.nodes, plan.grid_rows, plan.grid_cols);
    plan.regions = spatial_regions(model, plan.grid_rows, plan.grid_cols);
  } else if (plan.strategy == "fused") {
    parse_grid(options.grid, plan.nodes, plan.grid_rows, plan.grid_cols);
    plan.fuse = options.fuse;
    plan.reuse = options.reuse;
    FusedRegions fused =
        fused_regions(model, plan.grid_rows, plan.grid_cols, plan.fuse, plan.reuse);
    plan.regions = std::move(fused.regions);
    plan.owners = std::move(fused.owners);
    for (size_t i = 0; i < model.layers.size(); ++i)
      if (fused.block[i] == 0) plan.layer_strategies[i] = "spatial";
  } else if (plan.strategy == "branches") {
    const std::vector<int> branches = independent_branches(model);
    plan.regions = branch_regions(model, branches, plan.nodes);
    for (size_t i = 0; i < model.layers.size(); ++i)
      if (branches[i] < 0) plan.layer_strategies[i] = "spatial";
  } else if (plan.strategy == "channel") {
    plan.regions = channel_regions(model, plan.nodes);
  } else if (plan.strategy == "relay") {
    // Split_inference_microcontrollers' scheme, the baseline: each node
    // computes a contiguous run of every layer's flattened output (a channel
    // range), and all traffic goes through the coordinator.
    plan.regions = channel_regions(model, plan.nodes);
    plan.via_coordinator = true;
  } else {
    throw Error("unknown strategy '" + plan.strategy +
                "' (auto, spatial, fused, channel, branches, relay)");
  }

  if (options.keep_weights && options.stream.empty())
    throw Error("--keep-weights applies to streamed plans only (--stream)");
  if (!options.stream.empty()) {
    if (plan.strategy != "spatial" && plan.strategy != "fused")
      throw Error("--stream applies to the spatial and fused strategies only (auto chooses)");
    if (plan.reuse)
      throw Error(
          "--stream and --reuse do not go together (streamed layers are never whole, so "
          "no tile can fetch their borders)");
    StreamParts parts;
    parse_parts(options.stream, parts.rows, parts.cols);
    parts.keep_weights = options.keep_weights;
    // Fused: each block streams whole (DeepThings' tiles, several per node);
    // spatial: each widening block (inverted residuals).
    std::vector<int> block;
    if (plan.strategy == "fused") block = fused_blocks(model, plan.fuse);
    if (stream_plan(model, stream_runs(model, block, plan.strategy == "spatial"), parts, plan) == 0)
      throw Error("--stream: no run of layers of model '" + model.name +
                  "' can be streamed with this grid");
  }
  plan.weights_in_place = options.weights_in_place;
  predict_nodes(model, plan);
  const uint64_t peak = largest_peak_ram(plan), flash = largest_flash(plan);
  if (peak > options.ram_cap_bytes)
    throw Error("a node needs " + format_bytes(peak) + " of RAM but the cap is " +
                format_bytes(options.ram_cap_bytes) +
                "; the smallest cap that fits this plan is --ram " + std::to_string(peak));
  if (flash > options.flash_cap_bytes)
    throw Error("a node's weights take " + format_bytes(flash) + " of flash but the cap is " +
                format_bytes(options.flash_cap_bytes) +
                "; the smallest cap that fits this plan is --flash " + std::to_string(flash));
  plan.plan_id =
      digest(options.model_digest + "|" + std::to_string(plan.nodes) + "|" + plan.strategy + "|" +
             std::to_string(plan.grid_rows) + "x" + std::to_string(plan.grid_cols) + "|" +
             std::to_string(plan.ram_cap_bytes) + "|" + std::to_string(plan.flash_cap_bytes) + "|" +
             std::to_string(plan.fuse) + "|" + std::to_string(plan.reuse) + "|" + options.stream +
             (options.keep_weights ? "|kept" : "") + (options.weights_in_place ? "|in place" : ""));
  if (options.device) {
    plan.device = options.device;
    plan.emulated = estimate_time(model, node_programs(model, plan), *plan.device);
  }
  return plan;
}

}  // namespace splitinfer
