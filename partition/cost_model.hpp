#pragma once
// Emulated time: how long one inference would take on a cluster of devices
// of one profile, every node and the coordinator on one Ethernet-like switch.
//
// Why this shape of model. A node of this class (an MCU, a small board) does
// one thing at a time: it streams a layer's weights from flash, computes, or
// waits on its link; so each node has one clock that these steps advance, in
// the order its program runs the layers. Compute is MACs over a MAC rate,
// because MACs are what the devices' published figures measure (the teensy41
// rate is calibrated on a whole network, so the ops without MACs are folded
// into it). Links are what make distributed plans slow or fast, and a
// switch shares them port by port, not as one bus: every rank, the
// coordinator included, has one full-duplex port, and the switch is
// non-blocking, so transfers that share no port do not slow each other, while
// the coordinator's port carries every relayed byte. A transfer phase (the
// pieces of one layer input, the relay of one layer's regions to the
// coordinator, the output gather) starts when the last rank taking part is
// ready (a receiver cannot take a piece before its sender computed it, and
// the runtime's exchanges are collective), and lasts as long as its busiest
// port direction: its bytes over the link bandwidth plus one latency per
// message. Ranks that exchange nothing in a phase are not held by it, and two
// groups of ranks that exchange only among themselves are separate phases:
// fused tiles and split branches run on their own clocks until their pieces
// meet. Everything is derived from the node programs the run executes, so the
// model follows whatever the strategies plan.
#include <cstdint>
#include <vector>

#include "../src/graph.hpp"
#include "../src/node_program.hpp"
#include "device.hpp"

namespace splitinfer {

// Multiply-accumulates of computing `out` (a region of `layer`'s output):
// conv2d and linear; 0 for other ops and empty regions. For the whole map it
// is layer_macs(); the regions of a partition add up to it.
uint64_t region_macs(const Model& model, const Layer& layer, const Region& out);

// One message through the switch: `bytes` from rank `from` to rank `to`
// (0 is the coordinator, 1..N the nodes); a Message's route and size.
struct SwitchMessage {
  int from = 0, to = 0;
  uint64_t bytes = 0;
};

// Seconds the switch needs for `messages` sent at once: the busiest port
// direction (bytes over its link bandwidth plus its latency per message).
// `devices` are nodes 1..N's, each port its node's; rank 0's port is
// coordinator_link()'s.
double transfer_seconds(const std::vector<SwitchMessage>& messages,
                        const std::vector<DeviceProfile>& devices);
// The same with every rank's port of one device.
double transfer_seconds(const std::vector<SwitchMessage>& messages, const DeviceProfile& device);

// The coordinator's port in a cluster of `devices`: the fastest link and the
// shortest latency among the nodes' (the coordinator is a gateway, never
// slower than the boards it serves); with one device, that device's.
DeviceProfile coordinator_link(const std::vector<DeviceProfile>& devices);

// One node's time in one layer, in seconds.
struct LayerTime {
  double wait = 0;           // idle until the peers of its transfers were ready
  double communication = 0;  // the transfer phases it took part in (its inputs; relays)
  double flash = 0;          // streaming its weight slice from flash
  double compute = 0;        // its region's MACs over the MAC rate
  double finish = 0;         // its clock after the layer
};

struct NodeTime {
  int node = 1;
  std::vector<LayerTime> layers;  // per model layer
  // The output gather (after every layer): waiting for it, and its transfer.
  double gather_wait = 0, gather_communication = 0;
  // Its clock at the end: the sum of every layer's wait, communication, flash
  // and compute and of the gather's.
  double finish = 0;
};

struct TimeEstimate {
  std::vector<NodeTime> nodes;  // nodes 1..N
  // Per layer: how far it moves the latest clock of the cluster (any rank's);
  // with output_gather_seconds, adds up to total_seconds.
  std::vector<double> layer_seconds;
  double output_gather_seconds = 0;
  double total_seconds = 0;  // the coordinator's clock after it received the output
};

// The emulated time of one inference: `programs` are nodes 1..N's
// (build_node_program), node k a `devices[k - 1]` (its MAC rates, flash and
// port), the coordinator's port coordinator_link(devices).
TimeEstimate estimate_time(const Model& model, const std::vector<NodeProgram>& programs,
                           const std::vector<DeviceProfile>& devices);
// The same with every node a `device`.
TimeEstimate estimate_time(const Model& model, const std::vector<NodeProgram>& programs,
                           const DeviceProfile& device);

// Bytes all ranks (the coordinator included) send in one inference: per
// layer (its input pieces, the relay of its regions) and in the output
// gather. Independent of any device.
struct BytesMoved {
  std::vector<uint64_t> layers;
  uint64_t output_gather = 0;
};
BytesMoved bytes_moved(const Model& model, const std::vector<NodeProgram>& programs);

}  // namespace splitinfer
