#include "strategy_registry.hpp"

#include <iterator>
#include <vector>

#include "../src/error.hpp"
#include "plan.hpp"
#include "strategies.hpp"

namespace splitinfer {
namespace {

// --grid "RxC": rows x cols tiles, as many as there are nodes (or tasks,
// with --tasks); empty: N x 1.
void parse_grid(const std::string& grid, int nodes, int tasks, int& rows, int& cols) {
  const int tiles = tasks > 0 ? tasks : nodes;
  rows = tiles, cols = 1;
  if (grid.empty()) return;
  // Each factor at most kMaxNodes, so their product fits an int.
  const Error not_a_grid("--grid '" + grid + "' is not RxC with R, C in 1.." +
                         std::to_string(kMaxNodes) + " (e.g. 2x4)");
  const auto factor = [&](const std::string& digits) {
    if (digits.empty() || digits.size() > 6 ||
        digits.find_first_not_of("0123456789") != std::string::npos)
      throw not_a_grid;
    const int value = std::stoi(digits);
    if (value < 1 || value > kMaxNodes) throw not_a_grid;
    return value;
  };
  const size_t x = grid.find_first_of("xX");
  if (x == std::string::npos) throw not_a_grid;
  rows = factor(grid.substr(0, x));
  cols = factor(grid.substr(x + 1));
  if (int64_t{rows} * cols != tiles)
    throw Error("--grid " + grid + " has " + std::to_string(int64_t{rows} * cols) +
                " tiles but there are " + std::to_string(tiles) +
                (tasks > 0 ? " tasks (--tasks)" : " nodes"));
}

// ---- the strategies' cuts (see StrategyInfo::cut) ----

void cut_spatial(const Model& model, const PlanOptions& options, Plan& plan) {
  parse_grid(options.grid, plan.nodes, options.tasks, plan.grid_rows, plan.grid_cols);
  plan.regions = spatial_regions(model, plan.grid_rows, plan.grid_cols,
                                 options.tasks > 0 ? std::vector<double>{} : options.node_shares);
  if (options.row_shares.empty()) return;
  if (plan.grid_cols != 1 || options.tasks != 0 ||
      options.row_shares.size() != static_cast<size_t>(plan.nodes))
    throw Error("--row-shares needs one share per node of a plan in rows (grid Nx1, no --tasks)");
  for (double share : options.row_shares)
    if (!(share > 0 && share < 1e6))
      throw Error("--row-shares must be positive numbers (a node's share of the rows)");
  plan.regions = spatial_row_regions(model, options.row_shares);
}

void cut_fused(const Model& model, const PlanOptions& options, Plan& plan) {
  parse_grid(options.grid, plan.nodes, options.tasks, plan.grid_rows, plan.grid_cols);
  plan.fuse = options.fuse;
  plan.reuse = options.reuse;
  FusedRegions fused =
      fused_regions(model, plan.grid_rows, plan.grid_cols, plan.fuse, plan.reuse,
                    options.tasks > 0 ? std::vector<double>{} : options.node_shares);
  plan.regions = std::move(fused.regions);
  plan.owners = std::move(fused.owners);
  for (size_t i = 0; i < model.layers.size(); ++i)  // between blocks: spatial tiles
    if (fused.block[i] == 0) plan.layer_strategies[i] = strategy_name(Strategy::spatial);
}

void cut_channel(const Model& model, const PlanOptions& options, Plan& plan) {
  plan.regions = channel_regions(model, plan.nodes, options.node_shares);
}

void cut_branches(const Model& model, const PlanOptions&, Plan& plan) {
  const std::vector<int> branches = independent_branches(model);
  plan.regions = branch_regions(model, branches, plan.nodes);
  for (size_t i = 0; i < model.layers.size(); ++i)  // the join and after: spatial rows
    if (branches[i] < 0) plan.layer_strategies[i] = strategy_name(Strategy::spatial);
}

// Split_inference_microcontrollers' scheme, the baseline: each node computes
// a contiguous run of every layer's flattened output (a channel range), and
// all traffic goes through the coordinator.
void cut_relay(const Model& model, const PlanOptions& options, Plan& plan) {
  plan.regions = channel_regions(model, plan.nodes, options.node_shares);
  plan.via_coordinator = true;
}

// Spatial tiles stream each widening block (an inverted residual: expand,
// depthwise, project); fused tiles stream each block whole (DeepThings'
// tiles, several per node).
StreamGroups spatial_stream_runs(const Model& model, const Plan&) {
  return stream_runs(model, {}, true);
}

StreamGroups fused_stream_runs(const Model& model, const Plan& plan) {
  return stream_runs(model, fused_blocks(model, plan.fuse), false);
}

constexpr StrategyInfo kStrategies[] = {
    {Strategy::automatic,
     "auto",
     "per stage of the network, the strategy and grid that fit the caps fastest, on the fewest "
     "nodes without --nodes",
     {},
     nullptr,
     nullptr},
    {Strategy::spatial,
     "spatial",
     "tiles of every map (--grid RxC, N rows by default), halos exchanged between neighbours",
     {.grid = true, .tasks = true},
     cut_spatial,
     spatial_stream_runs},
    {Strategy::fused,
     "fused",
     "DeepThings' fused tiles: no exchange inside a block of --fuse layers, shared borders "
     "recomputed",
     {.grid = true, .fuse = true, .reuse = true, .tasks = true},
     cut_fused,
     fused_stream_runs},
    {Strategy::channel,
     "channel",
     "output channels split, inputs gathered among the nodes",
     {},
     cut_channel,
     nullptr},
    {Strategy::branches,
     "branches",
     "FPL19's split networks: independent branches on node groups, nothing moving until they join",
     {},
     cut_branches,
     nullptr},
    {Strategy::relay,
     "relay",
     "channels split, every activation through rank 0: Split_inference_microcontrollers' "
     "baseline",
     {},
     cut_relay,
     nullptr},
};

constexpr bool rows_in_enum_order() {
  for (size_t i = 0; i < std::size(kStrategies); ++i)
    if (kStrategies[i].strategy != static_cast<Strategy>(i)) return false;
  return true;
}
static_assert(std::size(kStrategies) == kStrategyCount, "every strategy needs a row");
static_assert(rows_in_enum_order(), "rows in the order of enum class Strategy");

// The options only some strategies take, in the order messages name them.
struct OptionFlag {
  StrategyOption option;
  const char* flag;
  const char* note;  // ends the message saying which strategies take it
};
constexpr OptionFlag kOptionFlags[] = {{StrategyOption::grid, "--grid", ""},
                                       {StrategyOption::fuse, "--fuse", ""},
                                       {StrategyOption::reuse, "--reuse", ""},
                                       {StrategyOption::stream, "--stream", " (auto chooses)"},
                                       {StrategyOption::tasks, "--tasks", ""}};

bool given(const PlanOptions& options, StrategyOption option) {
  switch (option) {
    case StrategyOption::grid:
      return !options.grid.empty();
    case StrategyOption::fuse:
      return options.fuse != 0;
    case StrategyOption::reuse:
      return options.reuse;
    case StrategyOption::stream:
      return !options.stream.empty();
    case StrategyOption::tasks:
      return options.tasks != 0;
  }
  return false;
}

// "a, b and c"
std::string listed(const std::vector<std::string>& items) {
  std::string text;
  for (size_t i = 0; i < items.size(); ++i)
    text += (i == 0 ? "" : i + 1 == items.size() ? " and " : ", ") + items[i];
  return text;
}

// "the fused strategy", "the spatial and fused strategies"
std::string strategies_taking(StrategyOption option) {
  std::vector<std::string> names;
  for (const StrategyInfo& info : kStrategies)
    if (takes_option(info.strategy, option)) names.emplace_back(info.name);
  return "the " + listed(names) + (names.size() == 1 ? " strategy" : " strategies");
}

}  // namespace

std::span<const StrategyInfo> strategies() { return kStrategies; }

const StrategyInfo& strategy_info(Strategy strategy) {
  return kStrategies[static_cast<size_t>(strategy)];
}

const char* strategy_name(Strategy strategy) { return strategy_info(strategy).name; }

bool takes_option(Strategy strategy, StrategyOption option) {
  const StrategyInfo& info = strategy_info(strategy);
  switch (option) {
    case StrategyOption::grid:
      return info.options.grid;
    case StrategyOption::fuse:
      return info.options.fuse;
    case StrategyOption::reuse:
      return info.options.reuse;
    case StrategyOption::stream:
      return info.stream_runs != nullptr;
    case StrategyOption::tasks:
      return info.options.tasks;
  }
  return false;
}

std::optional<Strategy> find_strategy(const std::string& name) {
  for (const StrategyInfo& info : kStrategies)
    if (name == info.name) return info.strategy;
  return std::nullopt;
}

Strategy parse_strategy(const std::string& name) {
  if (const std::optional<Strategy> strategy = find_strategy(name)) return *strategy;
  throw Error("unknown strategy '" + name + "' (" + strategy_names() + ")");
}

std::string strategy_names() {
  std::string names;
  for (const StrategyInfo& info : kStrategies)
    names += std::string(names.empty() ? "" : ", ") + info.name;
  return names;
}

std::string strategy_help() {
  std::string help;
  for (const StrategyInfo& info : kStrategies)
    help += std::string(help.empty() ? "" : "; ") + info.name +
            (info.strategy == PlanOptions{}.strategy ? " (default)" : "") + ": " + info.description;
  return help;
}

void check_strategy_options(const PlanOptions& options) {
  if (options.strategy == Strategy::automatic) {
    bool any = options.keep_weights;
    std::vector<std::string> flags;
    for (const OptionFlag& flag : kOptionFlags) {
      any = any || given(options, flag.option);
      flags.emplace_back(flag.flag);
    }
    flags.emplace_back("--keep-weights");
    if (any)
      throw Error(listed(flags) + " do not apply to the " + strategy_name(options.strategy) +
                  " strategy (it chooses)");
    return;
  }
  for (const OptionFlag& flag : kOptionFlags)
    if (given(options, flag.option) && !takes_option(options.strategy, flag.option))
      throw Error(std::string(flag.flag) + " applies to " + strategies_taking(flag.option) +
                  " only" + flag.note);
  if (options.fuse < 0) throw Error("--fuse must be 0 (whole blocks) or more");
  if (options.keep_weights && options.stream.empty())
    throw Error("--keep-weights applies to streamed plans only (--stream)");
  if (!options.row_shares.empty() && options.strategy != Strategy::spatial)
    throw Error("--row-shares applies to the spatial strategy only");
  if (options.tasks != 0) {
    if (options.tasks < 0 || options.tasks > kMaxNodes)
      throw Error("--tasks must be between 1 and " + std::to_string(kMaxNodes));
    if (options.nodes > 0 && options.tasks < options.nodes)
      throw Error("--tasks " + std::to_string(options.tasks) + " is fewer than the " +
                  std::to_string(options.nodes) + " nodes (each node needs a task of its own)");
    if (!options.stream.empty() || options.reuse)
      throw Error(std::string("--tasks does not go with ") +
                  (options.reuse ? "--reuse (a task fetches nothing from another)"
                                 : "--stream (a task is computed whole)"));
  }
  if (!options.stream.empty() && options.reuse)
    throw Error(
        "--stream and --reuse do not go together (streamed layers are never whole, so no tile "
        "can fetch their borders)");
}

}  // namespace splitinfer
