// Plan files (io/plan_file.hpp): the per-layer strategies read back as
// written, a row per layer, the input layer's empty row of an auto plan
// included (a comma-joined attribute lost it: one entry fewer than layers);
// a strategy name the registry does not know is refused.
#include "plan_file.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "error.hpp"
#include "hdf5.hpp"
#include "model_builder.hpp"
#include "model_file.hpp"

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

}  // namespace
}  // namespace splitinfer
