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

// The emulated time of one inference on the cluster planned for (a plan
// with tasks: under the static schedule).
void emulate(const Model& model, const PlanOptions& options, Plan& plan) {
  plan.devices = cluster_devices(options, plan.nodes);
  if (plan.devices.empty()) return;
  plan.job_seconds_candidates.clear();
  for (const DeviceProfile& device : plan.devices)
    if (device.nvm_bytes > 0) plan.job_seconds_candidates = default_job_seconds_candidates();
  plan.emulated =
      plan.tasks.empty()
          ? estimate_time(model, node_programs(model, plan), plan.devices)
          : estimate_task_time(model, plan.tasks, task_programs(model, plan.tasks), plan.devices,
                               false);
}

// What the plan id takes of a mixed cluster: its name.
std::string cluster_digest_part(const PlanOptions& options) {
  std::string part;
  if (options.devices.empty()) return part;
  part = "|";
  part += cluster_name(options.devices);
  return part;
}

// Each node's caps into its NodePlan (predict_nodes() made them); the plan's
// are the largest node's.
void set_caps(const PlanOptions& options, Plan& plan) {
  plan.ram_cap_bytes = plan.flash_cap_bytes = 0;
  for (NodePlan& node : plan.node_plans) {
    node.ram_cap_bytes = node_ram_cap(options, node.node);
    node.flash_cap_bytes = node_flash_cap(options, node.node);
    plan.ram_cap_bytes = std::max(plan.ram_cap_bytes, node.ram_cap_bytes);
    plan.flash_cap_bytes = std::max(plan.flash_cap_bytes, node.flash_cap_bytes);
  }
}

// --tasks: the strategy cut plan.regions into tiles; they become the task
// table. A node may take a task whose peak its RAM cap holds, and any task
// when its flash holds the weights of all of them (else only its own);
// a home task that does not fit fails the caps' check like any plan.
void make_tasks(const Model& model, const PlanOptions& options, Plan& plan) {
  plan.tasks = make_task_table(model, std::move(plan.regions), plan.grid_rows, plan.grid_cols,
                               plan.nodes);
  plan.owners.clear();
  TaskTable& table = plan.tasks;
  const std::vector<NodeProgram> programs = task_programs(model, table);
  std::vector<uint64_t> peaks;
  for (size_t task = 0; task < programs.size(); ++task) {
    ArenaLayout unlimited;
    peaks.push_back(replay_memory(model, programs[task], unlimited, "task"));
  }
  if (!options.devices.empty()) {
    // A cluster of devices: each stage's tasks go home, in table order, to
    // the node that would finish them soonest at its speed among those
    // whose RAM cap holds them (none: the node the table chose, which the
    // caps' check then names).
    const std::vector<double> costs = task_costs(model, programs);
    std::vector<double> speeds = device_shares(model, options.devices);
    if (speeds.empty()) speeds.assign(plan.nodes, 1.0);
    std::vector<double> load(plan.nodes + 1, 0.0);
    for (size_t task = 0; task < programs.size(); ++task) {
      if (task > 0 && table.list[task].stage != table.list[task - 1].stage)
        std::fill(load.begin(), load.end(), 0.0);
      int best = 0;
      for (int k = 1; k <= plan.nodes; ++k) {
        if (peaks[task] > node_ram_cap(options, k)) continue;
        const double end = (load[k] + costs[task]) / speeds[k - 1];
        if (best == 0 || end < (load[best] + costs[task]) / speeds[best - 1]) best = k;
      }
      if (best == 0) continue;
      table.list[task].home = best;
      load[best] += costs[task];
    }
  }
  for (size_t task = 0; task < programs.size(); ++task)
    for (int k = 1; k <= plan.nodes; ++k)
      table.may_take[k - 1][task] =
          peaks[task] <= node_ram_cap(options, k) || table.list[task].home == k;
  plan.regions = node_weight_regions(model, table, plan.nodes);
  bool narrowed = false;
  for (int k = 1; k <= plan.nodes; ++k) {
    uint64_t flash = 0;
    for (size_t i = 0; i < model.layers.size(); ++i)
      flash += weight_slice_bytes(model.layers[i], plan.regions[i][k - 1], false);
    if (flash <= node_flash_cap(options, k)) continue;
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
  search.node_shares = device_shares(model, options.devices);
  const PlanScore score = [&](const Plan& candidate) {
    const std::vector<DeviceProfile> devices = cluster_devices(options, candidate.nodes);
    return devices.empty()
               ? proxy_latency(model, candidate)
               : estimate_time(model, node_programs(model, candidate), devices).total_seconds;
  };
  std::optional<Plan> searched;
  std::optional<Error> failure;
  try {
    searched = auto_plan(model, search, score);
    if (options.weights_in_place) {  // needs less RAM than the plan chosen with copies
      searched->weights_in_place = true;
      predict_nodes(model, *searched);
    }
  } catch (const Error& error) {
    failure = error;
  }
  // A mixed cluster: the search's candidates give each node its speed's
  // share or an equal one, while a whole-model cut can also shrink the share
  // of a node over its caps (make_plan()); the faster plan wins.
  if (!search.node_shares.empty())
    for (Strategy whole : {Strategy::spatial, Strategy::fused}) {
      PlanOptions fitted = options;
      fitted.strategy = whole;
      Plan candidate;
      try {
        candidate = make_plan(model, fitted);
      } catch (const Error&) {
        continue;
      }
      if (searched && score(candidate) >= score(*searched)) continue;
      for (size_t i = 1; i < model.layers.size(); ++i)
        candidate.layer_strategies[i] += " by speed, fitted";
      candidate.strategy = Strategy::automatic;
      candidate.grid_rows = candidate.grid_cols = 1;
      candidate.fuse = 0;
      searched = std::move(candidate);
    }
  if (!searched) throw *failure;
  Plan plan = std::move(*searched);
  set_caps(options, plan);
  emulate(model, options, plan);
  plan.model_digest = options.model_digest;
  plan.plan_id =
      digest(options.model_digest + "|" + strategy_name(plan.strategy) + "|" +
             std::to_string(plan.nodes) + "|" + std::to_string(plan.ram_cap_bytes) + "|" +
             std::to_string(plan.flash_cap_bytes) + (options.weights_in_place ? "|in place" : "") +
             cluster_digest_part(options));
  return plan;
}

}  // namespace

