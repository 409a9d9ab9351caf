// The strategy registry (partition/strategy_registry.hpp):
// - every row's name finds its strategy, and unknown names are refused
//   listing every known one;
// - each option only some strategies take is refused for the others, naming
//   the strategies that take it (auto: none, it chooses), and accepted for
//   those that do;
// - every strategy with a cut plans a model through make_plan: the plan
//   carries the strategy, a label per layer starting with a registered name,
//   and with --stream (where the row has stream_runs) streams.
#include "strategy_registry.hpp"

#include <gtest/gtest.h>

#include <set>
#include <string>

#include "error.hpp"
#include "model_builder.hpp"
#include "plan.hpp"

namespace splitinfer {
namespace {

using testing::conv_params;
using testing::error_of;
using testing::ModelBuilder;
using testing::nchw;

// Two convolutions on the input (independent branches) joined by a concat:
// a model every strategy, branches included, can cut.
Model joined_branches() {
  ModelBuilder b(nchw(1, 2, 12, 10));
  b.conv("left", "input", 4, conv_params(3, 1, 1));
  b.conv("right", "input", 4, conv_params(1, 1, 0));
  b.concat("joined", {"left", "right"});
  b.conv("expand", "joined", 16, conv_params(1, 1, 0));
  b.conv("project", "expand", 4, conv_params(3, 1, 1));
  return b.finish("project");
}

TEST(StrategyRegistry, NamesFindTheirRows) {
  std::set<std::string> names;
  for (const StrategyInfo& info : strategies()) {
    EXPECT_EQ(&strategy_info(info.strategy), &info);
    EXPECT_EQ(find_strategy(info.name), info.strategy);
    EXPECT_EQ(parse_strategy(info.name), info.strategy);
    EXPECT_TRUE(names.insert(info.name).second) << info.name << " twice";
    EXPECT_NE(std::string(info.description), "") << info.name;
    EXPECT_NE(strategy_help().find(std::string(info.name) +
                                   (info.strategy == Strategy::spatial ? " (default)" : "") + ": " +
                                   info.description),
              std::string::npos)
        << info.name;
  }
  EXPECT_EQ(strategies().size(), kStrategyCount);
  EXPECT_EQ(std::string(strategy_name(Strategy::automatic)), "auto");  // as plan.h5 spells it
  EXPECT_EQ(find_strategy("Spatial"), std::nullopt);
  EXPECT_EQ(error_of([] { parse_strategy("diagonal"); }),
            "unknown strategy 'diagonal' (auto, spatial, fused, channel, branches, relay)");
}

TEST(StrategyRegistry, OptionsOnlyWhereTaken) {
  const Model model = joined_branches();
  const auto with = [](Strategy strategy, StrategyOption option) {
    PlanOptions options;
    options.nodes = 2;
    options.strategy = strategy;
    switch (option) {
      case StrategyOption::grid:
        options.grid = "2x1";
        break;
      case StrategyOption::fuse:
        options.fuse = 2;
        break;
      case StrategyOption::reuse:
        options.reuse = true;
        break;
      case StrategyOption::stream:
        options.stream = "2";
        break;
      case StrategyOption::tasks:
        options.tasks = 2;
        break;
    }
    return options;
  };
  const std::pair<StrategyOption, std::string> refusals[] = {
      {StrategyOption::grid, "--grid applies to the spatial and fused strategies only"},
      {StrategyOption::fuse, "--fuse applies to the fused strategy only"},
      {StrategyOption::reuse, "--reuse applies to the fused strategy only"},
      {StrategyOption::stream,
       "--stream applies to the spatial and fused strategies only (auto chooses)"},
      {StrategyOption::tasks, "--tasks applies to the spatial and fused strategies only"}};
  int taken = 0;
  for (const StrategyInfo& info : strategies())
    for (const auto& [option, refusal] : refusals) {
      SCOPED_TRACE(std::string(info.name) + ", " + refusal);
      const PlanOptions options = with(info.strategy, option);
      if (info.strategy == Strategy::automatic) {
        EXPECT_EQ(error_of([&] { check_strategy_options(options); }),
                  "--grid, --fuse, --reuse, --stream, --tasks and --keep-weights do not apply to "
                  "the auto strategy (it chooses)");
      } else if (!takes_option(info.strategy, option)) {
        EXPECT_EQ(error_of([&] { make_plan(model, options); }), refusal);
      } else {
        ++taken;
        EXPECT_NO_THROW(check_strategy_options(options));
        EXPECT_EQ(takes_option(info.strategy, StrategyOption::stream), info.stream_runs != nullptr);
      }
    }
  EXPECT_EQ(taken, 8);  // spatial: grid, stream, tasks; fused: all five
  PlanOptions keep;
  keep.keep_weights = true;
  EXPECT_EQ(error_of([&] { check_strategy_options(keep); }),
            "--keep-weights applies to streamed plans only (--stream)");
}

TEST(StrategyRegistry, EveryCutPlansThroughMakePlan) {
  const Model model = joined_branches();
  for (const StrategyInfo& info : strategies()) {
    for (int nodes = 2; nodes <= 3; ++nodes) {
      SCOPED_TRACE(std::string(info.name) + ", " + std::to_string(nodes) + " nodes");
      PlanOptions options;
      options.nodes = nodes;
      options.strategy = info.strategy;
      const Plan plan = make_plan(model, options);
      EXPECT_EQ(plan.strategy, info.strategy);
      EXPECT_EQ(plan.nodes, nodes);
      ASSERT_EQ(plan.layer_strategies.size(), model.layers.size());
      ASSERT_EQ(plan.regions.size(), model.layers.size());
      for (size_t i = 1; i < model.layers.size(); ++i) {
        const std::string& label = plan.layer_strategies[i];
        EXPECT_TRUE(find_strategy(label.substr(0, label.find(' ')))) << label;
      }
      if (info.stream_runs == nullptr) continue;
      options.stream = "1";
      const Plan streamed = make_plan(model, options);
      EXPECT_FALSE(streamed.streams.empty());
      for (const StreamGroup& group : streamed.streams)
        EXPECT_NE(streamed.layer_strategies[group.last].find(" streamed"), std::string::npos);
    }
  }
}

}  // namespace
}  // namespace splitinfer
