// `splitinfer plan MODEL.h5 --nodes N ... -o PLANDIR`: writes plan.h5 and one
// node_K.h5 per node.
#include <cstdio>
#include <fstream>
#include <sstream>

#include "../../io/model_file.hpp"
#include "../../io/plan_file.hpp"
#include "../../partition/plan.hpp"
#include "../error.hpp"
#include "../format.hpp"
#include "commands.hpp"

namespace splitinfer {

namespace {

uint64_t model_macs(const Model& model) {
  uint64_t macs = 0;
  for (const Layer& layer : model.layers) macs += layer_macs(model, layer);
  return macs;
}

}  // namespace

int plan_command(const PlanCommandOptions& options) {
  if (!options.device.empty())
    throw Error(
        "--device: device profiles are not available in this version; give --ram and --flash");
  const Model model = read_model(options.model_path);
  std::ifstream file(options.model_path, std::ios::binary);
  std::stringstream content;
  content << file.rdbuf();

  PlanOptions plan_options;
  plan_options.nodes = options.nodes;
  plan_options.strategy = options.strategy;
  plan_options.grid = options.grid;
  plan_options.fuse = options.fuse;
  plan_options.reuse = options.reuse;
  if (!options.ram.empty()) plan_options.ram_cap_bytes = parse_bytes(options.ram);
  if (!options.flash.empty()) plan_options.flash_cap_bytes = parse_bytes(options.flash);
  plan_options.model_digest = digest(content.str());
  const Plan plan = make_plan(model, plan_options);
  write_plan(options.output_dir, model, plan);

  std::printf("plan '%s' for %s: %d node(s), strategy %s", options.output_dir.c_str(),
              model.name.c_str(), plan.nodes, plan.strategy.c_str());
  if (plan.strategy == "spatial" || plan.strategy == "fused")
    std::printf(" (grid %dx%d)", plan.grid_rows, plan.grid_cols);
  if (plan.strategy == "fused") {
    std::printf(", blocks of %s layers%s", plan.fuse ? std::to_string(plan.fuse).c_str() : "all",
                plan.reuse ? ", overlap reuse" : "");
    const uint64_t macs = model_macs(model);
    std::printf("; recomputes %llu MACs (%.1f%% of the model's %llu)",
                static_cast<unsigned long long>(plan.recomputed_macs),
                macs ? 100.0 * plan.recomputed_macs / macs : 0.0,
                static_cast<unsigned long long>(macs));
  }
  std::printf("\n");
  for (const NodePlan& node : plan.node_plans)
    std::printf("  node %d: peak RAM %s, flash %s, sends %s, receives %s\n", node.node,
                format_bytes(node.predicted_peak_ram_bytes).c_str(),
                format_bytes(node.flash_bytes).c_str(),
                format_bytes(node.predicted_bytes_sent).c_str(),
                format_bytes(node.predicted_bytes_received).c_str());
  return 0;
}

}  // namespace splitinfer
