// `splitinfer plan MODEL.h5 --nodes N ... -o PLANDIR`: writes plan.h5 and one
// node_K.h5 per node, and prints a table of the plan layer by layer.
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "../../io/hdf5.hpp"
#include "../../io/model_file.hpp"
#include "../../io/output_file.hpp"
#include "../../io/plan_file.hpp"
#include "../../partition/plan.hpp"
#include "../../partition/prediction.hpp"
#include "../../partition/strategy_registry.hpp"
#include "../error.hpp"
#include "../format.hpp"
#include "commands.hpp"

namespace splitinfer {
namespace {

// The strategy that partitions layer `layer`: the one place the table asks,
// so that plans choosing a strategy per layer only change this.
std::string layer_strategy(const Plan& plan, size_t layer) {
  return layer < plan.layer_strategies.size() ? plan.layer_strategies[layer]
                                              : strategy_name(plan.strategy);
}

std::string milliseconds(double seconds) {
  char text[32];
  std::snprintf(text, sizeof text, "%.3f", seconds * 1e3);
  return text;
}

// One line per layer: op, strategy, the largest node's RAM footprint while it
// runs, the bytes all ranks send for it, and (with a device) how far it moves
// the cluster's latest clock; then the output gather and the totals.
void print_layer_table(const Model& model, const Plan& plan) {
  const BytesMoved moved = bytes_moved(
      model, plan.tasks.empty() ? node_programs(model, plan) : task_programs(model, plan.tasks));
  const bool timed = !plan.devices.empty();
  int width = 12;  // the strategy column: as wide as its longest entry
  for (size_t i = 0; i < model.layers.size(); ++i)
    width = std::max(width, static_cast<int>(layer_strategy(plan, i).size()));
  const auto row = [&](const std::string& index, const std::string& name, const char* op,
                       const std::string& strategy, const std::string& peak, uint64_t bytes,
                       double seconds) {
    std::printf("%4s  %-28.28s %-16s %-*s %12s %12s", index.c_str(), name.c_str(), op, width,
                strategy.c_str(), peak.c_str(), format_bytes(bytes).c_str());
    if (timed) std::printf(" %12s", milliseconds(seconds).c_str());
    std::printf("\n");
  };
  std::printf("\n%4s  %-28s %-16s %-*s %12s %12s", "#", "layer", "op", width, "strategy",
              "peak RAM", "moved");
  if (timed) std::printf(" %12s", "time ms");
  std::printf("\n");
  const std::vector<double> no_times(model.layers.size(), 0.0);
  const std::vector<double>& layer_seconds = timed ? plan.emulated.layer_seconds : no_times;
  for (size_t i = 0; i < model.layers.size(); ++i) {
    const Layer& layer = model.layers[i];
    if (layer.op == Op::input) continue;
    uint64_t peak = 0;
    for (const NodePlan& node : plan.node_plans)
      peak = std::max(peak, node.layer_peak_ram_bytes[i]);
    row(std::to_string(i), layer.name, op_name(layer.op), layer_strategy(plan, i),
        format_bytes(peak), moved.layers[i], layer_seconds[i]);
  }
  row("", "(output to the coordinator)", "", "", "", moved.output_gather,
      plan.emulated.output_gather_seconds);
  uint64_t total_moved = moved.output_gather, peak = 0;
  for (uint64_t bytes : moved.layers) total_moved += bytes;
  for (const NodePlan& node : plan.node_plans) peak = std::max(peak, node.predicted_peak_ram_bytes);
  row("", "total", "", "", format_bytes(peak), total_moved, plan.emulated.total_seconds);
  std::printf(
      "peak RAM: the largest node's; moved: bytes sent by all ranks, the coordinator "
      "included%s\n\n",
      timed ? "; time: how far the layer moves the latest clock of the cluster (rows add "
              "up to the total)"
            : "");
}

}  // namespace

namespace {

uint64_t model_macs(const Model& model) {
  uint64_t macs = 0;
  for (const Layer& layer : model.layers) macs += layer_macs(model, layer);
  return macs;
}

}  // namespace

int plan_command(const PlanCommandOptions& options) {
  h5::reuse_freed_memory();  // reads the model, writes the node files, ends
  std::optional<DeviceProfile> device;
  if (!options.device.empty()) device = load_device(options.device);
  std::vector<DeviceProfile> devices;
  if (!options.devices.empty()) devices = load_cluster(options.devices);
  const Model model = read_model(options.model_path);
  std::ifstream file(options.model_path, std::ios::binary);
  std::stringstream content;
  content << file.rdbuf();

  PlanOptions plan_options;
  plan_options.nodes = options.nodes;
  plan_options.strategy =
      options.strategy.empty() ? PlanOptions{}.strategy : parse_strategy(options.strategy);
  plan_options.grid = options.grid;
  plan_options.fuse = options.fuse;
  plan_options.tasks = options.tasks;
  plan_options.row_shares = options.row_shares;
  plan_options.reuse = options.reuse;
  plan_options.stream = options.stream;
  plan_options.keep_weights = options.keep_weights;
  plan_options.weights_in_place = options.weights_in_place;
  plan_options.input_pixels = options.input_pixels;
  // A device's RAM and flash are the caps unless --ram and --flash say otherwise.
  if (device) {
    plan_options.ram_cap_bytes = device->ram_bytes;
    plan_options.flash_cap_bytes = device->flash_bytes;
  }
  if (!options.ram.empty()) plan_options.ram_cap_bytes = parse_bytes(options.ram, "--ram");
  if (!options.flash.empty()) plan_options.flash_cap_bytes = parse_bytes(options.flash, "--flash");
  plan_options.model_digest = digest(content.str());
  plan_options.device = device;
  plan_options.devices = devices;
  const Plan plan = make_plan(model, plan_options);
  // The plan's files must not overwrite the model they are made from.
  std::vector<NamedPath> outputs = {{"--output", options.output_dir},
                                    {"the plan file", plan_path(options.output_dir)}};
  for (int node = 1; node <= plan.nodes; ++node)
    outputs.push_back({"the node file", node_path(options.output_dir, node)});
  check_output_paths(outputs, {{"the model", options.model_path}});
  write_plan(options.output_dir, model, plan);

  std::printf("plan '%s' for %s: %d node(s), strategy %s", options.output_dir.c_str(),
              model.name.c_str(), plan.nodes, strategy_name(plan.strategy));
  if (takes_option(plan.strategy, StrategyOption::grid))
    std::printf(" (grid %dx%d)", plan.grid_rows, plan.grid_cols);
  if (takes_option(plan.strategy, StrategyOption::fuse))
    std::printf(", blocks of %s layers%s", plan.fuse ? std::to_string(plan.fuse).c_str() : "all",
                plan.reuse ? ", overlap reuse" : "");
  if (!plan.streams.empty()) {
    int by_rows = 0, by_channels = 0;
    for (const StreamGroup& group : plan.streams) (group.part_channels ? by_channels : by_rows)++;
    std::printf("; streamed: %d run(s) of layers part by part, %d layer(s) by output channels",
                by_rows, by_channels);
    // A run reading the model's input takes it part by part from the coordinator.
    for (const StreamGroup& group : plan.streams)
      if (group.part_channels == 0 && group.first <= group.last &&
          std::any_of(model.layers.begin() + group.first, model.layers.begin() + group.last + 1,
                      [&](const Layer& layer) {
                        return std::any_of(layer.inputs.begin(), layer.inputs.end(),
                                           [&](int source) { return source == 0; });
                      })) {
        std::printf(" (the first from the input, in parts of %lldx%s of layer '%s')",
                    static_cast<long long>(group.part_rows),
                    group.part_cols ? std::to_string(group.part_cols).c_str() : "all",
                    model.layers[group.last].name.c_str());
        break;
      }
  }
  if (plan.input_pixels) std::printf("; the input as 8-bit pixels");
  if (plan.recomputed_macs > 0) {
    const uint64_t macs = model_macs(model);
    std::printf("; recomputes %llu MACs (%.1f%% of the model's %llu)",
                static_cast<unsigned long long>(plan.recomputed_macs),
                macs ? 100.0 * plan.recomputed_macs / macs : 0.0,
                static_cast<unsigned long long>(macs));
  }
  std::printf("\n");
  const auto cap = [](uint64_t bytes) {
    return bytes == ArenaLayout::kUnlimited ? std::string("unlimited") : format_bytes(bytes);
  };
  const bool mixed = !plan.devices.empty() && !same_devices(plan.devices);
  if (!plan.devices.empty() && !mixed)
    std::printf("device %s: RAM cap %s, flash cap %s\n", plan.devices[0].name.c_str(),
                cap(plan.ram_cap_bytes).c_str(), cap(plan.flash_cap_bytes).c_str());
  if (mixed)
    std::printf("devices %s: each node's caps its own (below)\n",
                cluster_name(plan.devices).c_str());
  print_layer_table(model, plan);
  for (const NodePlan& node : plan.node_plans) {
    std::printf("  node %d", node.node);
    if (mixed)
      std::printf(" (%s, RAM cap %s, flash cap %s, %.0f%% of the MACs)",
                  plan.devices[node.node - 1].name.c_str(), cap(node.ram_cap_bytes).c_str(),
                  cap(node.flash_cap_bytes).c_str(), [&] {
                    uint64_t mine = 0, all = 0;
                    for (const NodePlan& other : plan.node_plans)
                      for (uint64_t macs : other.layer_macs) (other.node == node.node ? mine : all) += macs;
                    all += mine;
                    return all ? 100.0 * static_cast<double>(mine) / static_cast<double>(all) : 0.0;
                  }());
    std::printf(": peak RAM %s, flash %s, sends %s, receives %s",
                format_bytes(node.predicted_peak_ram_bytes).c_str(),
                format_bytes(node.flash_bytes).c_str(),
                format_bytes(node.predicted_bytes_sent).c_str(),
                format_bytes(node.predicted_bytes_received).c_str());
    if (!plan.devices.empty()) {
      const NodeTime& time = plan.emulated.nodes[node.node - 1];
      double compute = 0, flash = 0, communication = time.gather_communication,
             wait = time.gather_wait;
      for (const LayerTime& layer : time.layers) {
        compute += layer.compute;
        flash += layer.flash;
        communication += layer.communication;
        wait += layer.wait;
      }
      std::printf("; done at %s ms (compute %s, flash %s, links %s, waiting %s)",
                  milliseconds(time.finish).c_str(), milliseconds(compute).c_str(),
                  milliseconds(flash).c_str(), milliseconds(communication).c_str(),
                  milliseconds(wait).c_str());
    }
    std::printf("\n");
  }
  if (!plan.devices.empty())
    std::printf("emulated time %s ms on %s\n", milliseconds(plan.emulated.total_seconds).c_str(),
                cluster_name(plan.devices).c_str());
  return 0;
}

}  // namespace splitinfer
