#include "plan.hpp"

#include <cstdio>

#include "../src/error.hpp"
#include "../src/format.hpp"
#include "../src/memory_schedule.hpp"

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

Plan make_plan(const Model& model, const PlanOptions& options) {
  if (options.nodes < 1) throw Error("--nodes must be at least 1");
  if (options.nodes != 1)
    throw Error(
        "this version of splitinfer plans for one node only (--nodes 1); distributed strategies "
        "come next");
  if (!options.strategy.empty() && options.strategy != "single")
    throw Error("strategy '" + options.strategy +
                "' is not available yet; with one node the plan is 'single'");
  Plan plan;
  plan.nodes = options.nodes;
  plan.strategy = "single";
  plan.ram_cap_bytes = options.ram_cap_bytes;
  plan.flash_cap_bytes = options.flash_cap_bytes;

  NodePlan node;
  node.node = 1;
  node.flash_bytes = model.weight_bytes();
  ArenaLayout unlimited;
  node.predicted_peak_ram_bytes = replay_memory(model, schedule_memory(model), unlimited, "node 1");
  // The coordinator sends the input and receives the output.
  node.predicted_bytes_received =
      static_cast<uint64_t>(model.layers[0].output_shape.elements()) * sizeof(float);
  node.predicted_bytes_sent =
      static_cast<uint64_t>(model.layers[model.output].output_shape.elements()) * sizeof(float);
  if (node.predicted_peak_ram_bytes > options.ram_cap_bytes)
    throw Error("the model needs " + format_bytes(node.predicted_peak_ram_bytes) +
                " of RAM on node 1 but the cap is " + format_bytes(options.ram_cap_bytes) +
                "; the smallest cap that fits is --ram " +
                std::to_string(node.predicted_peak_ram_bytes));
  if (node.flash_bytes > options.flash_cap_bytes)
    throw Error("node 1's weights take " + format_bytes(node.flash_bytes) +
                " of flash but the cap is " + format_bytes(options.flash_cap_bytes) +
                "; the smallest cap that fits is --flash " + std::to_string(node.flash_bytes));
  plan.node_plans.push_back(node);
  plan.plan_id =
      digest(options.model_digest + "|" + std::to_string(plan.nodes) + "|" + plan.strategy + "|" +
             std::to_string(plan.ram_cap_bytes) + "|" + std::to_string(plan.flash_cap_bytes));
  return plan;
}

}  // namespace splitinfer
