// Plans cut into tasks (partition/task_plan.hpp):
// - inside a stage every tile reads only what it computed itself;
// - every task program, run alone by an executor against a stand-in
//   coordinator that holds whole maps, in any order the dependencies allow,
//   gives the one-node output and every returned map bit for bit (random
//   graphs, spatial and fused tiles, float32);
// - the scheduler runs every task once, never before its dependencies, never
//   steals under the static schedule, and under stealing never leaves a node
//   without work while a ready task it may take waits;
// - the plan's options and caps: what --tasks refuses, what a node may take
//   and keep in flash.
#include "task_plan.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <random>

#include "../src/executor.hpp"
#include "model_builder.hpp"
#include "plan.hpp"
#include "prediction.hpp"
#include "strategies.hpp"
#include "test_util.hpp"

namespace splitinfer {
namespace {

using testing::conv_params;
using testing::ModelBuilder;
using testing::nchw;
using testing::pool_params;
using testing::random_stack;

Model classifier(int64_t classes = 5) {
  ModelBuilder b(nchw(1, 3, 12, 10), 11);
  b.conv("conv1", "input", 6, conv_params(3, 1, 1));
  b.unary("relu1", Op::relu, "conv1");
  b.conv("conv2", "relu1", 6, conv_params(1, 1, 0));
  b.conv("conv3", "conv2", 8, conv_params(3, 2, 1));
  b.pool("pool", Op::maxpool, "conv3", pool_params(2, 2, 0));
  b.global_avgpool("gap", "pool");
  b.flatten("flat", "gap");
  b.linear("fc", "flat", classes);
  return b.finish("fc");
}

size_t bytes_of(const Layer& layer) {
  return static_cast<size_t>(layer.output_shape.elements()) * dtype_bytes(layer.dtype);
}

// The coordinator's maps, serving each task its pieces and taking its results.
class MapsExchange : public Exchange {
 public:
  MapsExchange(const Model& model, std::vector<std::vector<char>>& maps)
      : model_(model), maps_(maps) {}
  void exchange(int layer_index, int slot, const InputSlot& input, const void*, const Region&,
                void* tile) override {
    const int source = model_.layers[layer_index].inputs[slot];
    for (const Transfer& piece : input.receives) {
      ASSERT_EQ(piece.peer, 0);
      copy_region(maps_[source].data(), Region::whole(model_.layers[source].output_shape), tile,
                  input.needed, piece.region, input.element_bytes);
    }
    EXPECT_TRUE(input.sends.empty());
  }
  void to_coordinator(int, const Tensor&) override { ADD_FAILURE() << "no relay in tasks"; }

