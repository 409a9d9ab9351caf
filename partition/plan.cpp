#include "plan.hpp"

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "../src/error.hpp"
#include "../src/format.hpp"
#include "auto_plan.hpp"
#include "prediction.hpp"
#include "strategy_registry.hpp"
#include "stream_plan.hpp"

namespace splitinfer {

namespace {

constexpr uint64_t kFnvBasis = 0xcbf29ce484222325ULL;  // FNV-1a 64-bit offset basis and prime

uint64_t fnv1a(uint64_t hash, const char* bytes, size_t count) {
  for (size_t i = 0; i < count; ++i) {
    hash ^= static_cast<unsigned char>(bytes[i]);
    hash *= 0x100000001b3ULL;
  }
  return hash;
}

std::string hex(uint64_t hash) {
  char text[17];
  std::snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(hash));
  return text;
}

}  // namespace

std::string digest(const std::string& bytes) {
  return hex(fnv1a(kFnvBasis, bytes.data(), bytes.size()));
}

std::string file_digest(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) throw Error("cannot read '" + path + "'");
  // Block by block, never the whole file in memory.
  std::vector<char> block(1 << 20);
  uint64_t hash = kFnvBasis;
  while (file.read(block.data(), static_cast<std::streamsize>(block.size())) || file.gcount() > 0)
    hash = fnv1a(hash, block.data(), static_cast<size_t>(file.gcount()));
  return hex(hash);
}

namespace {

// "R" or "RxC": parts of at most R rows (and C columns).
void parse_parts(const std::string& parts, int64_t& rows, int64_t& cols) {
  const size_t x = parts.find_first_of("xX");
  try {
    size_t used = 0;
    rows = std::stoll(parts.substr(0, x), &used);
    if (used != std::min(x, parts.size())) throw Error("");
    cols = 0;
    if (x != std::string::npos) {
      cols = std::stoll(parts.substr(x + 1), &used);
      if (used != parts.size() - x - 1) throw Error("");
    }
  } catch (const std::exception&) {
    rows = -1;
  }
  if (rows < 1 || cols < 0)
    throw Error("--stream '" + parts +
                "' is not R or RxC (parts of at most R rows, and C columns; e.g. 4 or 8x8)");
}

double proxy_latency(const Model& model, const Plan& plan) {
  // Without a device profile: every layer as long as its busiest node's
  // MACs at 100 MMAC/s plus the bytes moved in it over one 100 Mbit/s link.
  double seconds = 0;
  for (size_t i = 1; i < model.layers.size(); ++i) {
    uint64_t busiest = 0, moved = 0;
    for (int k = 0; k < plan.nodes; ++k) {
      busiest = std::max(busiest, plan.node_plans[k].layer_macs[i]);
      moved += plan.node_plans[k].layer_bytes_received[i];
    }
    seconds += busiest / 1e8 + moved / 12.5e6;
  }
  return seconds;
}

// The device's emulated time of one inference, when planned for a device
// (a plan with tasks: under the static schedule).
void emulate(const Model& model, const PlanOptions& options, Plan& plan) {
  if (!options.device) return;
  plan.device = options.device;
  plan.emulated =
      plan.tasks.empty()
          ? estimate_time(model, node_programs(model, plan), *plan.device)
          : estimate_task_time(model, plan.tasks, task_programs(model, plan.tasks), *plan.device,
                               false);
}

// --tasks: the strategy cut plan.regions into tiles; they become the task
// table. A node may take a task whose peak its RAM cap holds, and any task
// when its flash holds the weights of all of them (else only its own);
// a home task that does not fit fails the caps' check like any plan.
void make_tasks(const Model& model, Plan& plan) {
  plan.tasks = make_task_table(model, std::move(plan.regions), plan.grid_rows, plan.grid_cols,
                               plan.nodes);
  plan.owners.clear();
  TaskTable& table = plan.tasks;
  const std::vector<NodeProgram> programs = task_programs(model, table);
  for (size_t task = 0; task < programs.size(); ++task) {
    ArenaLayout unlimited;
    if (replay_memory(model, programs[task], unlimited, "task") > plan.ram_cap_bytes)
      for (int k = 1; k <= plan.nodes; ++k)
        table.may_take[k - 1][task] = table.list[task].home == k;
  }
  plan.regions = node_weight_regions(model, table, plan.nodes);
  bool narrowed = false;
  for (int k = 1; k <= plan.nodes; ++k) {
    uint64_t flash = 0;
    for (size_t i = 0; i < model.layers.size(); ++i)
      flash += weight_slice_bytes(model.layers[i], plan.regions[i][k - 1], false);
    if (flash <= plan.flash_cap_bytes) continue;
    for (size_t task = 0; task < programs.size(); ++task)
      table.may_take[k - 1][task] = table.list[task].home == k;
    narrowed = true;
  }
  if (narrowed) plan.regions = node_weight_regions(model, table, plan.nodes);
}

// The auto strategy: the planner's search (auto_plan.hpp), scored by the
// emulated latency on the device, or without one a rough stand-in.
Plan plan_automatically(const Model& model, const PlanOptions& options) {
  if (options.nodes == 0 || options.nodes < -1)
    throw Error("--nodes must be at least 1 (or omitted: the fewest nodes that fit)");
  PlanOptions search = options;
  search.nodes = std::max(options.nodes, 0);
  const PlanScore score = [&](const Plan& candidate) {
    return options.device ? estimate_time(model, node_programs(model, candidate), *options.device)
                                .total_seconds
                          : proxy_latency(model, candidate);
  };
  Plan plan = auto_plan(model, search, score);
  if (options.weights_in_place) {  // needs less RAM than the plan chosen with copies
    plan.weights_in_place = true;
    predict_nodes(model, plan);
  }
  emulate(model, options, plan);
  plan.model_digest = options.model_digest;
  plan.plan_id =
      digest(options.model_digest + "|" + strategy_name(plan.strategy) + "|" +
             std::to_string(plan.nodes) + "|" + std::to_string(plan.ram_cap_bytes) + "|" +
             std::to_string(plan.flash_cap_bytes) + (options.weights_in_place ? "|in place" : ""));
  return plan;
}

}  // namespace

