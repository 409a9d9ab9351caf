#include "prediction.hpp"

#include <algorithm>

#include "cost_model.hpp"
#include "node_program_builder.hpp"

namespace splitinfer {

NodeProgram node_program(const Model& model, const Plan& plan, int node) {
  NodeProgram program = build_node_program(model, plan.regions, node, plan.via_coordinator,
                                           plan.owners, plan.streams);
  if (plan.weights_in_place) read_weights_in_place(model, program);
  return program;
}

std::vector<NodeProgram> node_programs(const Model& model, const Plan& plan) {
  std::vector<NodeProgram> programs =
      build_node_programs(model, plan.regions, plan.via_coordinator, plan.owners, plan.streams);
  if (plan.weights_in_place)
    for (NodeProgram& program : programs) read_weights_in_place(model, program);
  return programs;
}

void predict_nodes(const Model& model, Plan& plan) {
  plan.node_plans.clear();
  const std::vector<NodeProgram> programs = node_programs(model, plan);
  plan.recomputed_macs = recomputed_macs(model, programs);
  for (int k = 1; k <= plan.nodes; ++k) {
    const NodeProgram& program = programs[k - 1];
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
    for (size_t i = 0; i < model.layers.size(); ++i) {
      uint64_t macs = 0;
      for (const Region& part : computed_parts(program, static_cast<int>(i)))
        macs += region_macs(model, model.layers[i], part);
      node.layer_macs.push_back(macs);
    }
    node.predicted_bytes_sent = program.bytes_sent;
    node.predicted_bytes_received = program.bytes_received;
    plan.node_plans.push_back(node);
  }
}

uint64_t largest_peak_ram(const Plan& plan) {
  uint64_t largest = 0;
  for (const NodePlan& node : plan.node_plans)
    largest = std::max(largest, node.predicted_peak_ram_bytes);
  return largest;
}

uint64_t largest_flash(const Plan& plan) {
  uint64_t largest = 0;
  for (const NodePlan& node : plan.node_plans) largest = std::max(largest, node.flash_bytes);
  return largest;
}

uint64_t recomputed_macs(const Model& model, const std::vector<NodeProgram>& programs) {
  uint64_t computed = 0, own = 0;
  for (size_t i = 1; i < model.layers.size(); ++i) {
    const Layer& layer = model.layers[i];
    own += region_macs(model, layer, Region::whole(layer.output_shape));
    for (const NodeProgram& program : programs)
      for (const Region& part : computed_parts(program, static_cast<int>(i)))
        computed += region_macs(model, layer, part);
  }
  return computed - own;
}

}  // namespace splitinfer