 private:
  const Model& model_;
  std::vector<std::vector<char>>& maps_;
};

// Every map of the model on one node: the reference.
std::vector<std::vector<char>> one_node_maps(const Model& model, const std::vector<float>& input) {
  std::vector<std::vector<char>> maps(model.layers.size());
  maps[0].resize(bytes_of(model.layers[0]));
  std::memcpy(maps[0].data(), input.data(), maps[0].size());
  Executor executor(model, build_node_program(model, spatial_regions(model, 1, 1), 1), "node 1");
  MapsExchange exchange(model, maps);
  Arena arena;
  executor.run(
      arena, exchange,
      [&](int layer, Tensor& tensor) {
        maps[layer].assign(static_cast<const char*>(tensor.data),
                           static_cast<const char*>(tensor.data) + tensor.bytes());
      },
      [](const Tensor&) {});
  return maps;
}

// Runs every task in a random order its dependencies allow; returns the maps.
std::vector<std::vector<char>> run_tasks(const Model& model, const TaskTable& table,
                                         const std::vector<float>& input, uint32_t seed) {
  const std::vector<NodeProgram> programs = task_programs(model, table);
  const std::vector<std::vector<int>> dependencies = task_dependencies(model, table, programs);
  std::vector<std::vector<char>> maps(model.layers.size());
  for (size_t i = 0; i < model.layers.size(); ++i) maps[i].assign(bytes_of(model.layers[i]), 0);
  std::memcpy(maps[0].data(), input.data(), maps[0].size());
  std::vector<char> done(programs.size(), 0);
  std::mt19937 generator(seed);
  for (size_t finished = 0; finished < programs.size(); ++finished) {
    std::vector<int> ready;
    for (size_t task = 0; task < programs.size(); ++task)
      if (!done[task] && std::all_of(dependencies[task].begin(), dependencies[task].end(),
                                     [&](int before) { return done[before] != 0; }))
        ready.push_back(static_cast<int>(task));
    if (ready.empty()) {
      ADD_FAILURE() << "no task is ready, " << programs.size() - finished << " left";
      return maps;
    }
    const int task = ready[std::uniform_int_distribution<size_t>(0, ready.size() - 1)(generator)];
    Executor executor(model, programs[task], "task " + std::to_string(task));
    MapsExchange exchange(model, maps);
    Arena arena;
    const std::vector<int> results = result_layers(model, programs[task]);
    size_t next = 0;
    executor.run(arena, exchange, {}, [&](const Tensor& result) {
      const int layer = results.at(next++);
      copy_region(result.data, programs[task].layers[layer].out, maps[layer].data(),
                  Region::whole(model.layers[layer].output_shape),
                  programs[task].layers[layer].out, dtype_bytes(model.layers[layer].dtype));
    });
    EXPECT_EQ(next, results.size());
    done[task] = 1;
  }
  return maps;
}

// Inside a stage, each tile's layers read only what the tile computed.
void expect_stages_self_contained(const Model& model, const TaskTable& table) {
  for (size_t j = 1; j < model.layers.size(); ++j)
    for (size_t slot = 0; slot < model.layers[j].inputs.size(); ++slot) {
      const int source = model.layers[j].inputs[slot];
      if (source == 0 || table.stage[source] != table.stage[j]) continue;
      for (int t = 0; t < table.tiles; ++t)
        EXPECT_TRUE(table.regions[source][t].contains(needed_region(
            model, model.layers[j], static_cast<int>(slot), table.regions[j][t])))
            << "layer " << j << " tile " << t;
    }
  for (size_t j = 2; j < model.layers.size(); ++j) EXPECT_GE(table.stage[j], table.stage[j - 1]);
}

TEST(TaskStages, SpatialTilesStartAStageAtEveryHaloFusedBlocksAreOne) {
  const Model model = classifier();
  const TaskTable spatial = make_task_table(model, spatial_regions(model, 3, 1), 3, 1, 2);
  // conv1 relu1 conv2 (1x1: no halo) | conv3 pool (its 2x2 windows do not
  // cross the tiles' rows) | gap flat (the same channel shares) | fc
  const std::vector<int> expected = {-1, 0, 0, 0, 1, 1, 2, 2, 3};
  EXPECT_EQ(spatial.stage, expected);
  expect_stages_self_contained(model, spatial);
  FusedRegions fused = fused_regions(model, 2, 2, 0, false);
  const TaskTable blocks = make_task_table(model, std::move(fused.regions), 2, 2, 3);
  EXPECT_EQ(blocks.stage, (std::vector<int>{-1, 0, 0, 0, 0, 0, 1, 1, 2}));
  expect_stages_self_contained(model, blocks);
  // Homes: tiles spread over the nodes in order; every node may take every task.
  for (const Task& task : blocks.list) EXPECT_EQ(task.home, task.tile * 3 / 4 + 1);
  for (const std::vector<char>& node : blocks.may_take)
    EXPECT_EQ(std::count(node.begin(), node.end(), 1), static_cast<long>(blocks.list.size()));
  // Three stages; fc has 5 outputs over 4 tiles, flat 8 channels: every tile
  // computes some of each stage.
  EXPECT_EQ(blocks.list.size(), 3u * 4u);
  // With 2 outputs, tiles 0 and 2 compute nothing of fc: no task.
  const Model two = classifier(2);
  FusedRegions two_fused = fused_regions(two, 2, 2, 0, false);
  const TaskTable fewer = make_task_table(two, std::move(two_fused.regions), 2, 2, 2);
  EXPECT_EQ(fewer.list.size(), 3u * 4u - 2u);
}

TEST(TaskPrograms, AnyOrderGivesTheOneNodeMapsBitForBit) {
  for (uint32_t seed = 1; seed <= 40; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    const Model model = random_stack(seed);
    const std::vector<float> input = testing::random_values(
        static_cast<size_t>(model.layers[0].output_shape.elements()), seed, -2, 2);
    const std::vector<std::vector<char>> one = one_node_maps(model, input);
    std::mt19937 generator(seed);
    const int rows = static_cast<int>(testing::uniform(generator, 1, 4));
    const int cols = static_cast<int>(testing::uniform(generator, 1, 3));
    for (const bool fused : {false, true}) {
      SCOPED_TRACE(fused ? "fused" : "spatial");
      LayerRegions regions = fused ? fused_regions(model, rows, cols, 0, false).regions
                                   : spatial_regions(model, rows, cols);
      const TaskTable table = make_task_table(model, std::move(regions), rows, cols, 1);
      expect_stages_self_contained(model, table);
      const std::vector<std::vector<char>> maps = run_tasks(model, table, input, seed);
      EXPECT_EQ(maps[model.output], one[model.output]);
      // Every map a later stage read (returned whole to the coordinator).
      for (const NodeProgram& program : task_programs(model, table))
        for (int layer : result_layers(model, program))
          EXPECT_EQ(maps[layer], one[layer]) << "layer " << layer;
    }
  }
}

TEST(TaskScheduler, EachTaskOnceAfterItsDependenciesStealingOnlyWhenAsked) {
  const Model model = classifier();
  FusedRegions fused = fused_regions(model, 3, 2, 2, false);
  TaskTable table = make_task_table(model, std::move(fused.regions), 3, 2, 3);
  table.may_take[2].assign(table.list.size(), 0);  // node 3: its own tasks only
  for (size_t task = 0; task < table.list.size(); ++task)
    if (table.list[task].home == 3) table.may_take[2][task] = 1;
  const std::vector<std::vector<int>> dependencies =
      task_dependencies(model, table, task_programs(model, table));
  for (const bool steal : {false, true})
    for (uint32_t seed = 1; seed <= 30; ++seed) {
      SCOPED_TRACE(std::string(steal ? "steal" : "static") + " seed " + std::to_string(seed));
      TaskScheduler scheduler(table, dependencies, steal);
      std::mt19937 generator(seed);
      std::vector<int> running(4, -1);  // per node
      std::vector<char> started(table.list.size(), 0), finished(table.list.size(), 0);
      size_t steps = 0;
      while (!scheduler.all_done() && ++steps < 1000) {
        for (int node = 1; node <= 3; ++node) {
          if (running[node] >= 0) continue;
          const int task = scheduler.next(node);
          if (task < 0) {
            // Nothing for this node: no ready task of its own waits, nor,
            // when stealing, any ready task it may take.
            for (size_t t = 0; t < table.list.size(); ++t) {
              const bool ready =
                  !started[t] && std::all_of(dependencies[t].begin(), dependencies[t].end(),
                                             [&](int before) { return finished[before] != 0; });
              EXPECT_FALSE(ready && table.list[t].home == node) << "task " << t;
              if (steal) {
                EXPECT_FALSE(ready && table.may_take[node - 1][t]) << "task " << t;
              }
            }
            continue;
          }
          EXPECT_FALSE(started[task]);
          for (int before : dependencies[task]) EXPECT_TRUE(finished[before]);
          EXPECT_TRUE(table.may_take[node - 1][task]);
          EXPECT_EQ(scheduler.stolen(task), table.list[task].home != node);
          if (!steal) {
            EXPECT_EQ(table.list[task].home, node);
          }
          started[task] = 1;
          running[node] = task;
        }
        std::vector<int> busy;
        for (int node = 1; node <= 3; ++node)
          if (running[node] >= 0) busy.push_back(node);
        ASSERT_FALSE(busy.empty()) << "nothing runs and tasks are left";
        const int node =
            busy[std::uniform_int_distribution<size_t>(0, busy.size() - 1)(generator)];
        finished[running[node]] = 1;
        scheduler.done(running[node]);
        running[node] = -1;
      }
      EXPECT_TRUE(std::all_of(finished.begin(), finished.end(), [](char f) { return f != 0; }));
    }
}

TEST(TaskPlan, OptionsCapsAndFlash) {
  const Model model = classifier(2);  // fc: one output in each node's own tasks
  PlanOptions options;
  options.nodes = 2;
  options.strategy = Strategy::fused;
  options.tasks = 6;
  options.grid = "3x2";
  const Plan plan = make_plan(model, options);
  ASSERT_EQ(plan.tasks.tiles, 6);
  // Every node may take every task, so it keeps every weight of every layer.
  for (const NodePlan& node : plan.node_plans) EXPECT_EQ(node.flash_bytes, model.weight_bytes());
  // The peak predicted is the largest of any task's.
  uint64_t largest = 0;
  for (const NodeProgram& program : task_programs(model, plan.tasks)) {
    ArenaLayout unlimited;
    largest = std::max(largest, replay_memory(model, program, unlimited, "task"));
  }
  for (const NodePlan& node : plan.node_plans) EXPECT_EQ(node.predicted_peak_ram_bytes, largest);
  // A flash cap below the whole model: each node takes only its own tasks
  // and keeps only their weights (of fc, its one output's).
  PlanOptions capped = options;
  capped.grid = "2x2";
  capped.tasks = 4;
  capped.flash_cap_bytes = model.weight_bytes() - 1;
  const Plan own = make_plan(model, capped);
  for (int k = 1; k <= 2; ++k)
    for (size_t task = 0; task < own.tasks.list.size(); ++task)
      EXPECT_EQ(own.tasks.may_take[k - 1][task] != 0, own.tasks.list[task].home == k);
  for (const NodePlan& node : own.node_plans) EXPECT_LT(node.flash_bytes, model.weight_bytes());

  const auto refused = [&](PlanOptions bad, const std::string& expected) {
    try {
      make_plan(model, bad);
      ADD_FAILURE() << "accepted; expected: " << expected;
    } catch (const Error& error) {
      EXPECT_NE(std::string(error.what()).find(expected), std::string::npos) << error.what();
    }
  };
  PlanOptions bad = options;
  bad.tasks = 1;
  bad.grid = "";
  refused(bad, "--tasks 1 is fewer than the 2 nodes");
  bad = options;
  bad.grid = "2x2";
  refused(bad, "--grid 2x2 has 4 tiles but there are 6 tasks (--tasks)");
  bad = options;
  bad.reuse = true;
  refused(bad, "--tasks does not go with --reuse");
  bad = options;
  bad.strategy = Strategy::channel;
  bad.grid = "";
  refused(bad, "--tasks applies to the spatial and fused strategies only");
}

}  // namespace
}  // namespace splitinfer

