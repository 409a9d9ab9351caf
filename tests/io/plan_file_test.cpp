// Plan files (io/plan_file.hpp): the per-layer strategies read back as
// written, a row per layer, the input layer's empty row of an auto plan
// included (a comma-joined attribute lost it: one entry fewer than layers);
// a strategy name the registry does not know is refused; a plan written over
// another leaves one plan (no node files of the old one, no temporary files),
// and a rewrite cut short before plan.h5 leaves a plan that is refused,
// naming the node file that does not match.
#include "plan_file.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <string>

#include "error.hpp"
#include "hdf5.hpp"
#include "model_builder.hpp"
#include "model_file.hpp"
#include "output_file.hpp"

namespace splitinfer {
namespace {

// A seeded random stack of layers, with the input metadata a model file holds.
Model small_model() {
  Model model = testing::random_stack(5);
  const int64_t channels = model.layers[0].output_shape.c;
  model.meta.mean.assign(channels, 0.0);
  model.meta.std.assign(channels, 1.0);
  return model;
}

std::string plan_dir(const std::string& name) {
  const std::string dir = (std::filesystem::path(::testing::TempDir()) / name).string();
  std::filesystem::remove_all(dir);
  return dir;
}

TEST(PlanFile, LayerStrategiesReadBackARowPerLayer) {
  const Model model = small_model();
  PlanOptions options;
  options.nodes = 2;
  options.strategy = Strategy::automatic;
  const Plan plan = make_plan(model, options);
  ASSERT_EQ(plan.layer_strategies.size(), model.layers.size());
  EXPECT_EQ(plan.layer_strategies[0], "");  // the input layer: nothing cuts it
  const std::string dir = plan_dir("splitinfer_plan_file_auto");
  write_plan(dir, model, plan);
  Model read_model;
  Plan read;
  read_plan(dir, read_model, read);
  EXPECT_EQ(read.strategy, plan.strategy);
  EXPECT_EQ(read.layer_strategies, plan.layer_strategies);
  std::filesystem::remove_all(dir);
}

TEST(PlanFile, UnknownStrategyIsRefused) {
  const Model model = small_model();
  PlanOptions options;
  options.nodes = 2;
  const std::string dir = plan_dir("splitinfer_plan_file_unknown");
  write_plan(dir, model, make_plan(model, options));
  {
    const h5::Handle file(H5Fopen(plan_path(dir).c_str(), H5F_ACC_RDWR, H5P_DEFAULT));
    ASSERT_GE(file.id(), 0);
    const h5::Group root(h5::Handle(H5Gopen2(file.id(), "/", H5P_DEFAULT)), plan_path(dir));
    root.write_string("strategy", "diagonal");
    seal(root);  // an edit on purpose: the content digest follows it
  }
  Model read_model;
  Plan read;
  try {
    read_plan(dir, read_model, read);
    ADD_FAILURE() << "a plan of strategy 'diagonal' was read";
  } catch (const Error& failure) {
    EXPECT_NE(std::string(failure.what())
                  .find("names strategy 'diagonal', which splitinfer does not know (auto, spatial, "
                        "fused, channel, branches, relay)"),
              std::string::npos)
        << failure.what();
  }
  std::filesystem::remove_all(dir);
}

// A plan cut into tasks reads back as written; a task table edited on
// purpose (and resealed) is refused, saying what is wrong with it.
TEST(PlanFile, TaskTablesReadBackAndEditedOnesAreRefused) {
  const Model model = small_model();
  PlanOptions options;
  options.nodes = 2;
  options.strategy = Strategy::fused;
  options.tasks = 4;
  const Plan plan = make_plan(model, options);
  const std::string dir = plan_dir("splitinfer_plan_file_tasks");
  write_plan(dir, model, plan);
  Model read_model;
  Plan read;
  read_plan(dir, read_model, read);
  EXPECT_EQ(read.tasks.regions, plan.tasks.regions);
  EXPECT_EQ(read.tasks.stage, plan.tasks.stage);
  EXPECT_EQ(read.tasks.may_take, plan.tasks.may_take);
  ASSERT_EQ(read.tasks.list.size(), plan.tasks.list.size());
  for (size_t task = 0; task < plan.tasks.list.size(); ++task)
    EXPECT_EQ(read.tasks.list[task].home, plan.tasks.list[task].home);
  const auto refused_after = [&](const std::string& dataset, const std::vector<int64_t>& dims,
                                 const auto& edit, const std::string& expected) {
    write_plan(dir, model, plan);
    {
      const h5::Handle file(H5Fopen(plan_path(dir).c_str(), H5F_ACC_RDWR, H5P_DEFAULT));
      ASSERT_GE(file.id(), 0);
      const h5::Group root(h5::Handle(H5Gopen2(file.id(), "/", H5P_DEFAULT)), plan_path(dir));
      const h5::Group tasks = root.open_group("tasks");
      std::vector<int64_t> read_dims;
      std::vector<int64_t> values = tasks.read_int64s(dataset, read_dims);
      ASSERT_EQ(read_dims, dims);
      edit(values);
      ASSERT_GE(H5Ldelete(tasks.id(), dataset.c_str(), H5P_DEFAULT), 0);
      tasks.write_int64s(dataset, dims, values.data());
      seal(root);
    }
    try {
      read_plan(dir, read_model, read);
      ADD_FAILURE() << "an edited '" << dataset << "' was read";
    } catch (const Error& failure) {
      EXPECT_NE(std::string(failure.what()).find(expected), std::string::npos) << failure.what();
    }
  };
  const int64_t layers = static_cast<int64_t>(model.layers.size());
  const int64_t tasks = static_cast<int64_t>(plan.tasks.list.size());
  refused_after("stage", {layers}, [](std::vector<int64_t>& v) { v.back() += 1; },
                "'stage' does not match the stages of the tasks' regions");
  refused_after("list", {tasks, 3}, [](std::vector<int64_t>& v) { v[2] = 3; },
                "task 0 has no home among nodes 1..2");
  refused_after("may_take", {2, tasks}, [](std::vector<int64_t>& v) { v[0] = 0; },
                "'may_take' of node 1 must be 0 or 1, and 1 for its own tasks");
  // The last layer's first tile one channel, row or column short: part of
  // the output is nobody's.
  refused_after("regions", {layers, 4, 6}, [&](std::vector<int64_t>& v) {
    int64_t* last = v.data() + (layers - 1) * 4 * 6;  // c0, c1, y0, y1, x0, x1
    for (int axis = 0; axis < 3; ++axis)
      if (last[2 * axis + 1] - last[2 * axis] > 1) {
        --last[2 * axis + 1];
        return;
      }
    ADD_FAILURE() << "the tile is one element";
  }, "the plan's tasks compute only part of");
  std::filesystem::remove_all(dir);
}

std::set<std::string> files_in(const std::string& dir) {
  std::set<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(dir))
    names.insert(entry.path().filename().string());
  return names;
}

TEST(PlanFile, APlanWrittenOverAnotherLeavesOnePlan) {
  const Model model = small_model();
  const std::string dir = plan_dir("splitinfer_plan_file_over");
  PlanOptions four;
  four.nodes = 4;
  write_plan(dir, model, make_plan(model, four));
  std::ofstream(dir + "/notes.txt") << "a user's file\n";
  PlanOptions two;
  two.nodes = 2;
  write_plan(dir, model, make_plan(model, two));
  EXPECT_EQ(files_in(dir),
            (std::set<std::string>{"notes.txt", "plan.h5", "node_1.h5", "node_2.h5"}));
  Model read_model;
  Plan read;
  read_plan(dir, read_model, read);
  EXPECT_EQ(read.nodes, 2);
  for (int node = 1; node <= 2; ++node) {
    Model weights = read_model;
    EXPECT_NO_THROW(read_node_weights(dir, node, read, weights));
  }
  std::filesystem::remove_all(dir);
}

TEST(PlanFile, ARewriteCutShortBeforePlanH5IsRefused) {
  const Model model = small_model();
  const std::string dir = plan_dir("splitinfer_plan_file_cut");
  PlanOptions spatial;
  spatial.nodes = 2;
  write_plan(dir, model, make_plan(model, spatial));
  Model old_model;
  Plan old_plan;
  read_plan(dir, old_model, old_plan);
  // plan.h5 cannot be created (its temporary name is taken by a directory):
  // the new node files are in place, the old plan.h5 is whole.
  PlanOptions channel = spatial;
  channel.strategy = Strategy::channel;
  std::filesystem::create_directory(temporary_path_for(plan_path(dir)));
  EXPECT_THROW(write_plan(dir, model, make_plan(model, channel)), Error);
  std::filesystem::remove(temporary_path_for(plan_path(dir)));
  EXPECT_EQ(files_in(dir), (std::set<std::string>{"plan.h5", "node_1.h5", "node_2.h5"}));
  Model read_model;
  Plan read;
  read_plan(dir, read_model, read);
  EXPECT_EQ(read.strategy, Strategy::spatial);
  Model weights = read_model;
  try {
    read_node_weights(dir, 1, read, weights);
    ADD_FAILURE() << "a node file of another plan was read";
  } catch (const Error& failure) {
    EXPECT_NE(std::string(failure.what()).find("node_1.h5"), std::string::npos) << failure.what();
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace splitinfer
