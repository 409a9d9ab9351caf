#pragma once
// Partition strategies as a type, and the one registry that knows them. A
// strategy is a row: its name (as --strategy and plan.h5 spell it), a line
// for --help, the options it takes, and the function that cuts every layer
// of a model into the nodes' regions. What comes after the cut (streaming,
// node programs, predictions, the emulated time, the run) reads only the
// regions, so it never asks which strategy made them.
#include <cstddef>
#include <optional>
#include <span>
#include <string>

#include "../src/graph.hpp"
#include "node_program_builder.hpp"

namespace splitinfer {

struct Plan;
struct PlanOptions;

// In the order --help and messages list them. A new strategy goes last and
// gets its row in strategy_registry.cpp (a static_assert checks the count).
enum class Strategy {
  automatic,  // "auto": the planner chooses among the others, per stage (auto_plan.hpp)
  spatial,
  fused,
  channel,
  branches,
  relay,
};
inline constexpr size_t kStrategyCount = static_cast<size_t>(Strategy::relay) + 1;

// The options of `splitinfer plan` that only some strategies take.
enum class StrategyOption { grid, fuse, reuse, stream, tasks };

// Which of them a strategy takes (--stream: the runs it streams, below).
struct StrategyOptions {
  bool grid = false;   // --grid RxC
  bool fuse = false;   // --fuse L
  bool reuse = false;  // --reuse
  bool tasks = false;  // --tasks T (work stealing, partition/task_plan.hpp)
};

struct StrategyInfo {
  Strategy strategy;
  const char* name;         // as --strategy and plan.h5's `strategy` attribute spell it
  const char* description;  // one line, for --help
  StrategyOptions options;
  // Cuts every layer for plan.nodes nodes: fills plan.regions (and owners,
  // grid, fuse, reuse, via_coordinator as the strategy needs), and
  // plan.layer_strategies where a layer is cut another way than `name` (it
  // arrives holding `name` for every layer). Throws Error when the model or
  // the options do not allow it. Null for auto: make_plan hands it to the
  // auto planner.
  void (*cut)(const Model& model, const PlanOptions& options, Plan& plan);
  // The runs of layers `--stream` computes part by part on a plan it cut
  // (parts left 0: see stream_runs() in strategies.hpp); null for a
  // strategy that does not take --stream.
  StreamGroups (*stream_runs)(const Model& model, const Plan& plan);
};

// Every strategy, in the order of the enum.
std::span<const StrategyInfo> strategies();
const StrategyInfo& strategy_info(Strategy strategy);
const char* strategy_name(Strategy strategy);
bool takes_option(Strategy strategy, StrategyOption option);

// The strategy named `name` (as strategy_name() spells it), if any.
std::optional<Strategy> find_strategy(const std::string& name);
// The same, or Error "unknown strategy 'NAME' (auto, spatial, ...)".
Strategy parse_strategy(const std::string& name);
// Every name, in order: "auto, spatial, fused, channel, branches, relay".
std::string strategy_names();
// For --help: "name: description" of every strategy, the default marked.
std::string strategy_help();

// Throws Error for an option that options.strategy does not take (naming
// the strategies that do), and for options that do not go together.
void check_strategy_options(const PlanOptions& options);

}  // namespace splitinfer