namespace splitinfer {
namespace {

// A straggler measured 4 times as slow is kept from starting a task at the
// end that the others end sooner, and the schedule never stalls: when every
// node waits, one asked without waiting gets a task.
TEST(TaskScheduler, AMeasuredStragglerLeavesTheLastTasksToTheOthers) {
  TaskTable table;  // 16 independent tasks, 4 per node (the scheduler reads no regions)
  table.tiles = 16;
  for (int t = 0; t < 16; ++t) table.list.push_back({0, t, t / 4 + 1});
  table.may_take.assign(4, std::vector<char>(table.list.size(), 1));
  TaskScheduler scheduler(table, std::vector<std::vector<int>>(table.list.size()), true);
  const auto speed = [](int node) { return node == 4 ? 4.0 : 1.0; };  // seconds per task
  std::vector<double> ends(5, 0.0);
  std::vector<int> running(5, -1);
  double now = 0;
  int straggler_tasks = 0;
  while (!scheduler.all_done()) {
    bool any = false;
    for (int node = 1; node <= 4; ++node)
      if (running[node] < 0 && (running[node] = scheduler.next(node, now)) >= 0)
        ends[node] = now + speed(node), any = true, straggler_tasks += node == 4;
    if (!any && std::all_of(running.begin() + 1, running.end(), [](int t) { return t < 0; })) {
      ASSERT_FALSE(scheduler.all_done());
      ASSERT_GE(running[1] = scheduler.next(1, now, false), 0);  // one may not wait
      ends[1] = now + speed(1);
    }
    int first = -1;
    for (int node = 1; node <= 4; ++node)
      if (running[node] >= 0 && (first < 0 || ends[node] < ends[first])) first = node;
    ASSERT_GE(first, 0);
    now = ends[first];
    scheduler.done(running[first], now);
    running[first] = -1;
  }
  // 16 tasks: the straggler's first ends at 4, when the others have done 12;
  // it would end a second at 8, and they end the last 3 at 5.
  EXPECT_EQ(straggler_tasks, 1);
  EXPECT_EQ(now, 5.0);
}

}  // namespace
}  // namespace splitinfer

