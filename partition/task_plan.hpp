#pragma once
// Work stealing (DeepThings' runtime): a plan cut into more tiles than
// nodes, its tiles run as tasks that any node allowed to may take.
//
// A task is one tile of one stage. Stages are runs of consecutive layers in
// which every tile reads only what the same tile computed (the tile's
// regions grow inside a fused block, so a block is one stage; a spatial
// layer that needs a halo starts a new one). Whatever a task reads of an
// earlier stage comes from the coordinator, which holds every map a later
// stage reads, whole, as the tasks return their regions of it: nothing
// moves between nodes, so any node can run any task, and the task's program
// (computing its regions, in the same fixed order as every kernel sums) is
// the same whoever runs it. The output is the one-node output bit for bit on
// every schedule.
//
// The plan records each task's home node (static schedule: every node runs
// its own) and which nodes may take it (steal schedule): those whose RAM cap
// holds the task and whose flash holds the weights of every task they may
// take.
#include <cstdint>
#include <vector>

#include "../src/graph.hpp"
#include "../src/node_program.hpp"
#include "cost_model.hpp"
#include "device.hpp"
#include "node_program_builder.hpp"

namespace splitinfer {

struct Task {
  int stage = 0, tile = 0;
  int home = 1;  // the node that runs it under the static schedule
};

struct TaskTable {
  int tiles = 0;  // 0: the plan has no tasks
  int grid_rows = 1, grid_cols = 1;
  LayerRegions regions;    // [layer][tile]: what each tile computes (fused: grown)
  std::vector<int> stage;  // per layer, from 0; -1 for the input layer
  std::vector<Task> list;  // by stage, then tile; tiles computing nothing in a stage left out
  std::vector<std::vector<char>> may_take;  // [node - 1][task]
  bool empty() const { return tiles == 0; }
};

// Per layer its stage (above) under the tiles' `regions` ([layer][tile]).
std::vector<int> task_stages(const Model& model, const LayerRegions& regions);

// The task table of `regions` (a grid of grid_rows x grid_cols tiles, as
// spatial_regions() or fused_regions() cut for that many nodes) run on
// `nodes` nodes: tile t's home is node t * nodes / tiles + 1; every node may
// take every task. Throws Error when there are fewer tiles than nodes.
TaskTable make_task_table(const Model& model, LayerRegions regions, int grid_rows, int grid_cols,
                          int nodes);

// Every task's program (build_task_program()), in table order.
std::vector<NodeProgram> task_programs(const Model& model, const TaskTable& table);

// Per task, the tasks that must be done before it starts: those whose
// results hold part of a piece it receives from the coordinator.
std::vector<std::vector<int>> task_dependencies(const Model& model, const TaskTable& table,
                                                const std::vector<NodeProgram>& programs);

// Per task, its MACs (at least 1): the cost TaskScheduler weighs tasks by.
std::vector<double> task_costs(const Model& model, const std::vector<NodeProgram>& programs);

// Per node (index node - 1) and layer, the region whose weights the node's
// flash holds: the one channel range of every task it may take, or every
// channel when they differ (Executor::weights() reads a task's share of it).
LayerRegions node_weight_regions(const Model& model, const TaskTable& table, int nodes);

// Which node runs which task next, for the coordinator and the cost model.
// A task is ready once every task it depends on is done. A node asking for
// work gets its own first ready task (in table order); under stealing,
// failing that, the last ready task it may take from the node with the most
// tasks not yet started (the task is then stolen); otherwise nothing yet.
// Home nodes may always run their own tasks and dependencies point to
// earlier stages, so while tasks remain a node that asks again after any
// task is done eventually gets one: no deadlock.
//
// Under stealing a straggler is also kept from starting a task at the end
// that the others would finish sooner: from the seconds each node took per
// unit of cost (a task's MACs) on the tasks it finished, in this inference
// or earlier ones, a node whose expected end of the task comes after the
// others' expected end of all the work left (each busy until its running
// task ends, then sharing the rest in proportion to its speed) waits
// instead, when another could also end the task itself sooner. Nodes not
// yet measured are never kept waiting. A straggler (measured slower than
// every other node) takes, of its own ready tasks, the one the fewest tasks
// depend on, so that the others can go on meanwhile.
class TaskScheduler {
 public:
  // `costs`: per task, its units of work (empty: every task 1).
  TaskScheduler(const TaskTable& table, std::vector<std::vector<int>> dependencies, bool steal,
                std::vector<double> costs = {});
  void reset();  // a new inference: nothing started (the speeds measured are kept)
  // A task for `node` (1..N) asking at `now` (seconds, any origin), now
  // started; -1: none now. With `may_wait` false the node is not kept
  // waiting for the others (callers pass it when no task runs, so that
  // the schedule cannot stall).
  int next(int node, double now = 0, bool may_wait = true);
  // `task` finished at `now`, its node busy `seconds` computing it (< 0:
  // since it started); the node's speed follows.
  void done(int task, double now = 0, double seconds = -1);
  bool all_done() const { return done_count_ == static_cast<int>(started_.size()); }
  bool stolen(int task) const { return stolen_[task] != 0; }

 private:
  bool ready(int task) const;
  // Whether `node` should leave `task` to the others (the rule above).
  bool better_left(int node, int task, double now) const;

  const TaskTable& table_;
  std::vector<std::vector<int>> dependencies_;
  bool steal_;
  std::vector<double> costs_;
  std::vector<int> dependents_;  // per task: how many tasks depend on it
  std::vector<char> started_, finished_, stolen_;
  std::vector<double> start_time_;
  std::vector<int> running_;                // per node (index node): its task, -1 none
  std::vector<double> seconds_per_cost_;    // per node: measured, 0 unknown
  int done_count_ = 0;
};

// The emulated time of one inference of a task plan on `device`: every task
// as long as its program alone on one node (its pieces in, weights, MACs,
// results out: estimate_time()), times its node's `slowdowns[node - 1]`
// (empty: 1), scheduled as TaskScheduler does; every task's pieces and
// results pass the coordinator's one port, one task's after another's (a
// task's transfers are counted before its computing). Per node, per layer:
// the flash, compute and communication of the tasks it ran.
// With `devices` (nodes 1..N's), a task on node k takes as long as on its
// device, its transfers at the slower of its port and the coordinator's.
TimeEstimate estimate_task_time(const Model& model, const TaskTable& table,
                                const std::vector<NodeProgram>& programs,
                                const std::vector<DeviceProfile>& devices, bool steal,
                                const std::vector<double>& slowdowns = {});
TimeEstimate estimate_task_time(const Model& model, const TaskTable& table,
                                const std::vector<NodeProgram>& programs,
                                const DeviceProfile& device, bool steal,
                                const std::vector<double>& slowdowns = {});

}  // namespace splitinfer
