#pragma once
// The statistics of a run (STATS.json, DESIGN.md's contract) and its trace
// (Chrome trace events, one track per rank): each node measures its own and
// sends them to the coordinator, which adds the plan's predictions and its
// own traffic.
#include <cstdint>
#include <nlohmann/json.hpp>
#include <vector>

#include "../trace.hpp"
#include "node_runner.hpp"

namespace splitinfer {

// What a node measured over its last inference (peak RAM: over all).
struct NodeMeasurement {
  uint64_t peak_ram_bytes = 0, bytes_sent = 0, bytes_received = 0;
  double host_seconds = 0;
  double busy_seconds = 0;  // of host_seconds, computing (a --slow node's sleeps included)
  // A plan with tasks: the tasks the node ran in the last inference (stolen:
  // those of other nodes), the time it waited for a task, the traffic those
  // tasks' programs predict, and the largest peak of every task it ran.
  bool task_run = false;
  int tasks = 0, tasks_stolen = 0;
  double idle_seconds = 0;
  uint64_t predicted_bytes_sent = 0, predicted_bytes_received = 0, peak_of_tasks_run = 0;
  // run --power: the last inference's failures, NVM traffic and device time.
  std::optional<PowerStats> power;
  // run --power with --repeat: each inference's device seconds, in order
  // (the first included: --reconfigure dynamic learns the failure rate there).
  std::vector<double> power_device_seconds_each;
};

// A node's entry of the statistics' `nodes` list: measured beside predicted.
nlohmann::json node_statistics(int node, const NodeSetup& setup, const NodeMeasurement& measured);

// Chrome trace events ("complete" slices) of one rank: its own track.
nlohmann::json trace_events(const Trace& trace, int rank);

// The coordinator's view of a run: the plan and model's names, host times
// of every inference (the first a warm-up when `repeat` > 0), its own
// traffic (from the programs' messages) and each node's statistics as the
// nodes sent them (their "trace" entries moved out into `trace_events` when
// tracing). Returns STATS.json's content.
// A plan with tasks passes the task programs as `programs`, its schedule
// and the emulated time of that schedule (`emulated`, when planned for a
// device).
struct TaskRun {
  std::string schedule;
  const TimeEstimate* emulated = nullptr;
};
nlohmann::json run_statistics(const Model& model, const Plan& plan, const std::string& plan_dir,
                              int repeat, std::vector<double> inference_seconds,
                              const std::vector<NodeProgram>& programs,
                              std::vector<nlohmann::json> nodes, nlohmann::json* trace_events,
                              const TaskRun* tasks = nullptr);

}  // namespace splitinfer
