#include "plan_file.hpp"

#include <cmath>
#include <filesystem>
#include <optional>

#include "../partition/strategy_registry.hpp"
#include "../partition/task_plan.hpp"
#include "../src/error.hpp"
#include "hdf5.hpp"
#include "model_file.hpp"
#include "output_file.hpp"

namespace splitinfer {
namespace {

// Node `node`'s slice of every layer's weights: the output channels (rows)
// of its region; nothing for layers it does not compute.
Model weight_slices(const Model& model, const LayerRegions& regions, int node) {
  Model slices;
  slices.layers.resize(model.layers.size());
  for (size_t i = 0; i < model.layers.size(); ++i) {
    const Region& region = regions[i][node - 1];
    slices.layers[i].name = model.layers[i].name;
    if (region.empty()) continue;
    for (const auto& [name, blob] : model.layers[i].weights) {
      if (blob.dims[0] != model.layers[i].output_shape.c) {  // per tensor: every node's
        slices.layers[i].weights[name] = blob;
        continue;
      }
      const size_t row = blob.elements() / blob.dims[0];  // values per output channel
      Blob slice;
      slice.dims = blob.dims;
      slice.dims[0] = region.c1 - region.c0;
      slice.dtype = blob.dtype;
      if (blob.dtype == DType::f32) {
        slice.values.assign(blob.values.begin() + region.c0 * row,
                            blob.values.begin() + region.c1 * row);
      } else {
        const size_t row_bytes = row * dtype_bytes(blob.dtype);
        slice.raw.assign(blob.raw.begin() + region.c0 * row_bytes,
                         blob.raw.begin() + region.c1 * row_bytes);
      }
      slices.layers[i].weights[name] = std::move(slice);
    }
  }
  return slices;
}

// Every layer's regions lie in its map and partition it (the input layer's
// are empty): what the runtime assumes of a plan's owners; each node's
// computed region lies in the map and holds what it owns.
void check_regions(const Model& model, const LayerRegions& regions) {
  for (size_t i = 0; i < model.layers.size(); ++i) {
    const Region whole = Region::whole(model.layers[i].output_shape);
    int64_t covered = 0;
    for (size_t k = 0; k < regions[i].size(); ++k) {
      const Region& region = regions[i][k];
      if (region.empty()) continue;
      if (i == 0 || !whole.contains(region))
        throw Error("the plan gives node " + std::to_string(k + 1) + " region " + region.str() +
                    " of layer '" + model.layers[i].name + "', outside its map");
      for (size_t j = 0; j < k; ++j)
        if (!regions[i][j].intersect(region).empty())
          throw Error("the plan gives nodes " + std::to_string(j + 1) + " and " +
                      std::to_string(k + 1) + " overlapping regions of layer '" +
                      model.layers[i].name + "'");
      covered += region.elements();
    }
    if (i > 0 && covered != whole.elements())
      throw Error("the plan's regions of layer '" + model.layers[i].name +
                  "' do not cover its map");
  }
}

void check_computed(const Model& model, const LayerRegions& regions, const LayerRegions& owners) {
  for (size_t i = 0; i < model.layers.size(); ++i)
    for (size_t k = 0; k < regions[i].size(); ++k) {
      const Region& region = regions[i][k];
      if (!region.contains(owners[i][k]) ||
          (!region.empty() &&
           (i == 0 || !Region::whole(model.layers[i].output_shape).contains(region))))
        throw Error("the plan gives node " + std::to_string(k + 1) + " region " + region.str() +
                    " of layer '" + model.layers[i].name +
                    "', outside its map or not holding what the node owns");
    }
}

// regions[layer][node - 1] = c0, c1, y0, y1, x0, x1
void write_regions(const h5::Group& root, const std::string& name, const LayerRegions& regions,
                   int nodes) {
  std::vector<int64_t> values;
  for (const auto& layer_regions : regions)
    for (const Region& region : layer_regions)
      values.insert(values.end(),
                    {region.c0, region.c1, region.y0, region.y1, region.x0, region.x1});
  root.write_int64s(name, {static_cast<int64_t>(regions.size()), nodes, 6}, values.data());
}

LayerRegions read_regions(const h5::Group& root, const std::string& name, size_t layers,
                          int nodes) {
  std::vector<int64_t> dims;
  const std::vector<int64_t> values = root.read_int64s(name, dims);
  if (dims != std::vector<int64_t>{static_cast<int64_t>(layers), nodes, 6})
    throw Error(root.path() + ": '" + name +
                "' does not match the model's layers and the node count");
  LayerRegions regions(layers, std::vector<Region>(nodes));
  for (size_t i = 0; i < layers; ++i)
    for (int k = 0; k < nodes; ++k) {
      const int64_t* v = values.data() + (i * nodes + k) * 6;
      regions[i][k] = {v[0], v[1], v[2], v[3], v[4], v[5]};
    }
  return regions;
}

// The device profile a plan was made for: its values and their sources.
void write_device(const h5::Group& group, const DeviceProfile& device) {
  group.write_string("name", device.name);
  group.write_string("description", device.description);
  group.write_int("ram_bytes", static_cast<int64_t>(device.ram_bytes));
  group.write_int("flash_bytes", static_cast<int64_t>(device.flash_bytes));
  group.write_double("macs_per_second_float32", device.macs_per_second_float32);
  group.write_double("macs_per_second_int8", device.macs_per_second_int8);
  group.write_double("flash_bytes_per_second", device.flash_bytes_per_second);
  group.write_double("link_bytes_per_second", device.link_bytes_per_second);
  group.write_double("message_latency_seconds", device.message_latency_seconds);
  if (device.nvm_bytes > 0) {
    group.write_int("nvm_bytes", static_cast<int64_t>(device.nvm_bytes));
    group.write_double("nvm_read_bytes_per_second", device.nvm_read_bytes_per_second);
    group.write_double("nvm_write_bytes_per_second", device.nvm_write_bytes_per_second);
    group.write_double("nvm_joules_per_byte", device.nvm_joules_per_byte);
  }
  for (const auto& [key, source] : device.sources) group.write_string(key + "_source", source);
}

DeviceProfile read_device(const h5::Group& group) {
  DeviceProfile device;
  device.name = group.read_string("name");
  device.description = group.read_string("description");
  device.ram_bytes = static_cast<uint64_t>(group.read_int("ram_bytes"));
  device.flash_bytes = static_cast<uint64_t>(group.read_int("flash_bytes"));
  device.macs_per_second_float32 = group.read_double("macs_per_second_float32");
  device.macs_per_second_int8 = group.read_double("macs_per_second_int8");
  device.flash_bytes_per_second = group.read_double("flash_bytes_per_second");
  device.link_bytes_per_second = group.read_double("link_bytes_per_second");
  device.message_latency_seconds = group.read_double("message_latency_seconds");
  if (group.has_attr("nvm_bytes")) {
    device.nvm_bytes = static_cast<uint64_t>(group.read_int("nvm_bytes"));
    device.nvm_read_bytes_per_second = group.read_double("nvm_read_bytes_per_second");
    device.nvm_write_bytes_per_second = group.read_double("nvm_write_bytes_per_second");
    device.nvm_joules_per_byte = group.read_double("nvm_joules_per_byte");
  }
  for (const auto* keys : {&device_value_keys(), &device_nvm_keys()})
    for (const std::string& key : *keys)
      if (group.has_attr(key + "_source")) device.sources[key] = group.read_string(key + "_source");
  return device;
}

// The columns of /emulation/per_layer, per node and layer.
constexpr int kEmulatedColumns = 5;  // wait, communication, flash, compute, finish

void write_emulation(const h5::Group& group, const TimeEstimate& estimate) {
  group.write_double("total_seconds", estimate.total_seconds);
  group.write_double("output_gather_seconds", estimate.output_gather_seconds);
  const int64_t layers = static_cast<int64_t>(estimate.layer_seconds.size());
  const int64_t nodes = static_cast<int64_t>(estimate.nodes.size());
  group.write_float64s("layer_seconds", {layers}, estimate.layer_seconds.data());
  std::vector<double> node_seconds, per_layer;
  for (const NodeTime& node : estimate.nodes) {
    node_seconds.insert(node_seconds.end(),
                        {node.finish, node.gather_wait, node.gather_communication});
    for (const LayerTime& time : node.layers)
      per_layer.insert(per_layer.end(),
                       {time.wait, time.communication, time.flash, time.compute, time.finish});
  }
  group.write_float64s("node_seconds", {nodes, 3}, node_seconds.data());
  group.write_float64s("per_layer", {nodes, layers, kEmulatedColumns}, per_layer.data());
}

TimeEstimate read_emulation(const h5::Group& group, int64_t nodes, int64_t layers) {
  TimeEstimate estimate;
  estimate.total_seconds = group.read_double("total_seconds");
  estimate.output_gather_seconds = group.read_double("output_gather_seconds");
  std::vector<int64_t> dims;
  estimate.layer_seconds = group.read_float64s("layer_seconds", dims);
  if (dims != std::vector<int64_t>{layers})
    throw Error(group.path() + "/layer_seconds does not match the model's layers");
  const std::vector<double> node_seconds = group.read_float64s("node_seconds", dims);
  if (dims != std::vector<int64_t>{nodes, 3})
    throw Error(group.path() + "/node_seconds does not match the node count");
  const std::vector<double> per_layer = group.read_float64s("per_layer", dims);
  if (dims != std::vector<int64_t>{nodes, layers, kEmulatedColumns})
    throw Error(group.path() + "/per_layer does not match the model's layers and the node count");
  for (int64_t k = 0; k < nodes; ++k) {
    NodeTime node;
    node.node = static_cast<int>(k + 1);
    node.finish = node_seconds[k * 3];
    node.gather_wait = node_seconds[k * 3 + 1];
    node.gather_communication = node_seconds[k * 3 + 2];
    for (int64_t i = 0; i < layers; ++i) {
      const double* v = per_layer.data() + (k * layers + i) * kEmulatedColumns;
      node.layers.push_back({v[0], v[1], v[2], v[3], v[4]});
    }
    estimate.nodes.push_back(std::move(node));
  }
  return estimate;
}

// /tasks (a plan cut into tasks, partition/task_plan.hpp): the tiles' grid
// and regions, each layer's stage, the tasks (stage, tile, home node) and
// which nodes may take each.
void write_tasks(const h5::Group& group, const TaskTable& table) {
  group.write_ints("grid", {table.grid_rows, table.grid_cols});
  write_regions(group, "regions", table.regions, table.tiles);
  const std::vector<int64_t> stage(table.stage.begin(), table.stage.end());
  group.write_int64s("stage", {static_cast<int64_t>(stage.size())}, stage.data());
  std::vector<int64_t> list, may_take;
  for (const Task& task : table.list) list.insert(list.end(), {task.stage, task.tile, task.home});
  group.write_int64s("list", {static_cast<int64_t>(table.list.size()), 3}, list.data());
  for (const std::vector<char>& node : table.may_take) may_take.insert(may_take.end(), node.begin(), node.end());
  group.write_int64s("may_take",
                     {static_cast<int64_t>(table.may_take.size()),
                      static_cast<int64_t>(table.list.size())},
                     may_take.data());
}

// Reads /tasks and checks it against what make_task_table() derives from
// its regions: the same stages and tasks, homes among the nodes, each node
// allowed its own tasks, and every piece a task reads computed by others.
TaskTable read_tasks(const h5::Group& group, const Model& model, int nodes) {
  const std::string where = group.path();
  const std::vector<int64_t> grid = group.read_ints("grid");
  if (grid.size() != 2 || grid[0] < 1 || grid[1] < 1 || grid[0] > kMaxNodes ||
      grid[1] > kMaxNodes || grid[0] * grid[1] > kMaxNodes || grid[0] * grid[1] < nodes)
    throw Error(where + ": 'grid' must be R, C with at least one tile per node");
  const int tiles = static_cast<int>(grid[0] * grid[1]);
  LayerRegions regions = read_regions(group, "regions", model.layers.size(), tiles);
  check_computed(model, regions, regions);  // inside the maps
  TaskTable table = make_task_table(model, std::move(regions), static_cast<int>(grid[0]),
                                    static_cast<int>(grid[1]), nodes);
  std::vector<int64_t> dims;
  const std::vector<int64_t> stage = group.read_int64s("stage", dims);
  if (!std::equal(stage.begin(), stage.end(), table.stage.begin(), table.stage.end()))
    throw Error(where + ": 'stage' does not match the stages of the tasks' regions");
  const int64_t count = static_cast<int64_t>(table.list.size());
  const std::vector<int64_t> list = group.read_int64s("list", dims);
  if (dims != std::vector<int64_t>{count, 3})
    throw Error(where + ": 'list' needs " + std::to_string(count) +
                " tasks of 3 values (stage, tile, home node)");
  for (int64_t task = 0; task < count; ++task) {
    const int64_t* v = list.data() + task * 3;
    Task& mine = table.list[task];
    if (v[0] != mine.stage || v[1] != mine.tile)
      throw Error(where + ": 'list' does not match the tasks of the tiles' regions");
    if (v[2] < 1 || v[2] > nodes)
      throw Error(where + ": task " + std::to_string(task) + " has no home among nodes 1.." +
                  std::to_string(nodes));
    mine.home = static_cast<int>(v[2]);
  }
  const std::vector<int64_t> may_take = group.read_int64s("may_take", dims);
  if (dims != std::vector<int64_t>{nodes, count})
    throw Error(where + ": 'may_take' needs a row per node and a column per task");
  for (int k = 1; k <= nodes; ++k)
    for (int64_t task = 0; task < count; ++task) {
      const int64_t value = may_take[(k - 1) * count + task];
      if ((value != 0 && value != 1) || (table.list[task].home == k && value != 1))
        throw Error(where + ": 'may_take' of node " + std::to_string(k) +
                    " must be 0 or 1, and 1 for its own tasks");
      table.may_take[k - 1][task] = static_cast<char>(value);
    }
  task_dependencies(model, table, task_programs(model, table));  // throws on a gap
  return table;
}

int64_t cap_to_file(uint64_t cap) {
  return cap == ArenaLayout::kUnlimited ? -1 : static_cast<int64_t>(cap);
}
uint64_t cap_from_file(int64_t cap) {
  return cap < 0 ? ArenaLayout::kUnlimited : static_cast<uint64_t>(cap);
}

// A directory that held a plan for more nodes keeps their node files after
// a new plan for fewer is written over it: node_K.h5 for K > nodes goes, so
// the directory holds one plan. Other files are left alone.
void remove_stale_node_files(const std::string& plan_dir, int nodes) {
  std::error_code failure;
  std::vector<std::filesystem::path> stale;
  for (const auto& entry : std::filesystem::directory_iterator(plan_dir, failure)) {
    const std::string name = entry.path().filename().string();
    if (name.size() < 9 || name.compare(0, 5, "node_") != 0 ||
        name.compare(name.size() - 3, 3, ".h5") != 0)
      continue;
    const std::string digits = name.substr(5, name.size() - 8);
    if (digits.empty() || digits.size() > 6 || digits[0] == '0' ||
        digits.find_first_not_of("0123456789") != std::string::npos)
      continue;
    if (std::stoi(digits) > nodes) stale.push_back(entry.path());
  }
  for (const std::filesystem::path& path : stale) std::filesystem::remove(path, failure);
}

}  // namespace

std::string plan_path(const std::string& plan_dir) {
  return (std::filesystem::path(plan_dir) / "plan.h5").string();
}

std::string node_path(const std::string& plan_dir, int node) {
  return (std::filesystem::path(plan_dir) / ("node_" + std::to_string(node) + ".h5")).string();
}

void write_plan(const std::string& plan_dir, const Model& model, const Plan& plan) {
  std::error_code failure;
  std::filesystem::create_directories(plan_dir, failure);
  if (failure)
    throw Error("cannot create the plan directory '" + plan_dir + "': " + failure.message());
  // Every file is written under a temporary name and renamed into place
  // (io/output_file.hpp), so each holds either its old content or the whole
  // new one. The node files go first and plan.h5 last: it records the digest
  // of each, so a rewrite cut short between the two leaves a plan that `run`
  // refuses, naming the node file that does not match.
  std::vector<std::string> node_digests;
  for (const NodePlan& node : plan.node_plans) {
    write_atomically_with(node_path(plan_dir, node.node), [&](const std::string& path) {
      {
        const h5::Group root = h5::create_file(path);
        root.write_string("format", "splitinfer-node");
        root.write_int("format_version", kFormatVersion);
        root.write_int("node", node.node);
        root.write_string("plan_id", plan.plan_id);
        write_weights(root.create_group("weights"), weight_slices(model, plan.regions, node.node));
        seal(root);
      }
      node_digests.push_back(file_digest(path));
    });
  }
  write_atomically_with(plan_path(plan_dir), [&](const std::string& path) {
    const h5::Group root = h5::create_file(path);
    root.write_string("format", "splitinfer-plan");
    root.write_int("format_version", kFormatVersion);
    root.write_int("nodes", plan.nodes);
    root.write_string("strategy", strategy_name(plan.strategy));
    root.write_ints("grid", {plan.grid_rows, plan.grid_cols});
    root.write_int("via_coordinator", plan.via_coordinator);
    root.write_string("plan_id", plan.plan_id);
    root.write_int("ram_cap_bytes", cap_to_file(plan.ram_cap_bytes));
    root.write_int("flash_cap_bytes", cap_to_file(plan.flash_cap_bytes));
    if (!plan.model_digest.empty()) root.write_string("model_digest", plan.model_digest);
    write_graph(root.create_group("model"), model);
    // The graph's own digest: a plan whose graph was edited and resealed
    // still differs from the model it was made from.
    root.write_string("model_graph_digest", content_digest(root.open_group("model")));
    write_regions(root, "regions", plan.regions, plan.nodes);
    if (!plan.owners.empty()) write_regions(root, "owners", plan.owners, plan.nodes);
    if (!plan.streams.empty()) {  // first, last, part rows, columns, channels per stream
      std::vector<int64_t> values;
      for (const StreamGroup& group : plan.streams)
        values.insert(values.end(), {group.first, group.last, group.part_rows, group.part_cols,
                                     group.part_channels, group.keep_weights});
      root.write_int64s("streams", {static_cast<int64_t>(plan.streams.size()), 6}, values.data());
    }
    if (!plan.tasks.empty()) write_tasks(root.create_group("tasks"), plan.tasks);
    root.write_int("weights_in_place", plan.weights_in_place);
    if (plan.input_pixels) root.write_int("input_pixels", 1);
    if (takes_option(plan.strategy, StrategyOption::fuse)) {
      root.write_int("fuse", plan.fuse);
      root.write_int("reuse", plan.reuse);
    }
    root.write_int("recomputed_macs", static_cast<int64_t>(plan.recomputed_macs));
    // A row per layer: a joined string loses an empty row (the input layer
    // of auto plans), and a name could hold the separator.
    root.write_string_dataset("layer_strategies", plan.layer_strategies);
    const h5::Group nodes = root.create_group("nodes");
    for (const NodePlan& node : plan.node_plans) {
      const h5::Group group = nodes.create_group("node_" + std::to_string(node.node));
      group.write_int("node", node.node);
      group.write_string("file_digest", node_digests[node.node - 1]);
      group.write_int("predicted_peak_ram_bytes",
                      static_cast<int64_t>(node.predicted_peak_ram_bytes));
      group.write_int("flash_bytes", static_cast<int64_t>(node.flash_bytes));
      group.write_int("predicted_bytes_sent", static_cast<int64_t>(node.predicted_bytes_sent));
      group.write_int("predicted_bytes_received",
                      static_cast<int64_t>(node.predicted_bytes_received));
      // Per layer: footprint, bytes sent, bytes received.
      std::vector<int64_t> per_layer;
      for (size_t i = 0; i < node.layer_peak_ram_bytes.size(); ++i)
        per_layer.insert(per_layer.end(), {static_cast<int64_t>(node.layer_peak_ram_bytes[i]),
                                           static_cast<int64_t>(node.layer_bytes_sent[i]),
                                           static_cast<int64_t>(node.layer_bytes_received[i])});
      group.write_int64s("per_layer", {static_cast<int64_t>(node.layer_peak_ram_bytes.size()), 3},
                         per_layer.data());
      group.write_int("ram_cap_bytes", cap_to_file(node.ram_cap_bytes));
      group.write_int("flash_cap_bytes", cap_to_file(node.flash_cap_bytes));
      // A mixed cluster: each node's device in its group.
      if (!plan.devices.empty() && !same_devices(plan.devices))
        write_device(group.create_group("device"), plan.devices[node.node - 1]);
    }
    if (!plan.devices.empty()) {  // one device: the root's group, as for every node
      if (same_devices(plan.devices)) write_device(root.create_group("device"), plan.devices[0]);
      write_emulation(root.create_group("emulation"), plan.emulated);
    }
    if (!plan.job_seconds_candidates.empty())
      root.write_doubles("job_seconds_candidates", plan.job_seconds_candidates);
    seal(root);
  });
  remove_stale_node_files(plan_dir, plan.nodes);
}

void read_plan(const std::string& plan_dir, Model& model, Plan& plan) {
  const h5::Group root = h5::open_file(plan_path(plan_dir));
  check_format(root, "splitinfer-plan");
  const int64_t node_count = root.read_int("nodes");
  if (node_count < 1 || node_count > kMaxNodes)
    throw Error(root.path() + " plans for " + std::to_string(node_count) + " nodes");
  plan.nodes = static_cast<int>(node_count);
  const std::string strategy = root.read_string("strategy");
  if (const std::optional<Strategy> known = find_strategy(strategy))
    plan.strategy = *known;
  else
    throw Error(root.path() + " names strategy '" + strategy +
                "', which splitinfer does not know (" + strategy_names() + ")");
  plan.plan_id = root.read_string("plan_id");
  plan.ram_cap_bytes = cap_from_file(root.read_int("ram_cap_bytes"));
  plan.flash_cap_bytes = cap_from_file(root.read_int("flash_cap_bytes"));
  const std::vector<int64_t> grid = root.read_ints("grid");
  if (grid.size() != 2) throw Error(root.path() + ": 'grid' needs 2 values");
  plan.grid_rows = static_cast<int>(grid[0]);
  plan.grid_cols = static_cast<int>(grid[1]);
  plan.via_coordinator = root.read_int("via_coordinator") != 0;
  const h5::Group nodes = root.open_group("nodes");
  plan.node_plans.clear();
  for (int k = 1; k <= plan.nodes; ++k) {
    const h5::Group group = nodes.open_group("node_" + std::to_string(k));
    NodePlan node;
    node.node = k;
    node.predicted_peak_ram_bytes =
        static_cast<uint64_t>(group.read_int("predicted_peak_ram_bytes"));
    node.flash_bytes = static_cast<uint64_t>(group.read_int("flash_bytes"));
    node.predicted_bytes_sent = static_cast<uint64_t>(group.read_int("predicted_bytes_sent"));
    node.predicted_bytes_received =
        static_cast<uint64_t>(group.read_int("predicted_bytes_received"));
    if (group.has_attr("file_digest")) node.file_digest = group.read_string("file_digest");
    // Plans written before per-node caps: the plan's for every node.
    node.ram_cap_bytes = group.has_attr("ram_cap_bytes")
                             ? cap_from_file(group.read_int("ram_cap_bytes"))
                             : plan.ram_cap_bytes;
    node.flash_cap_bytes = group.has_attr("flash_cap_bytes")
                               ? cap_from_file(group.read_int("flash_cap_bytes"))
                               : plan.flash_cap_bytes;
    plan.node_plans.push_back(node);
  }
  plan.model_digest = root.has_attr("model_digest") ? root.read_string("model_digest") : "";
  const h5::Group graph = root.open_group("model");
  if (root.has_attr("model_graph_digest")) {
    const std::string recorded = root.read_string("model_graph_digest");
    if (content_digest(graph) != recorded)
      throw Error(plan_path(plan_dir) +
                  ": the graph's attributes do not match the model the plan was made from "
                  "(its digest is " +
                  content_digest(graph) + ", the plan records " + recorded + ")");
  }
  model = read_graph(graph);
  validate(model, false);
  plan.regions = read_regions(root, "regions", model.layers.size(), plan.nodes);
  plan.owners.clear();
  plan.tasks = {};
  if (root.has("tasks")) {
    // The root's regions are each node's weights, for every task it may take.
    plan.tasks = read_tasks(root.open_group("tasks"), model, plan.nodes);
    check_computed(model, plan.regions, plan.regions);
    if (node_weight_regions(model, plan.tasks, plan.nodes) != plan.regions)
      throw Error(root.path() + ": 'regions' are not the weights of the tasks each node may take");
  } else if (root.has("owners")) {
    plan.owners = read_regions(root, "owners", model.layers.size(), plan.nodes);
    check_regions(model, plan.owners);
    check_computed(model, plan.regions, plan.owners);
  } else {
    check_regions(model, plan.regions);
  }
  plan.streams.clear();
  if (root.has("streams")) {
    std::vector<int64_t> dims;
    const std::vector<int64_t> values = root.read_int64s("streams", dims);
    if (dims.size() != 2 || dims[1] != 6)
      throw Error(root.path() +
                  ": 'streams' needs 6 values per stream (first layer, last layer, part rows, "
                  "columns, channels, whether it keeps its weights)");
    for (size_t g = 0; g < static_cast<size_t>(dims[0]); ++g) {
      const int64_t* v = values.data() + g * 6;
      if (v[0] < 0 || v[1] < 0 || v[0] >= static_cast<int64_t>(model.layers.size()) ||
          v[1] >= static_cast<int64_t>(model.layers.size()))
        throw Error(root.path() + ": 'streams' names layers the model does not have");
      if (v[5] != 0 && v[5] != 1)
        throw Error(root.path() + ": 'streams' keeps weights or not: 1 or 0, not " +
                    std::to_string(v[5]));
      plan.streams.push_back(
          {static_cast<int>(v[0]), static_cast<int>(v[1]), v[2], v[3], v[4], v[5] == 1});
    }
    check_stream_groups(model, plan.streams);
    if (plan.via_coordinator) throw Error(root.path() + ": a relay plan cannot stream");
  }
  plan.layer_strategies.clear();
  if (root.has("layer_strategies")) {  // plans written before it have a joined attribute
    plan.layer_strategies = root.read_string_dataset("layer_strategies");
    if (plan.layer_strategies.size() != model.layers.size())
      throw Error(root.path() + ": 'layer_strategies' has " +
                  std::to_string(plan.layer_strategies.size()) + " rows, the model has " +
                  std::to_string(model.layers.size()) + " layers");
  }
  // Plans written before the attribute copy their weights into RAM.
  plan.weights_in_place = root.has_attr("weights_in_place") && root.read_int("weights_in_place");
  plan.input_pixels = root.has_attr("input_pixels") && root.read_int("input_pixels");
  if (plan.input_pixels) take_input_as_pixels(model);
  if (takes_option(plan.strategy, StrategyOption::fuse)) {
    plan.fuse = static_cast<int>(root.read_int("fuse"));
    plan.reuse = root.read_int("reuse") != 0;
  }
  plan.devices.clear();
  plan.emulated = {};
  // Planned for devices: one for all in the root's group, or (a mixed
  // cluster) each node's in its group; plans without have none and no emulation.
  if (root.has("device")) {
    plan.devices.assign(plan.nodes, read_device(root.open_group("device")));
  } else if (nodes.open_group("node_1").has("device")) {
    for (int k = 1; k <= plan.nodes; ++k) {
      const h5::Group group = nodes.open_group("node_" + std::to_string(k));
      if (!group.has("device"))
        throw Error(root.path() + ": node " + std::to_string(k) +
                    " has no device, though node 1 has one");
      plan.devices.push_back(read_device(group.open_group("device")));
    }
  }
  if (!plan.devices.empty())
    plan.emulated = read_emulation(root.open_group("emulation"), plan.nodes,
                                   static_cast<int64_t>(model.layers.size()));
  plan.job_seconds_candidates.clear();
  if (root.has_attr("job_seconds_candidates")) {
    plan.job_seconds_candidates = root.read_doubles("job_seconds_candidates");
    for (double seconds : plan.job_seconds_candidates)
      if (!(seconds >= 0) || !std::isfinite(seconds))
        throw Error(root.path() + ": 'job_seconds_candidates' must be durations of 0 s or more");
  }
}

void read_node_weights(const std::string& plan_dir, int node, const Plan& plan, Model& model) {
  const std::string path = node_path(plan_dir, node);
  const h5::Group root = h5::open_file(path);
  check_format(root, "splitinfer-node");
  if (root.read_string("plan_id") != plan.plan_id || root.read_int("node") != node)
    throw Error("'" + path + "' belongs to another plan or node (plan " +
                root.read_string("plan_id") + ", node " + std::to_string(root.read_int("node")) +
                "; expected plan " + plan.plan_id + ", node " + std::to_string(node) + ")");
  // The weights first: a corrupt dataset is named by its checksum; the
  // digest then catches what checksums cannot (a whole file replaced).
  read_weights(root.open_group("weights"), model);
  const std::string& recorded = plan.node_plans[node - 1].file_digest;
  if (!recorded.empty()) {
    const std::string actual = file_digest(path);
    if (actual != recorded)
      throw Error("'" + path + "' does not match the plan: its digest is " + actual + ", " +
                  plan_path(plan_dir) + " records " + recorded +
                  " (a node file of another version of the plan, or a corrupt copy)");
  }
  std::vector<Region> mine;
  for (const auto& layer_regions : plan.regions) mine.push_back(layer_regions[node - 1]);
  validate_weight_slices(model, mine);
}

}  // namespace splitinfer