namespace {

// The RAM or flash a node needs beyond its cap, as a fraction of what it
// needs (0: it fits).
double excess(uint64_t needed, uint64_t cap) {
  return needed > cap ? static_cast<double>(needed - cap) / static_cast<double>(needed) : 0.0;
}

// A strategy's cut, tasks and streams, and the predictions.
void cut_and_predict(const Model& model, const PlanOptions& options, const StrategyInfo& strategy,
                     Plan& plan) {
  plan.layer_strategies.assign(model.layers.size(), strategy.name);
  plan.owners.clear();
  plan.streams.clear();
  plan.tasks = {};
  plan.recomputed_macs = 0;
  strategy.cut(model, options, plan);
  if (options.tasks > 0) make_tasks(model, options, plan);
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
  set_caps(options, plan);
}

}  // namespace

const std::vector<double>& default_job_seconds_candidates() {
  static const std::vector<double> candidates = {0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0};
  return candidates;
}

std::vector<DeviceProfile> cluster_devices(const PlanOptions& options, int nodes) {
  if (!options.devices.empty()) return options.devices;
  if (options.device) return std::vector<DeviceProfile>(nodes, *options.device);
  return {};
}

uint64_t node_ram_cap(const PlanOptions& options, int node) {
  if (options.devices.empty() || options.ram_cap_bytes != ArenaLayout::kUnlimited)
    return options.ram_cap_bytes;
  return options.devices[node - 1].ram_bytes;
}

uint64_t node_flash_cap(const PlanOptions& options, int node) {
  if (options.devices.empty() || options.flash_cap_bytes != ArenaLayout::kUnlimited)
    return options.flash_cap_bytes;
  return options.devices[node - 1].flash_bytes;
}

std::vector<double> device_shares(const Model& model, const std::vector<DeviceProfile>& devices) {
  if (devices.empty() || same_devices(devices)) return {};
  uint64_t quantized = 0, total = 0;
  for (const Layer& layer : model.layers) {
    const uint64_t macs = layer_macs(model, layer);
    total += macs;
    if (layer.quantized()) quantized += macs;
  }
  std::vector<double> shares;
  for (const DeviceProfile& device : devices)
    shares.push_back(2 * quantized > total ? device.macs_per_second_int8
                                           : device.macs_per_second_float32);
  return shares;
}

