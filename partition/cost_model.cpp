#include "cost_model.hpp"

#include <algorithm>
#include <map>
#include <numeric>
#include <string>

#include "../src/error.hpp"
#include "node_program_builder.hpp"

namespace splitinfer {
namespace {

// The transfer phases of one inference (cluster_messages()): per layer, the
// pieces of each input slot (key {layer, slot}) and the relay of its regions
// ({layer, -1}); the output gather ({layers, -1}).
using Phases = std::map<std::pair<int, int>, std::vector<SwitchMessage>>;

Phases transfer_phases(const Model& model, const std::vector<NodeProgram>& programs) {
  Phases phases;
  for (const Message& message : cluster_messages(model, programs)) {
    const int layer = message.kind == Message::Kind::output ? static_cast<int>(model.layers.size())
                                                            : message.layer;
    phases[{layer, message.slot}].push_back({message.from, message.to, message.bytes()});
  }
  return phases;
}

uint64_t sum_bytes(const std::vector<SwitchMessage>& messages) {
  uint64_t bytes = 0;
  for (const SwitchMessage& message : messages) bytes += message.bytes;
  return bytes;
}

// Every rank's clock (0: the coordinator) and what the current layer added
// to its waiting and communication.
struct Clocks {
  std::vector<double> clock, wait, communication;
  explicit Clocks(int ranks) : clock(ranks, 0.0), wait(ranks, 0.0), communication(ranks, 0.0) {}
};

int find_root(std::vector<int>& parent, int rank) {
  while (parent[rank] != rank) rank = parent[rank] = parent[parent[rank]];
  return rank;
}

// Runs one transfer phase: each group of ranks connected by its messages
// starts when its latest member is ready and ends, for all its members, when
// its busiest port direction is done.
void run_phase(const std::vector<SwitchMessage>& messages,
               const std::vector<DeviceProfile>& devices, Clocks& clocks) {
  if (messages.empty()) return;
  const int ranks = static_cast<int>(clocks.clock.size());
  std::vector<int> parent(ranks);
  std::iota(parent.begin(), parent.end(), 0);
  std::vector<bool> taking_part(ranks, false);
  for (const SwitchMessage& message : messages) {
    taking_part[message.from] = taking_part[message.to] = true;
    parent[find_root(parent, message.from)] = find_root(parent, message.to);
  }
  std::vector<std::vector<SwitchMessage>> group_messages(ranks);
  for (const SwitchMessage& message : messages)
    group_messages[find_root(parent, message.from)].push_back(message);
  for (int root = 0; root < ranks; ++root) {
    if (group_messages[root].empty()) continue;
    double start = 0;
    for (int rank = 0; rank < ranks; ++rank)
      if (taking_part[rank] && find_root(parent, rank) == root)
        start = std::max(start, clocks.clock[rank]);
    const double end = start + transfer_seconds(group_messages[root], devices);
    for (int rank = 0; rank < ranks; ++rank)
      if (taking_part[rank] && find_root(parent, rank) == root) {
        clocks.wait[rank] += start - clocks.clock[rank];
        clocks.communication[rank] += end - start;
        clocks.clock[rank] = end;
      }
  }
}

}  // namespace

uint64_t region_macs(const Model& model, const Layer& layer, const Region& out) {
  return out.empty() ? 0 : op_traits(layer.op).macs(model, layer, out);
}

double transfer_seconds(const std::vector<SwitchMessage>& messages,
                        const std::vector<DeviceProfile>& devices) {
  struct Port {
    uint64_t bytes_out = 0, bytes_in = 0, messages_out = 0, messages_in = 0;
  };
  int ranks = 0;
  for (const SwitchMessage& message : messages)
    ranks = std::max({ranks, message.from + 1, message.to + 1});
  if (ranks > static_cast<int>(devices.size()) + 1)
    throw Error("internal: a message to or from rank " + std::to_string(ranks - 1) + " of " +
                std::to_string(devices.size()) + " nodes");
  std::vector<Port> ports(ranks);
  for (const SwitchMessage& message : messages) {
    ports[message.from].bytes_out += message.bytes;
    ports[message.from].messages_out += 1;
    ports[message.to].bytes_in += message.bytes;
    ports[message.to].messages_in += 1;
  }
  // Rank 0's port is the coordinator's (coordinator_link()); rank k's node k's.
  const DeviceProfile coordinator = coordinator_link(devices);
  double busiest = 0;
  for (int rank = 0; rank < ranks; ++rank) {
    const DeviceProfile& device = rank == 0 ? coordinator : devices[rank - 1];
    const auto direction = [&](uint64_t bytes, uint64_t count) {
      return static_cast<double>(bytes) / device.link_bytes_per_second +
             static_cast<double>(count) * device.message_latency_seconds;
    };
    const Port& port = ports[rank];
    busiest = std::max({busiest, direction(port.bytes_out, port.messages_out),
                        direction(port.bytes_in, port.messages_in)});
  }
  return busiest;
}

double transfer_seconds(const std::vector<SwitchMessage>& messages, const DeviceProfile& device) {
  int ranks = 0;
  for (const SwitchMessage& message : messages)
    ranks = std::max({ranks, message.from + 1, message.to + 1});
  return transfer_seconds(messages, std::vector<DeviceProfile>(std::max(ranks - 1, 1), device));
}

DeviceProfile coordinator_link(const std::vector<DeviceProfile>& devices) {
  if (devices.empty()) throw Error("internal: a cluster without nodes");
  DeviceProfile link = devices.front();
  for (const DeviceProfile& device : devices) {
    link.link_bytes_per_second = std::max(link.link_bytes_per_second, device.link_bytes_per_second);
    link.message_latency_seconds =
        std::min(link.message_latency_seconds, device.message_latency_seconds);
  }
  return link;
}

TimeEstimate estimate_time(const Model& model, const std::vector<NodeProgram>& programs,
                           const DeviceProfile& device) {
  return estimate_time(model, programs, std::vector<DeviceProfile>(programs.size(), device));
}

TimeEstimate estimate_time(const Model& model, const std::vector<NodeProgram>& programs,
                           const std::vector<DeviceProfile>& devices) {
  const int nodes = static_cast<int>(programs.size());
  if (devices.size() != programs.size())
    throw Error("internal: the cost model needs one device per node");
  const int count = static_cast<int>(model.layers.size());
  for (int k = 0; k < nodes; ++k)
    if (programs[k].node != k + 1 || static_cast<int>(programs[k].layers.size()) != count)
      throw Error("internal: the cost model needs the programs of nodes 1.." +
                  std::to_string(nodes) + " in order, one step per layer");
  TimeEstimate estimate;
  for (const NodeProgram& program : programs) {
    NodeTime node;
    node.node = program.node;
    node.layers.resize(count);
    estimate.nodes.push_back(std::move(node));
  }
  Phases phases = transfer_phases(model, programs);
  Clocks clocks(nodes + 1);
  double latest = 0;  // the latest clock of any rank after the previous layer
  for (int i = 0; i < count; ++i) {
    const Layer& layer = model.layers[i];
    std::fill(clocks.wait.begin(), clocks.wait.end(), 0.0);
    std::fill(clocks.communication.begin(), clocks.communication.end(), 0.0);
    for (int slot = 0; slot < static_cast<int>(layer.inputs.size()); ++slot)
      run_phase(phases[{i, slot}], devices, clocks);
    for (int k = 0; k < nodes; ++k) {
      const DeviceProfile& device = devices[k];
      const double macs_per_second =
          layer.quantized() ? device.macs_per_second_int8 : device.macs_per_second_float32;
      const LayerStep& step = programs[k].layers[i];
      LayerTime& time = estimate.nodes[k].layers[i];
      // A streamed layer is computed part by part, its weights streamed for each.
      const std::vector<Region> parts = computed_parts(programs[k], i);
      if (parts.empty()) continue;
      uint64_t macs = 0, flash = 0;
      for (const Region& part : parts) {
        macs += region_macs(model, layer, part);
        flash += weight_slice_bytes(layer, part, false);
      }
      if (step.stream >= 0 && programs[k].streams[step.stream].keep_weights)
        flash = weight_slice_bytes(layer, step.out, false);  // read once, kept
      time.flash = static_cast<double>(flash) / device.flash_bytes_per_second;
      time.compute = static_cast<double>(macs) / macs_per_second;
      clocks.clock[k + 1] += time.flash + time.compute;
    }
    run_phase(phases[{i, -1}], devices, clocks);
    for (int k = 0; k < nodes; ++k) {
      LayerTime& time = estimate.nodes[k].layers[i];
      time.wait = clocks.wait[k + 1];
      time.communication = clocks.communication[k + 1];
      time.finish = clocks.clock[k + 1];
    }
    const double now = *std::max_element(clocks.clock.begin(), clocks.clock.end());
    estimate.layer_seconds.push_back(now - latest);
    latest = now;
  }
  std::fill(clocks.wait.begin(), clocks.wait.end(), 0.0);
  std::fill(clocks.communication.begin(), clocks.communication.end(), 0.0);
  run_phase(phases[{count, -1}], devices, clocks);
  for (int k = 0; k < nodes; ++k) {
    estimate.nodes[k].gather_wait = clocks.wait[k + 1];
    estimate.nodes[k].gather_communication = clocks.communication[k + 1];
    estimate.nodes[k].finish = clocks.clock[k + 1];
  }
  estimate.total_seconds = clocks.clock[0];
  estimate.output_gather_seconds = std::max(0.0, estimate.total_seconds - latest);
  return estimate;
}

BytesMoved bytes_moved(const Model& model, const std::vector<NodeProgram>& programs) {
  BytesMoved moved;
  moved.layers.assign(model.layers.size(), 0);
  for (const auto& [key, messages] : transfer_phases(model, programs))
    (key.first < static_cast<int>(model.layers.size()) ? moved.layers[key.first]
                                                       : moved.output_gather) +=
        sum_bytes(messages);
  return moved;
}

}  // namespace splitinfer
