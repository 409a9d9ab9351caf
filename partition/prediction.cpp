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

namespace {

// predict_nodes() for a plan with tasks: per node its flash (the weights of
// every task it may take), the largest peak of those tasks, and the traffic
// and MACs of its own tasks (the static schedule).
void predict_task_nodes(const Model& model, Plan& plan) {
  const TaskTable& table = plan.tasks;
  const std::vector<NodeProgram> programs = task_programs(model, table);
  plan.recomputed_macs = recomputed_macs(model, programs);
  std::vector<uint64_t> peaks;
  std::vector<std::vector<uint64_t>> footprints(programs.size());
  for (size_t task = 0; task < programs.size(); ++task) {
    ArenaLayout unlimited;
    peaks.push_back(replay_memory(model, programs[task], unlimited,
                                  "task " + std::to_string(task), &footprints[task]));
  }
  for (int k = 1; k <= plan.nodes; ++k) {
    NodePlan node;
    node.node = k;
    for (size_t i = 0; i < model.layers.size(); ++i)
      node.flash_bytes += weight_slice_bytes(model.layers[i], plan.regions[i][k - 1], false);
    node.layer_peak_ram_bytes.assign(model.layers.size(), 0);
    node.layer_bytes_sent.assign(model.layers.size(), 0);
    node.layer_bytes_received.assign(model.layers.size(), 0);
    node.layer_macs.assign(model.layers.size(), 0);
    for (size_t task = 0; task < programs.size(); ++task) {
      if (!table.may_take[k - 1][task]) continue;
      node.predicted_peak_ram_bytes = std::max(node.predicted_peak_ram_bytes, peaks[task]);
      for (size_t i = 0; i < model.layers.size(); ++i)
        node.layer_peak_ram_bytes[i] = std::max(node.layer_peak_ram_bytes[i], footprints[task][i]);
      if (table.list[task].home != k) continue;
      const std::vector<LayerTraffic> traffic = layer_traffic(model, programs[task]);
      for (size_t i = 0; i < model.layers.size(); ++i) {
        node.layer_bytes_sent[i] += traffic[i].sent;
        node.layer_bytes_received[i] += traffic[i].received;
        node.layer_macs[i] += region_macs(model, model.layers[i], programs[task].layers[i].out);
      }
      node.predicted_bytes_sent += programs[task].bytes_sent;
      node.predicted_bytes_received += programs[task].bytes_received;
    }
    plan.node_plans.push_back(node);
  }
}

}  // namespace

void predict_nodes(const Model& model, Plan& plan) {
  plan.node_plans.clear();
  if (!plan.tasks.empty()) return predict_task_nodes(model, plan);
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
