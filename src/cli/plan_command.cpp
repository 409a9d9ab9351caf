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

int plan_command(const PlanCommandOptions& options) {
  if (!options.device.empty())
    throw Error(
        "--device: device profiles are not available in this version; give --ram and --flash");
  if (options.fuse != 0)
    throw Error("--fuse applies to the fused strategy, not available in this version");
  const Model model = read_model(options.model_path);
  std::ifstream file(options.model_path, std::ios::binary);
  std::stringstream content;
  content << file.rdbuf();

  PlanOptions plan_options;
  plan_options.nodes = options.nodes;
  plan_options.strategy = options.strategy;
  plan_options.grid = options.grid;
  if (!options.ram.empty()) plan_options.ram_cap_bytes = parse_bytes(options.ram);
  if (!options.flash.empty()) plan_options.flash_cap_bytes = parse_bytes(options.flash);
  plan_options.model_digest = digest(content.str());
  const Plan plan = make_plan(model, plan_options);
  write_plan(options.output_dir, model, plan);

  std::printf("plan '%s' for %s: %d node(s), strategy %s", options.output_dir.c_str(),
              model.name.c_str(), plan.nodes, plan.strategy.c_str());
  if (plan.strategy == "spatial") std::printf(" (grid %dx%d)", plan.grid_rows, plan.grid_cols);
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
