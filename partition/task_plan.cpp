#include "task_plan.hpp"

#include <algorithm>
#include <set>

#include "../src/error.hpp"

namespace splitinfer {

std::vector<int> task_stages(const Model& model, const LayerRegions& regions) {
  const int count = static_cast<int>(model.layers.size());
  const int tiles = regions.empty() ? 0 : static_cast<int>(regions[0].size());
  std::vector<int> stage(count, -1);
  int current = -1;
  for (int j = 1; j < count; ++j) {
    const Layer& layer = model.layers[j];
    bool starts = current < 0;
    for (int slot = 0; slot < static_cast<int>(layer.inputs.size()) && !starts; ++slot) {
      const int source = layer.inputs[slot];
      if (source == 0 || stage[source] != current) continue;  // from the coordinator
      for (int t = 0; t < tiles && !starts; ++t)
        starts = !regions[source][t].contains(needed_region(model, layer, slot, regions[j][t]));
    }
    if (starts) ++current;
    stage[j] = current;
  }
  return stage;
}

namespace {

// Per layer, whether a layer of a later stage reads it (or it is the output).
std::vector<char> read_later(const Model& model, const std::vector<int>& stage) {
  std::vector<char> later(model.layers.size(), 0);
  later[model.output] = 1;
  for (size_t j = 0; j < model.layers.size(); ++j)
    for (int source : model.layers[j].inputs)
      if (stage[source] >= 0 && stage[source] < stage[j]) later[source] = 1;
  return later;
}

std::vector<int> results_of(const Model& model, const TaskTable& table,
                            const std::vector<char>& later, const Task& task) {
  std::vector<int> results;
  for (size_t j = 1; j < model.layers.size(); ++j)
    if (table.stage[j] == task.stage && later[j] && !table.regions[j][task.tile].empty())
      results.push_back(static_cast<int>(j));
  return results;
}

}  // namespace

TaskTable make_task_table(const Model& model, LayerRegions regions, int grid_rows, int grid_cols,
                          int nodes) {
  TaskTable table;
  table.tiles = grid_rows * grid_cols;
  if (table.tiles < nodes)
    throw Error("--tasks " + std::to_string(table.tiles) + " is fewer tasks per stage than the " +
                std::to_string(nodes) + " nodes");
  table.grid_rows = grid_rows;
  table.grid_cols = grid_cols;
  table.regions = std::move(regions);
  table.stage = task_stages(model, table.regions);
  const std::vector<char> later = read_later(model, table.stage);
  const int stages = table.stage.empty() ? 0 : table.stage.back() + 1;
  for (int s = 0; s < stages; ++s)
    for (int t = 0; t < table.tiles; ++t) {
      const Task task{s, t, static_cast<int>(int64_t{t} * nodes / table.tiles) + 1};
      if (!results_of(model, table, later, task).empty()) table.list.push_back(task);
    }
  table.may_take.assign(nodes, std::vector<char>(table.list.size(), 1));
  return table;
}

std::vector<NodeProgram> task_programs(const Model& model, const TaskTable& table) {
  const std::vector<char> later = read_later(model, table.stage);
  std::vector<NodeProgram> programs;
  for (const Task& task : table.list) {
    std::vector<Region> regions(model.layers.size());
    std::vector<char> from_coordinator(model.layers.size(), 0);
    for (size_t j = 0; j < model.layers.size(); ++j) {
      if (table.stage[j] == task.stage) regions[j] = table.regions[j][task.tile];
      from_coordinator[j] = table.stage[j] < task.stage;
    }
    programs.push_back(build_task_program(model, regions, from_coordinator,
                                          results_of(model, table, later, task)));
  }
  return programs;
}

namespace {

// Whether the union of `parts` holds all of `region`.
bool covers(const std::vector<Region>& parts, const Region& region) {
  std::vector<char> held(static_cast<size_t>(region.elements()), 0);
  const int64_t rows = region.y1 - region.y0, cols = region.x1 - region.x0;
  for (const Region& part : parts) {
    const Region in = part.intersect(region);
    if (in.empty()) continue;
    for (int64_t c = in.c0; c < in.c1; ++c)
      for (int64_t y = in.y0; y < in.y1; ++y)
        std::fill_n(held.begin() + ((c - region.c0) * rows + y - region.y0) * cols +
                        (in.x0 - region.x0),
                    in.x1 - in.x0, 1);
  }
  return std::find(held.begin(), held.end(), 0) == held.end();
}

}  // namespace

std::vector<std::vector<int>> task_dependencies(const Model& model, const TaskTable& table,
                                                const std::vector<NodeProgram>& programs) {
  std::vector<std::vector<int>> results(table.list.size());
  for (size_t b = 0; b < table.list.size(); ++b) results[b] = result_layers(model, programs[b]);
  std::vector<std::vector<int>> dependencies(table.list.size());
  for (size_t a = 0; a < table.list.size(); ++a) {
    std::set<int> before;
    for (const Message& message : node_messages(model, programs[a])) {
      if (message.kind != Message::Kind::input_piece) continue;
      const int source = model.layers[message.layer].inputs[message.slot];
      if (source == 0) continue;  // the model's input: the coordinator has it from the start
      std::vector<Region> writers;
      for (size_t b = 0; b < table.list.size(); ++b) {
        const Task& task = table.list[b];
        const Region& region = table.regions[source][task.tile];
        if (task.stage == table.stage[source] &&
            std::find(results[b].begin(), results[b].end(), source) != results[b].end() &&
            !region.intersect(message.region).empty()) {
          before.insert(static_cast<int>(b));
          writers.push_back(region);
        }
      }
      if (!covers(writers, message.region))
        throw Error("the plan's tasks compute only part of " + message.region.str() +
                    " of layer '" + model.layers[source].name + "', which task " +
                    std::to_string(a) + " reads");
    }
    dependencies[a].assign(before.begin(), before.end());
  }
  std::vector<Region> output;  // and the whole output
  for (size_t b = 0; b < table.list.size(); ++b)
    if (std::find(results[b].begin(), results[b].end(), model.output) != results[b].end())
      output.push_back(table.regions[model.output][table.list[b].tile]);
  const Region whole = Region::whole(model.layers[model.output].output_shape);
  if (!covers(output, whole))
    throw Error("the plan's tasks compute only part of the output '" +
                model.layers[model.output].name + "'");
  return dependencies;
}

std::vector<double> task_costs(const Model& model, const std::vector<NodeProgram>& programs) {
  std::vector<double> costs;
  for (const NodeProgram& program : programs) {
    uint64_t macs = 0;
    for (size_t i = 0; i < model.layers.size(); ++i)
      macs += region_macs(model, model.layers[i], program.layers[i].out);
    costs.push_back(std::max(1.0, static_cast<double>(macs)));
  }
  return costs;
}

LayerRegions node_weight_regions(const Model& model, const TaskTable& table, int nodes) {
  LayerRegions regions(model.layers.size(), std::vector<Region>(nodes));
  for (int k = 1; k <= nodes; ++k)
    for (size_t j = 1; j < model.layers.size(); ++j) {
      Region held;
      bool one_range = true;
      for (size_t task = 0; task < table.list.size(); ++task) {
        const Task& t = table.list[task];
        const Region& region = table.regions[j][t.tile];
        if (!table.may_take[k - 1][task] || t.stage != table.stage[j] || region.empty()) continue;
        one_range = one_range && (held.empty() || (held.c0 == region.c0 && held.c1 == region.c1));
        held = held.bounding(region);
      }
      if (!one_range) held = Region::whole(model.layers[j].output_shape);
      regions[j][k - 1] = held;
    }
  return regions;
}

TaskScheduler::TaskScheduler(const TaskTable& table, std::vector<std::vector<int>> dependencies,
                             bool steal, std::vector<double> costs)
    : table_(table),
      dependencies_(std::move(dependencies)),
      steal_(steal),
      costs_(std::move(costs)),
      seconds_per_cost_(table.may_take.size() + 1, 0.0) {
  if (costs_.empty()) costs_.assign(table.list.size(), 1.0);
  dependents_.assign(table.list.size(), 0);
  for (const std::vector<int>& before : dependencies_)
    for (int task : before) ++dependents_[task];
  reset();
}

void TaskScheduler::reset() {
  started_.assign(table_.list.size(), 0);
  finished_.assign(table_.list.size(), 0);
  stolen_.assign(table_.list.size(), 0);
  start_time_.assign(table_.list.size(), 0.0);
  running_.assign(table_.may_take.size() + 1, -1);
  done_count_ = 0;
}

bool TaskScheduler::ready(int task) const {
  for (int before : dependencies_[task])
    if (!finished_[before]) return false;
  return true;
}

bool TaskScheduler::better_left(int node, int task, double now) const {
  const double mine = seconds_per_cost_[node];
  if (!steal_ || mine <= 0) return false;
  // The others' speeds and when each is free; the work left that `node` may
  // take; the soonest another would end this task (it is not divisible).
  double speed = 0, free_work = 0;  // sum of 1/rate, and of (free - now)/rate
  double soonest = -1;
  for (int k = 1; k < static_cast<int>(running_.size()); ++k) {
    if (k == node) continue;
    const double rate = seconds_per_cost_[k];
    if (rate <= 0) return false;  // not measured yet: nothing to go by
    double free = now;
    if (running_[k] >= 0)
      free = std::max(now, start_time_[running_[k]] + costs_[running_[k]] * rate);
    speed += 1 / rate;
    free_work += (free - now) / rate;
    if (table_.may_take[k - 1][task] &&
        (soonest < 0 || free + costs_[task] * rate < soonest))
      soonest = free + costs_[task] * rate;
  }
  if (speed <= 0 || soonest < 0) return false;
  double left = 0;
  for (size_t t = 0; t < table_.list.size(); ++t)
    if (!started_[t] && table_.may_take[node - 1][t]) left += costs_[t];
  const double others_end = std::max(now + (free_work + left) / speed, soonest);
  return now + costs_[task] * mine > others_end;
}

int TaskScheduler::next(int node, double now, bool may_wait) {
  const int tasks = static_cast<int>(table_.list.size());
  int chosen = -1;
  // A straggler (measured slower than every other node) takes, of its own
  // ready tasks, the one fewest tasks wait for (a tile at the edge), so the
  // others go on to the next stage meanwhile; every other node its first.
  bool straggler = steal_ && seconds_per_cost_[node] > 0;
  for (size_t k = 1; k < seconds_per_cost_.size() && straggler; ++k)
    straggler = static_cast<int>(k) == node || (seconds_per_cost_[k] > 0 &&
                                                seconds_per_cost_[k] < seconds_per_cost_[node]);
  for (int task = 0; task < tasks; ++task)
    if (table_.list[task].home == node && !started_[task] && ready(task)) {
      if (!straggler) {
        chosen = task;
        break;
      }
      if (chosen < 0 || dependents_[task] <= dependents_[chosen]) chosen = task;
    }
  if (chosen < 0 && steal_) {
    // The node with the most tasks not started that has one ready for `node`.
    std::vector<int> left(table_.may_take.size() + 1, 0), last_ready(left.size(), -1);
    for (int task = 0; task < tasks; ++task) {
      if (started_[task]) continue;
      const int home = table_.list[task].home;
      ++left[home];
      if (table_.may_take[node - 1][task] && ready(task)) last_ready[home] = task;
    }
    int victim = -1;
    for (int k = 1; k < static_cast<int>(left.size()); ++k)
      if (last_ready[k] >= 0 && (victim < 0 || left[k] > left[victim])) victim = k;
    if (victim >= 0) chosen = last_ready[victim];
  }
  if (chosen < 0 || (may_wait && better_left(node, chosen, now))) return -1;
  started_[chosen] = 1;
  stolen_[chosen] = table_.list[chosen].home != node;
  start_time_[chosen] = now;
  running_[node] = chosen;
  return chosen;
}

void TaskScheduler::done(int task, double now, double seconds) {
  if (!started_[task] || finished_[task])
    throw Error("internal: task " + std::to_string(task) + " done twice or before it started");
  finished_[task] = 1;
  ++done_count_;
  for (size_t k = 1; k < running_.size(); ++k)
    if (running_[k] == task) {
      running_[k] = -1;
      if (seconds < 0) seconds = now - start_time_[task];
      const double rate = seconds / std::max(costs_[task], 1.0);
      double& measured = seconds_per_cost_[k];
      if (costs_[task] >= 1) measured = measured <= 0 ? rate : (measured + rate) / 2;
    }
}

TimeEstimate estimate_task_time(const Model& model, const TaskTable& table,
                                const std::vector<NodeProgram>& programs,
                                const std::vector<DeviceProfile>& devices, bool steal,
                                const std::vector<double>& slowdowns) {
  const int nodes = static_cast<int>(table.may_take.size());
  const int count = static_cast<int>(model.layers.size());
  if (static_cast<int>(devices.size()) != nodes)
    throw Error("internal: the task cost model needs one device per node");
  const auto slowdown = [&](int node) {
    return slowdowns.empty() ? 1.0 : slowdowns[node - 1];
  };
  // Each task alone on each kind of device (its pieces through a port of
  // that device and the coordinator's, its flash and MACs on it).
  std::vector<int> kind(nodes + 1, 0);  // per node: its index in `kinds`
  std::vector<int> kinds;               // the first node of each distinct profile
  for (int k = 1; k <= nodes; ++k) {
    kind[k] = -1;
    for (size_t d = 0; d < kinds.size() && kind[k] < 0; ++d)
      if (same_devices({devices[kinds[d] - 1], devices[k - 1]})) kind[k] = static_cast<int>(d);
    if (kind[k] < 0) {
      kind[k] = static_cast<int>(kinds.size());
      kinds.push_back(k);
    }
  }
  const DeviceProfile coordinator = coordinator_link(devices);
  std::vector<std::vector<TimeEstimate>> alone(kinds.size());  // [kind][task]
  for (size_t d = 0; d < kinds.size(); ++d) {
    DeviceProfile device = devices[kinds[d] - 1];
    for (const NodeProgram& program : programs) {
      // Its transfers are with the coordinator: the slower port of the two.
      DeviceProfile port = device;
      port.link_bytes_per_second =
          std::min(device.link_bytes_per_second, coordinator.link_bytes_per_second);
      port.message_latency_seconds =
          std::max(device.message_latency_seconds, coordinator.message_latency_seconds);
      alone[d].push_back(estimate_time(model, {program}, port));
    }
  }
  TimeEstimate estimate;
  for (int k = 1; k <= nodes; ++k) {
    NodeTime node;
    node.node = k;
    node.layers.resize(count);
    estimate.nodes.push_back(std::move(node));
  }
  TaskScheduler scheduler(table, task_dependencies(model, table, programs), steal,
                          task_costs(model, programs));
  std::vector<double> free_at(nodes + 1, 0.0);  // when each node asks for work
  std::vector<std::pair<double, int>> running(nodes + 1, {0.0, -1});  // its end and task
  std::vector<double> layer_busy(count, 0.0);
  double now = 0, port_free = 0;  // when rank 0's port is free again
  bool forced = false;  // nobody ran: the next node asking may not wait
  while (!scheduler.all_done()) {
    for (int k = 1; k <= nodes; ++k) {
      if (running[k].second >= 0) continue;
      const int task = scheduler.next(k, now, !forced);
      if (task < 0) continue;
      forced = false;
      const double factor = slowdown(k);
      const NodeTime& time = alone[kind[k]][task].nodes[0];
      double computing = 0, moving = time.gather_communication;
      for (int i = 0; i < count; ++i) {
        const LayerTime& layer = time.layers[i];
        LayerTime& total = estimate.nodes[k - 1].layers[i];
        total.communication += layer.communication;
        total.flash += layer.flash * factor;
        total.compute += layer.compute * factor;
        const double spent = layer.communication + (layer.flash + layer.compute) * factor;
        layer_busy[i] += spent;
        computing += (layer.flash + layer.compute) * factor;
        moving += layer.communication;
      }
      // The task's pieces and results all pass rank 0's port, one task's
      // after another's.
      const double moves_at = std::max(now, port_free);
      port_free = moves_at + moving;
      estimate.nodes[k - 1].gather_communication += time.gather_communication;
      estimate.nodes[k - 1].layers[count - 1].wait += moves_at - free_at[k];
      running[k] = {port_free + computing, task};
    }
    int first = -1;  // the next task to end
    for (int k = 1; k <= nodes; ++k)
      if (running[k].second >= 0 && (first < 0 || running[k].first < running[first].first))
        first = k;
    if (first < 0 && !forced) {  // everybody waits: the first to ask goes anyway
      forced = true;
      continue;
    }
    forced = false;
    if (first < 0) throw Error("internal: the task schedule stopped with tasks left");
    now = running[first].first;
    scheduler.done(running[first].second, now);
    running[first].second = -1;
    free_at[first] = now;
    estimate.nodes[first - 1].finish = now;
  }
  estimate.total_seconds = now;
  double busy = 0;
  for (double seconds : layer_busy) busy += seconds;
  for (int i = 0; i < count; ++i)  // the total shared out as the layers kept nodes busy
    estimate.layer_seconds.push_back(busy > 0 ? now * layer_busy[i] / busy : 0.0);
  for (NodeTime& node : estimate.nodes)
    for (LayerTime& layer : node.layers) layer.finish = node.finish;
  return estimate;
}

TimeEstimate estimate_task_time(const Model& model, const TaskTable& table,
                                const std::vector<NodeProgram>& programs,
                                const DeviceProfile& device, bool steal,
                                const std::vector<double>& slowdowns) {
  return estimate_task_time(model, table, programs,
                            std::vector<DeviceProfile>(table.may_take.size(), device), steal,
                            slowdowns);
}

}  // namespace splitinfer
