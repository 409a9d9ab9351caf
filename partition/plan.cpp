#include "plan.hpp"

#include <cstdio>

#include "../src/error.hpp"
#include "../src/format.hpp"
#include "../src/node_program.hpp"
#include "strategies.hpp"

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

}  // namespace

Plan make_plan(const Model& model, const PlanOptions& options) {
  if (options.nodes < 1) throw Error("--nodes must be at least 1");
  Plan plan;
  plan.nodes = options.nodes;
  plan.strategy = options.strategy.empty() ? "spatial" : options.strategy;
  plan.ram_cap_bytes = options.ram_cap_bytes;
  plan.flash_cap_bytes = options.flash_cap_bytes;
  if (plan.strategy == "spatial") {
    parse_grid(options.grid, plan.nodes, plan.grid_rows, plan.grid_cols);
    plan.regions = spatial_regions(model, plan.grid_rows, plan.grid_cols);
  } else if (plan.strategy == "channel") {
    if (!options.grid.empty()) throw Error("--grid applies to the spatial strategy only");
    plan.regions = channel_regions(model, plan.nodes);
  } else if (plan.strategy == "relay") {
    // Split_inference_microcontrollers' scheme, the baseline: each node
    // computes a contiguous run of every layer's flattened output (a channel
    // range), and all traffic goes through the coordinator.
    if (!options.grid.empty()) throw Error("--grid applies to the spatial strategy only");
    plan.regions = channel_regions(model, plan.nodes);
    plan.via_coordinator = true;
  } else {
    throw Error("strategy '" + plan.strategy +
                "' is not available in this version (spatial, channel, relay)");
  }

  uint64_t largest_peak = 0, largest_flash = 0;
  for (int k = 1; k <= plan.nodes; ++k) {
    const NodeProgram program = build_node_program(model, plan.regions, k, plan.via_coordinator);
    NodePlan node;
    node.node = k;
    for (size_t i = 0; i < model.layers.size(); ++i)
      node.flash_bytes += weight_slice_bytes(model.layers[i], plan.regions[i][k - 1], false);
    ArenaLayout unlimited;
    node.predicted_peak_ram_bytes = replay_memory(
        model, program, unlimited, "node " + std::to_string(k), &node.layer_peak_ram_bytes);
    for (const LayerTraffic& layer : layer_traffic(model, program)) {
      node.layer_bytes_sent.push_back(layer.sent);
      node.layer_bytes_received.push_back(layer.received);
    }
    node.predicted_bytes_sent = program.bytes_sent;
    node.predicted_bytes_received = program.bytes_received;
    largest_peak = std::max(largest_peak, node.predicted_peak_ram_bytes);
    largest_flash = std::max(largest_flash, node.flash_bytes);
    plan.node_plans.push_back(node);
  }
  if (largest_peak > options.ram_cap_bytes)
    throw Error("a node needs " + format_bytes(largest_peak) + " of RAM but the cap is " +
                format_bytes(options.ram_cap_bytes) +
                "; the smallest cap that fits this plan is --ram " + std::to_string(largest_peak));
  if (largest_flash > options.flash_cap_bytes)
    throw Error("a node's weights take " + format_bytes(largest_flash) +
                " of flash but the cap is " + format_bytes(options.flash_cap_bytes) +
                "; the smallest cap that fits this plan is --flash " +
                std::to_string(largest_flash));
  plan.plan_id =
      digest(options.model_digest + "|" + std::to_string(plan.nodes) + "|" + plan.strategy + "|" +
             std::to_string(plan.grid_rows) + "x" + std::to_string(plan.grid_cols) + "|" +
             std::to_string(plan.ram_cap_bytes) + "|" + std::to_string(plan.flash_cap_bytes));
  if (options.device) {
    plan.device = options.device;
    plan.emulated = estimate_time(model, node_programs(model, plan), *plan.device);
  }
  return plan;
}

std::vector<NodeProgram> node_programs(const Model& model, const Plan& plan) {
  std::vector<NodeProgram> programs;
  for (int k = 1; k <= plan.nodes; ++k)
    programs.push_back(build_node_program(model, plan.regions, k, plan.via_coordinator));
  return programs;
}

}  // namespace splitinfer
