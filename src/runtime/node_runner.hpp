#pragma once
// A node's side of a run: it runs its program once per inference,
// exchanging pieces with its neighbours and the coordinator, and at the end
// reports its statistics to the coordinator.
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>

#include "../../partition/plan.hpp"
#include "../../partition/prediction.hpp"
#include "../node_program.hpp"
#include "power.hpp"
#include "protocol.hpp"

namespace splitinfer {

// What a node holds once its set-up checked out: the model with its own
// weight slices, the plan, its RAM cap and its program.
struct NodeSetup {
  Model model;
  Plan plan;
  uint64_t ram_cap = ArenaLayout::kUnlimited;
  NodeProgram program;
  double slowdown = 1;  // run --slow: this node computes this many times as long
  // A plan with tasks: every task's program (program above unused), and the
  // peak of each (replay_memory(); 0 for tasks this node may not take).
  std::vector<NodeProgram> task_programs;
  std::vector<uint64_t> task_peaks;
  // run --power (or --nvm, --resume): the node's power supply and NVM
  // (null: none); the input's digest its progress records name, the number
  // of the first inference, and where it resumes that inference.
  std::shared_ptr<PowerEmulation> power;
  std::string input_digest;
  int first_inference = 1;
  std::optional<ResumePoint> resume;
};

// Runs `inferences` inferences of `setup.program` on this node (the
// transport's rank), sending its output (and with settings.dump_layers, in
// the last inference, every layer it computes) to the coordinator; then
// sends the coordinator its statistics (node_statistics()).
void run_node(Transport& transport, const RunSettings& settings, NodeSetup& setup, int inferences);

// The same for a plan with tasks: per inference the node asks the
// coordinator for work and runs the tasks it gets (TaskCoordinator's
// protocol, coordinator.hpp), until it is told the inference is over.
void run_task_node(Transport& transport, const RunSettings& settings, NodeSetup& setup,
                   int inferences);

}  // namespace splitinfer
