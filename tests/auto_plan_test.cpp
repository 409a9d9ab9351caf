// The auto planner (partition/auto_plan.hpp):
// - on seeded random models and random RAM and flash caps it never returns a
//   plan in which a node exceeds a cap (checked by replaying every node's
//   allocations on an arena of the cap's size, as the run does);
// - when it refuses, the RAM cap its message names fits, and one byte less
//   does not; asked for the fewest nodes, one node fewer does not fit;
// - its stage segments, and plans that mix strategies stay consistent.
#include "auto_plan.hpp"

#include <gtest/gtest.h>

#include <random>
#include <regex>
#include <set>
#include <string>

#include "error.hpp"
#include "model_builder.hpp"
#include "node_program_builder.hpp"
#include "prediction.hpp"

namespace splitinfer {
namespace {

using testing::conv_params;
using testing::ModelBuilder;
using testing::nchw;
using testing::uniform;

double bytes_moved_score(const Plan& plan) {
  double bytes = 0;
  for (const NodePlan& node : plan.node_plans) bytes += node.predicted_bytes_sent;
  return bytes;
}

// Every node of `plan` fits `ram` and `flash`, replayed independently of the
// planner's own predictions.
void expect_fits(const Model& model, const Plan& plan, uint64_t ram, uint64_t flash) {
  for (int k = 1; k <= plan.nodes; ++k) {
    const NodeProgram program =
        build_node_program(model, plan.regions, k, plan.via_coordinator, plan.owners, plan.streams);
    ArenaLayout layout(ram);
    EXPECT_NO_THROW(replay_memory(model, program, layout, "node " + std::to_string(k)))
        << "node " << k;
    uint64_t weights = 0;
    for (size_t i = 0; i < model.layers.size(); ++i)
      weights += weight_slice_bytes(model.layers[i], plan.regions[i][k - 1], false);
    EXPECT_LE(weights, flash) << "node " << k;
  }
}

uint64_t named_ram(const std::string& message) {
  std::smatch match;
  if (!std::regex_search(message, match, std::regex("--ram ([0-9]+)"))) return 0;
  return std::stoull(match[1]);
}

// A model with a classifier: a few random conv stages, then global pooling
// and a linear layer, so late layers hold more weights than activations.
Model random_classifier(uint32_t seed) {
  std::mt19937 generator(seed);
  ModelBuilder b(nchw(1, 3, uniform(generator, 8, 24), uniform(generator, 8, 24)), seed);
  std::string last = "input";
  const int stages = static_cast<int>(uniform(generator, 1, 3));
  for (int s = 0; s < stages; ++s) {
    const std::string name = "conv" + std::to_string(s);
    b.conv(name, last, uniform(generator, 2, 12), conv_params(3, uniform(generator, 1, 2), 1));
    b.unary(name + "_relu", Op::relu, name);
    last = name + "_relu";
    if (uniform(generator, 0, 3)) {  // widen, then narrow: a run whose middle map is the largest
      b.conv(name + "_expand", last, uniform(generator, 32, 64), conv_params(1, 1, 0));
      b.unary(name + "_expand_relu", Op::relu, name + "_expand");
      b.conv(name + "_project", name + "_expand_relu", uniform(generator, 2, 12),
             conv_params(1, 1, 0));
      last = name + "_project";
    }
  }
  b.global_avgpool("pool", last);
  b.flatten("flatten", "pool");
  b.linear("fc", "flatten", uniform(generator, 5, 40));
  return b.finish("fc");
}

TEST(AutoPlan, NeverExceedsACapAndNamesTheSmallestThatFits) {
  std::mt19937 generator(7);
  int planned = 0, refused = 0, mixed = 0, streamed = 0;
  for (uint32_t seed = 1; seed <= 40; ++seed) {
    const Model model = seed % 2 ? testing::random_stack(seed) : random_classifier(seed);
    for (int trial = 0; trial < 3; ++trial) {
      PlanOptions options;
      options.nodes = static_cast<int>(uniform(generator, 1, 6));
      // Caps from a fraction of the one-node plan's needs up to all of them.
      PlanOptions one;
      one.nodes = 1;
      const Plan whole = make_plan(model, one);
      options.ram_cap_bytes =
          largest_peak_ram(whole) * uniform(generator, 15, 100) / 100 + uniform(generator, 0, 64);
      options.flash_cap_bytes = trial == 2
                                    ? largest_flash(whole) * uniform(generator, 30, 100) / 100
                                    : ArenaLayout::kUnlimited;
      SCOPED_TRACE("seed " + std::to_string(seed) + ", " + std::to_string(options.nodes) +
                   " nodes, RAM cap " + std::to_string(options.ram_cap_bytes) + ", flash cap " +
                   std::to_string(options.flash_cap_bytes));
      try {
        const Plan plan = auto_plan(model, options, bytes_moved_score, 8);
        ++planned;
        EXPECT_EQ(plan.nodes, options.nodes);
        expect_fits(model, plan, options.ram_cap_bytes, options.flash_cap_bytes);
        streamed += !plan.streams.empty();
        mixed +=
            std::set<std::string>(plan.layer_strategies.begin() + 1, plan.layer_strategies.end())
                .size() > 1;
      } catch (const Error& refusal) {
        ++refused;
        const std::string message = refusal.what();
        const uint64_t ram = named_ram(message);
        if (ram == 0) {  // the flash cap is what no plan fits
          EXPECT_NE(message.find("--flash"), std::string::npos) << message;
          continue;
        }
        EXPECT_GT(ram, options.ram_cap_bytes) << message;
        PlanOptions enough = options;
        enough.ram_cap_bytes = ram;
        const Plan plan = auto_plan(model, enough, bytes_moved_score, 8);
        expect_fits(model, plan, ram, options.flash_cap_bytes);
        PlanOptions short_by_one = options;
        short_by_one.ram_cap_bytes = ram - 1;
        EXPECT_THROW(auto_plan(model, short_by_one, bytes_moved_score, 8), Error);
      }
      if (HasFailure()) return;
    }
  }
  EXPECT_GT(planned, 30);
  EXPECT_GT(refused, 10);
  EXPECT_GT(mixed, 3);
  EXPECT_GE(streamed, 3);
}

TEST(AutoPlan, FewestNodesThatFit) {
  int several = 0;  // seeds whose fewest nodes are more than one
  for (uint32_t seed = 2; seed <= 20; seed += 2) {
    const Model model = random_classifier(seed);
    PlanOptions one;
    one.nodes = 1;
    PlanOptions options;
    options.nodes = 0;
    options.ram_cap_bytes = largest_peak_ram(make_plan(model, one)) / 3;
    SCOPED_TRACE("seed " + std::to_string(seed));
    try {
      const Plan plan = auto_plan(model, options, bytes_moved_score, 16);
      expect_fits(model, plan, options.ram_cap_bytes, ArenaLayout::kUnlimited);
      // One node may fit a third of its unstreamed peak by streaming from
      // the input on; otherwise one node fewer does not fit.
      if (plan.nodes == 1) continue;
      ++several;
      PlanOptions fewer = options;
      fewer.nodes = plan.nodes - 1;
      EXPECT_THROW(auto_plan(model, fewer, bytes_moved_score, plan.nodes - 1), Error);
    } catch (const Error& refusal) {
      EXPECT_NE(std::string(refusal.what()).find("with 16 nodes the smallest RAM cap"),
                std::string::npos)
          << refusal.what();
    }
  }
  EXPECT_GE(several, 3);
}

TEST(AutoPlan, StageSegmentsFollowTheMapSize) {
  ModelBuilder b(nchw(1, 3, 16, 16));
  b.conv("a", "input", 4, conv_params(3, 1, 1));  // 16x16
  b.conv("b", "a", 4, conv_params(3, 1, 1));      // 16x16
  b.conv("c", "b", 8, conv_params(3, 2, 1));      // 8x8
  b.unary("c_relu", Op::relu, "c");               // 8x8
  b.global_avgpool("pool", "c_relu");             // 1x1
  b.flatten("flatten", "pool");
  b.linear("fc", "flatten", 5);
  EXPECT_EQ(stage_segments(b.finish("fc")), (std::vector<int>{-1, 0, 0, 1, 1, 2, 2, 2}));
}

}  // namespace
}  // namespace splitinfer
