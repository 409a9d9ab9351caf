#include "run_statistics.hpp"

#include <algorithm>

#include "../../partition/prediction.hpp"
#include "../../partition/strategy_registry.hpp"

namespace splitinfer {
namespace {

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  const size_t middle = values.size() / 2;
  return values.size() % 2 ? values[middle] : (values[middle - 1] + values[middle]) / 2;
}

}  // namespace

nlohmann::json node_statistics(int node, const NodeSetup& setup, const NodeMeasurement& measured) {
  const NodePlan& predicted = setup.plan.node_plans[node - 1];
  nlohmann::json stats = {
      {"rank", node},
      {"peak_ram_bytes", measured.peak_ram_bytes},
      {"predicted_peak_ram_bytes", predicted.predicted_peak_ram_bytes},
      {"ram_cap_bytes",
       setup.ram_cap == ArenaLayout::kUnlimited ? nlohmann::json() : nlohmann::json(setup.ram_cap)},
      {"flash_bytes", setup.model.weight_bytes()},
      {"predicted_flash_bytes", predicted.flash_bytes},
      {"bytes_sent", measured.bytes_sent},
      {"predicted_bytes_sent", predicted.predicted_bytes_sent},
      {"bytes_received", measured.bytes_received},
      {"predicted_bytes_received", predicted.predicted_bytes_received},
      {"host_seconds", measured.host_seconds},
      // Of the last inference's host time: computing, and waiting for or
      // sending pieces; the slowdown of run --slow (1: none).
      {"busy_seconds", measured.busy_seconds},
      {"idle_seconds", measured.host_seconds - measured.busy_seconds},
      {"slowdown", setup.slowdown}};
  if (measured.power) {  // run --power, the last inference
    const PowerStats& power = *measured.power;
    stats["power_failures"] = power.power_failures;
    stats["reexecuted_macs"] = power.reexecuted_macs;
    stats["nvm_bytes_written"] = power.nvm_bytes_written;
    stats["nvm_bytes_read"] = power.nvm_bytes_read;
    stats["recharge_seconds"] = power.recharge_seconds;
    stats["power_device_seconds"] = power.device_seconds;
    stats["nvm_joules"] = power.nvm_joules;
    if (measured.power_device_seconds_each.size() > 1)
      stats["power_device_seconds_each"] = measured.power_device_seconds_each;
  }
  if (setup.resume)  // run --resume: where its NVM let it start
    stats["resumed_from"] = "inference " + std::to_string(setup.resume->inference) + " layer " +
                            std::to_string(setup.resume->layer) + " tile " +
                            std::to_string(setup.resume->tile.channels) + "x" +
                            std::to_string(setup.resume->tile.rows) + " jobs " +
                            std::to_string(setup.resume->jobs_done);
  if (!measured.task_run) return stats;
  // The traffic of the tasks it ran, and the peak of the largest (the plan
  // predicts the largest of those it may take); idle: waiting for a task.
  stats["tasks"] = measured.tasks;
  stats["tasks_stolen"] = measured.tasks_stolen;
  stats["idle_seconds"] = measured.idle_seconds;
  stats["predicted_bytes_sent"] = measured.predicted_bytes_sent;
  stats["predicted_bytes_received"] = measured.predicted_bytes_received;
  stats["peak_of_tasks_run"] = measured.peak_of_tasks_run;
  return stats;
}

nlohmann::json trace_events(const Trace& trace, int rank) {
  nlohmann::json events = nlohmann::json::array();
  events.push_back(
      {{"name", "thread_name"},
       {"ph", "M"},
       {"pid", 0},
       {"tid", rank},
       {"args",
        {{"name", rank == 0 ? std::string("coordinator") : "node " + std::to_string(rank)}}}});
  for (const Trace::Slice& slice : trace.slices())
    events.push_back(
        {{"name", slice.name},
         {"cat", slice.category},
         {"ph", "X"},
         {"ts", slice.start_us},
         {"dur", slice.duration_us},
         {"pid", 0},
         {"tid", rank},
         {"args", {{"bytes_sent", slice.bytes_sent}, {"bytes_received", slice.bytes_received}}}});
  return events;
}

nlohmann::json run_statistics(const Model& model, const Plan& plan, const std::string& plan_dir,
                              int repeat, std::vector<double> inference_seconds,
                              const std::vector<NodeProgram>& programs,
                              std::vector<nlohmann::json> nodes, nlohmann::json* trace,
                              const TaskRun* tasks) {
  const TimeEstimate& emulated = tasks && tasks->emulated ? *tasks->emulated : plan.emulated;
  nlohmann::json stats = {{"model", model.name},
                          {"plan", plan_dir},
                          {"strategy", strategy_name(plan.strategy)},
                          {"node_count", plan.nodes},
                          {"host_seconds", inference_seconds.back()},
                          {"emulated_seconds", nullptr},  // plans without a device profile
                          {"nodes", nlohmann::json::array()}};
  // The plan's prediction for its device profile (partition/cost_model.hpp).
  if (!plan.devices.empty()) {
    stats["emulated_seconds"] = emulated.total_seconds;
    stats["device"] = cluster_name(plan.devices);
  }
  if (model.layers[model.output].quantized())
    stats["requantization"] = requantization_name(model.requantization);
  if (takes_option(plan.strategy, StrategyOption::grid))
    stats["grid"] = {plan.grid_rows, plan.grid_cols};
  if (tasks) {
    stats["schedule"] = tasks->schedule;
    stats["tasks"] = plan.tasks.list.size();
  }
  if (repeat > 0) {
    inference_seconds.erase(inference_seconds.begin());  // the warm-up
    stats["repeat"] = repeat;
    stats["host_seconds_median"] = median(inference_seconds);
  }
  // The coordinator's own traffic: the input pieces (every relayed piece in
  // relay plans) it sends, the outputs (and relayed regions) it receives.
  uint64_t coordinator_sent = 0, coordinator_received = 0;
  for (const Message& message : cluster_messages(model, programs)) {
    if (message.from == 0) coordinator_sent += message.bytes();
    if (message.to == 0) coordinator_received += message.bytes();
  }
  stats["coordinator"] = {{"bytes_sent", coordinator_sent},
                          {"bytes_received", coordinator_received}};
  uint64_t total_moved = coordinator_sent;
  for (size_t k = 0; k < nodes.size(); ++k) {
    nlohmann::json& node = nodes[k];
    total_moved += node["bytes_sent"].get<uint64_t>();
    node["emulated_seconds"] =
        plan.devices.empty() ? nlohmann::json() : nlohmann::json(emulated.nodes[k].finish);
    if (!plan.devices.empty()) node["device"] = plan.devices[k].name;
    if (trace && node.contains("trace"))
      for (auto& event : node["trace"]) trace->push_back(std::move(event));
    node.erase("trace");
    stats["nodes"].push_back(std::move(node));
  }
  stats["total_bytes_moved"] = total_moved;  // every byte sent by any rank, once
  return stats;
}

}  // namespace splitinfer