Plan make_plan(const Model& model, const PlanOptions& options) {
  if (options.input_pixels && model.layers[0].dtype != DType::u8) {
    Model pixels = model;
    take_input_as_pixels(pixels);
    Plan plan = make_plan(pixels, options);
    plan.input_pixels = true;
    plan.plan_id = digest(plan.plan_id + "|pixels");
    return plan;
  }
  if (options.nodes > kMaxNodes)
    throw Error("--nodes " + std::to_string(options.nodes) + " is more than the " +
                std::to_string(kMaxNodes) + " nodes splitinfer plans for");
  if (!options.devices.empty()) {
    if (options.device) throw Error("--device and --devices do not go together");
    const int listed = static_cast<int>(options.devices.size());
    if (options.nodes != -1 && options.nodes != listed)
      throw Error("--nodes " + std::to_string(options.nodes) + " but --devices lists " +
                  std::to_string(listed) + " node(s) (leave --nodes out, or make them agree)");
    if (options.nodes == -1) {
      PlanOptions counted = options;
      counted.nodes = listed;
      return make_plan(model, counted);
    }
  }
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
  // A mixed cluster: work in proportion to each node's speed; a node over
  // one of its caps gets a smaller share until it fits (or shares stop
  // helping: the check below then names it).
  PlanOptions cut = options;
  if (options.row_shares.empty() && options.tasks == 0 &&
      options.strategy != Strategy::branches)
    cut.node_shares = device_shares(model, options.devices);
  for (int attempt = 0;; ++attempt) {
    cut_and_predict(model, cut, strategy, plan);
    if (cut.node_shares.empty() || attempt == 40) break;
    bool over = false;
    for (const NodePlan& node : plan.node_plans) {
      const double worst = std::max(excess(node.predicted_peak_ram_bytes, node.ram_cap_bytes),
                                    excess(node.flash_bytes, node.flash_cap_bytes));
      if (worst <= 0) continue;
      cut.node_shares[node.node - 1] *= std::clamp(1.0 - 1.5 * worst, 0.5, 0.95);
      over = true;
    }
    if (!over) break;
  }
  if (options.devices.empty()) {
    const uint64_t peak = largest_peak_ram(plan), flash = largest_flash(plan);
    if (peak > options.ram_cap_bytes)
      throw Error("a node needs " + format_bytes(peak) + " of RAM but the cap is " +
                  format_bytes(options.ram_cap_bytes) +
                  "; the smallest cap that fits this plan is --ram " + std::to_string(peak));
    if (flash > options.flash_cap_bytes)
      throw Error("a node's weights take " + format_bytes(flash) + " of flash but the cap is " +
                  format_bytes(options.flash_cap_bytes) +
                  "; the smallest cap that fits this plan is --flash " + std::to_string(flash));
  }
  for (const NodePlan& node : plan.node_plans) {  // a mixed cluster: each node its own caps
    if (options.devices.empty()) break;
    const std::string name =
        "node " + std::to_string(node.node) + " (" + options.devices[node.node - 1].name + ")";
    if (node.predicted_peak_ram_bytes > node.ram_cap_bytes)
      throw Error(name + " needs " + format_bytes(node.predicted_peak_ram_bytes) +
                  " of RAM but its cap is " + format_bytes(node.ram_cap_bytes) +
                  (cut.node_shares.empty() ? "" : ", even with less work than its speed gives it") +
                  "; try more nodes, another strategy, or --ram " +
                  std::to_string(largest_peak_ram(plan)) + " for every node");
    if (node.flash_bytes > node.flash_cap_bytes)
      throw Error(name + "'s weights take " + format_bytes(node.flash_bytes) +
                  " of flash but its cap is " + format_bytes(node.flash_cap_bytes) +
                  "; try more nodes, another strategy, or --flash " +
                  std::to_string(largest_flash(plan)) + " for every node");
  }
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
               for (double share : cut.node_shares) shares += "|" + std::to_string(share);
               return shares;
             }() +
             cluster_digest_part(options));
  plan.model_digest = options.model_digest;
  emulate(model, options, plan);
  return plan;
}

}  // namespace splitinfer