Plan make_plan(const Model& model, const PlanOptions& options) {
  if (options.nodes > kMaxNodes)
    throw Error("--nodes " + std::to_string(options.nodes) + " is more than the " +
                std::to_string(kMaxNodes) + " nodes splitinfer plans for");
  check_strategy_options(options);
  const StrategyInfo& strategy = strategy_info(options.strategy);
  if (!strategy.cut) return plan_automatically(model, options);  // auto: the planner cuts
  if (options.nodes == -1)
    return make_plan(model, [&] {
      PlanOptions one = options;
      one.nodes = 1;
      return one;
    }());
  if (options.nodes < 1) throw Error("--nodes must be at least 1");
  Plan plan;
  plan.nodes = options.nodes;
  plan.strategy = options.strategy;
  plan.ram_cap_bytes = options.ram_cap_bytes;
  plan.flash_cap_bytes = options.flash_cap_bytes;
  plan.layer_strategies.assign(model.layers.size(), strategy.name);
  strategy.cut(model, options, plan);
  if (options.tasks > 0) make_tasks(model, plan);
  if (!options.stream.empty()) {  // the registry let only strategies with stream_runs through
    StreamParts parts;
    parse_parts(options.stream, parts.rows, parts.cols);
    parts.keep_weights = options.keep_weights;
    if (stream_plan(model, strategy.stream_runs(model, plan), parts, plan) == 0)
      throw Error("--stream: no run of layers of model '" + model.name +
                  "' can be streamed with this grid");
  }
  plan.weights_in_place = options.weights_in_place;
  predict_nodes(model, plan);
  const uint64_t peak = largest_peak_ram(plan), flash = largest_flash(plan);
  if (peak > options.ram_cap_bytes)
    throw Error("a node needs " + format_bytes(peak) + " of RAM but the cap is " +
                format_bytes(options.ram_cap_bytes) +
                "; the smallest cap that fits this plan is --ram " + std::to_string(peak));
  if (flash > options.flash_cap_bytes)
    throw Error("a node's weights take " + format_bytes(flash) + " of flash but the cap is " +
                format_bytes(options.flash_cap_bytes) +
                "; the smallest cap that fits this plan is --flash " + std::to_string(flash));
  plan.plan_id =
      digest(options.model_digest + "|" + std::to_string(plan.nodes) + "|" + strategy.name + "|" +
             std::to_string(plan.grid_rows) + "x" + std::to_string(plan.grid_cols) + "|" +
             std::to_string(plan.ram_cap_bytes) + "|" + std::to_string(plan.flash_cap_bytes) + "|" +
             std::to_string(plan.fuse) + "|" + std::to_string(plan.reuse) + "|" + options.stream +
             (options.keep_weights ? "|kept" : "") + (options.weights_in_place ? "|in place" : "") +
             (options.tasks > 0 ? "|tasks " + std::to_string(options.tasks) : "") +
             [&] {
               std::string shares;
               for (double share : options.row_shares) shares += "|" + std::to_string(share);
               return shares;
             }());
  plan.model_digest = options.model_digest;
  emulate(model, options, plan);
  return plan;
}

}  // namespace splitinfer