namespace splitinfer {
namespace {

// The cost model's schedule: stealing from a node slowed 3x ends no later
// than the static schedule, the run ends when its last node does, and every
// task's transfers pass rank 0's one port, so the run lasts at least as
// long as all of them together.
TEST(TaskTime, StealingBeatsAStragglerAndRankZerosPortIsShared) {
  const Model model = classifier();
  PlanOptions options;
  options.nodes = 2;
  options.strategy = Strategy::fused;
  options.tasks = 8;
  options.grid = "4x2";
  const Plan plan = make_plan(model, options);
  DeviceProfile device;
  device.name = "testboard";
  device.macs_per_second_float32 = device.macs_per_second_int8 = 1e6;
  device.flash_bytes_per_second = 1e7;
  device.link_bytes_per_second = 1e6;
  device.message_latency_seconds = 1e-4;
  const std::vector<NodeProgram> programs = task_programs(model, plan.tasks);
  const std::vector<double> slow = {1, 3};
  const TimeEstimate fixed = estimate_task_time(model, plan.tasks, programs, device, false, slow);
  const TimeEstimate stolen = estimate_task_time(model, plan.tasks, programs, device, true, slow);
  EXPECT_LT(stolen.total_seconds, fixed.total_seconds);
  double moving = 0;
  for (const NodeProgram& program : programs) {
    const TimeEstimate alone = estimate_time(model, {program}, device);
    moving += alone.nodes[0].gather_communication;
    for (const LayerTime& layer : alone.nodes[0].layers) moving += layer.communication;
  }
  for (const TimeEstimate* estimate : {&fixed, &stolen}) {
    EXPECT_GE(estimate->total_seconds, moving * (1 - 1e-9));
    double last = 0;
    for (const NodeTime& node : estimate->nodes) last = std::max(last, node.finish);
    EXPECT_DOUBLE_EQ(estimate->total_seconds, last);
  }
}

}  // namespace
}  // namespace splitinfer
