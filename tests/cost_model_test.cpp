// The cost model against times worked out by hand: small models with regions
// chosen here, every expected time written as the profile's rates applied to
// byte and MAC counts counted from the shapes (not read from the programs);
// the switch's sharing of ports; region_macs against layer_macs; the clocks'
// bookkeeping on random plans; plan.h5 keeping the prediction; mixed
// clusters (each node its device's rates, port and caps).
#include "cost_model.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <numeric>
#include <string>
#include <vector>

#include "model_builder.hpp"
#include "node_program_builder.hpp"
#include "plan.hpp"
#include "plan_file.hpp"
#include "prediction.hpp"
#include "strategies.hpp"
#include "task_plan.hpp"
#include "error.hpp"

namespace splitinfer {
namespace {

using testing::conv_params;
using testing::ModelBuilder;
using testing::nchw;
using testing::random_stack;

// Rates chosen so that every term of a sum is told apart.
DeviceProfile test_device() {
  DeviceProfile device;
  device.name = "testboard";
  device.ram_bytes = 1 << 20;
  device.flash_bytes = 1 << 22;
  device.macs_per_second_float32 = 1000;
  device.macs_per_second_int8 = 4000;
  device.flash_bytes_per_second = 500;
  device.link_bytes_per_second = 100;
  device.message_latency_seconds = 0.25;
  return device;
}

std::vector<NodeProgram> programs_of(const Model& model, const LayerRegions& regions,
                                     bool via_coordinator = false) {
  std::vector<NodeProgram> programs;
  for (int k = 1; k <= static_cast<int>(regions[0].size()); ++k)
    programs.push_back(build_node_program(model, regions, k, via_coordinator));
  return programs;
}

// Sums of floating-point terms taken in another order than the model's.
constexpr double kTolerance = 1e-9;

// ---- the switch ----

TEST(TransferSeconds, PortsAreSharedAsASwitchSharesThem) {
  const DeviceProfile device = test_device();
  const double link = device.link_bytes_per_second, latency = device.message_latency_seconds;
  // One message: its bytes and one latency.
  EXPECT_NEAR(transfer_seconds({{1, 2, 300}}, device), 300 / link + latency, kTolerance);
  // Disjoint pairs go through the switch at once: the larger one decides.
  EXPECT_NEAR(transfer_seconds({{1, 2, 300}, {3, 4, 500}}, device), 500 / link + latency,
              kTolerance);
  // Full duplex: both directions of a port at once.
  EXPECT_NEAR(transfer_seconds({{1, 2, 300}, {2, 1, 300}}, device), 300 / link + latency,
              kTolerance);
  // One sender to two receivers shares its outgoing direction: bytes and latencies add.
  EXPECT_NEAR(transfer_seconds({{0, 1, 300}, {0, 2, 500}}, device),
              (300 + 500) / link + 2 * latency, kTolerance);
  // Two senders to one receiver share its incoming direction.
  EXPECT_NEAR(transfer_seconds({{1, 0, 300}, {2, 0, 500}, {3, 4, 700}}, device),
              std::max((300 + 500) / link + 2 * latency, 700 / link + latency), kTolerance);
  EXPECT_EQ(transfer_seconds({}, device), 0.0);
}

// ---- region_macs ----

TEST(RegionMacs, WholeMapIsLayerMacs) {
  ModelBuilder b(nchw(1, 6, 11, 9));
  b.conv("conv", "input", 8, conv_params(3, 2, 1));
  b.conv("grouped", "conv", 4, conv_params(3, 1, 1, 2));
  b.conv("depthwise", "grouped", 4, conv_params(5, 1, 2, 4));
  b.unary("relu", Op::relu, "depthwise");
  b.global_avgpool("pool", "relu");
  b.flatten("flat", "pool");
  b.linear("fc", "flat", 7);
  const Model model = b.finish("fc");
  for (const Layer& layer : model.layers) {
    if (layer.op == Op::input) continue;
    EXPECT_EQ(region_macs(model, layer, Region::whole(layer.output_shape)),
              layer_macs(model, layer))
        << layer.name;
  }
  // The hand count of one: 8 x 6 x 5 outputs, each 6 channels x 3 x 3 taps.
  const Layer& conv = model.layers[model.find("conv")];
  EXPECT_EQ(region_macs(model, conv, Region::whole(conv.output_shape)), 8u * 6 * 5 * 6 * 9);
  EXPECT_EQ(region_macs(model, conv, Region{}), 0u);
  EXPECT_EQ(region_macs(model, model.layers[model.find("relu")],
                        Region::whole(model.layers[model.find("relu")].output_shape)),
            0u);
}

TEST(RegionMacs, RegionsOfAPartitionAddUpToTheLayer) {
  for (uint32_t seed = 1; seed <= 40; ++seed) {
    const Model model = random_stack(seed);
    for (int nodes : {2, 3, 5}) {
      for (const LayerRegions& regions :
           {spatial_regions(model, nodes, 1), channel_regions(model, nodes)}) {
        for (size_t i = 1; i < model.layers.size(); ++i) {
          uint64_t total = 0;
          for (const Region& region : regions[i])
            total += region_macs(model, model.layers[i], region);
          EXPECT_EQ(total, layer_macs(model, model.layers[i]))
              << "seed " << seed << ", " << nodes << " nodes, layer " << model.layers[i].name;
        }
      }
    }
  }
}

// ---- the schedule, by hand ----

// One node: the input in, one convolution (and a relu), the output out.
TEST(EstimateTime, OneNodeIsScatterFlashComputeGather) {
  ModelBuilder b(nchw(1, 2, 6, 6));
  b.conv("conv", "input", 4, conv_params(3, 1, 1));
  b.unary("relu", Op::relu, "conv");
  const Model model = b.finish("relu");
  const LayerRegions regions = spatial_regions(model, 1, 1);
  const DeviceProfile device = test_device();
  const TimeEstimate estimate = estimate_time(model, programs_of(model, regions), device);

  const double link = device.link_bytes_per_second, latency = device.message_latency_seconds;
  const double scatter = (2 * 6 * 6 * 4) / link + latency;  // the float32 input
  const double flash = ((4 * 2 * 3 * 3) + 4) * 4 / device.flash_bytes_per_second;  // weight, bias
  const double compute = (4 * 6 * 6) * (2 * 3 * 3) / device.macs_per_second_float32;
  const double gather = (4 * 6 * 6 * 4) / link + latency;
  ASSERT_EQ(estimate.nodes.size(), 1u);
  const LayerTime& conv = estimate.nodes[0].layers[1];
  EXPECT_NEAR(conv.communication, scatter, kTolerance);
  EXPECT_NEAR(conv.flash, flash, kTolerance);
  EXPECT_NEAR(conv.compute, compute, kTolerance);
  EXPECT_EQ(conv.wait, 0.0);
  EXPECT_NEAR(conv.finish, scatter + flash + compute, kTolerance);
  const LayerTime& relu = estimate.nodes[0].layers[2];  // no MACs, no weights, nothing moves
  EXPECT_EQ(relu.compute + relu.flash + relu.communication + relu.wait, 0.0);
  EXPECT_NEAR(estimate.nodes[0].gather_communication, gather, kTolerance);
  EXPECT_NEAR(estimate.total_seconds, scatter + flash + compute + gather, kTolerance);
  EXPECT_NEAR(estimate.nodes[0].finish, estimate.total_seconds, kTolerance);
  EXPECT_NEAR(estimate.layer_seconds[1], scatter + flash + compute, kTolerance);
  EXPECT_EQ(estimate.layer_seconds[2], 0.0);
  EXPECT_NEAR(estimate.output_gather_seconds, gather, kTolerance);
}

// Two nodes on rows [0, 2) and [2, 6) of two 3x3 convolutions: the input
// scattered through the coordinator's port, then one halo row each way, the
// faster node waiting for the slower one, then the gather.
TEST(EstimateTime, HaloExchangeWaitsForTheSlowerNeighbour) {
  ModelBuilder b(nchw(1, 1, 6, 4));
  b.conv("conv1", "input", 2, conv_params(3, 1, 1));
  b.conv("conv2", "conv1", 2, conv_params(3, 1, 1));
  const Model model = b.finish("conv2");
  LayerRegions regions(3, std::vector<Region>(2));
  for (int layer : {1, 2}) {
    regions[layer][0] = {0, 2, 0, 2, 0, 4};
    regions[layer][1] = {0, 2, 2, 6, 0, 4};
  }
  const DeviceProfile device = test_device();
  const TimeEstimate estimate = estimate_time(model, programs_of(model, regions), device);

  const double link = device.link_bytes_per_second, latency = device.message_latency_seconds;
  const double rate = device.macs_per_second_float32, flash_rate = device.flash_bytes_per_second;
  // Input rows [0, 3) to node 1 and [1, 6) to node 2, one channel of 4
  // columns: both through the coordinator's outgoing direction.
  const double scatter = (3 * 4 * 4 + 5 * 4 * 4) / link + 2 * latency;
  const double flash1 = (2 * 1 * 9 + 2) * 4 / flash_rate, flash2 = (2 * 2 * 9 + 2) * 4 / flash_rate;
  const double node1_conv1 = scatter + flash1 + (2 * 2 * 4) * (1 * 9) / rate;
  const double node2_conv1 = scatter + flash1 + (2 * 4 * 4) * (1 * 9) / rate;
  // One row of 2 channels x 4 columns each way: full duplex, one message per direction.
  const double halo = (2 * 1 * 4 * 4) / link + latency;
  const double conv2_start = std::max(node1_conv1, node2_conv1);
  const double node1_conv2 = conv2_start + halo + flash2 + (2 * 2 * 4) * (2 * 9) / rate;
  const double node2_conv2 = conv2_start + halo + flash2 + (2 * 4 * 4) * (2 * 9) / rate;
  const double gather = (2 * 2 * 4 * 4 + 2 * 4 * 4 * 4) / link + 2 * latency;
  const double total = std::max(node1_conv2, node2_conv2) + gather;

  const NodeTime& node1 = estimate.nodes[0];
  const NodeTime& node2 = estimate.nodes[1];
  EXPECT_NEAR(node1.layers[1].finish, node1_conv1, kTolerance);
  EXPECT_NEAR(node2.layers[1].finish, node2_conv1, kTolerance);
  EXPECT_NEAR(node1.layers[2].wait, node2_conv1 - node1_conv1, kTolerance);
  EXPECT_EQ(node2.layers[2].wait, 0.0);
  EXPECT_NEAR(node1.layers[2].communication, halo, kTolerance);
  EXPECT_NEAR(node1.layers[2].finish, node1_conv2, kTolerance);
  EXPECT_NEAR(node2.layers[2].finish, node2_conv2, kTolerance);
  EXPECT_NEAR(node1.gather_wait, node2_conv2 - node1_conv2, kTolerance);
  EXPECT_NEAR(estimate.total_seconds, total, kTolerance);
  EXPECT_NEAR(node1.finish, total, kTolerance);
  EXPECT_NEAR(node2.finish, total, kTolerance);
}

// Relay on two nodes (channel halves of two 1x1 convolutions): every input
// goes whole from the coordinator to both nodes and every region back, so the
// coordinator's port carries all of it.
TEST(EstimateTime, RelayLoadsTheCoordinatorsPort) {
  ModelBuilder b(nchw(1, 2, 4, 4));
  b.conv("conv1", "input", 4, conv_params(1, 1, 0));
  b.conv("conv2", "conv1", 4, conv_params(1, 1, 0));
  const Model model = b.finish("conv2");
  const LayerRegions regions = channel_regions(model, 2);
  const std::vector<NodeProgram> programs = programs_of(model, regions, true);
  const DeviceProfile device = test_device();
  const TimeEstimate estimate = estimate_time(model, programs, device);

  const double link = device.link_bytes_per_second, latency = device.message_latency_seconds;
  const double rate = device.macs_per_second_float32, flash_rate = device.flash_bytes_per_second;
  const double input_map = 2 * 4 * 4 * 4, conv1_map = 4 * 4 * 4 * 4;  // bytes
  const double down1 = 2 * input_map / link + 2 * latency;            // input to both
  const double conv1 = (2 * 2 + 2) * 4 / flash_rate + (2 * 16) * 2 / rate;
  const double up1 = conv1_map / link + 2 * latency;        // both halves in
  const double down2 = 2 * conv1_map / link + 2 * latency;  // conv1 whole to both
  const double conv2 = (2 * 4 + 2) * 4 / flash_rate + (2 * 16) * 4 / rate;
  const double gather = conv1_map / link + 2 * latency;  // both halves of conv2
  EXPECT_NEAR(estimate.nodes[0].layers[1].communication, down1 + up1, kTolerance);
  EXPECT_NEAR(estimate.nodes[1].layers[2].communication, down2, kTolerance);
  EXPECT_NEAR(estimate.total_seconds, down1 + conv1 + up1 + down2 + conv2 + gather, kTolerance);

  const BytesMoved moved = bytes_moved(model, programs);
  EXPECT_EQ(moved.layers[1], static_cast<uint64_t>(2 * input_map + conv1_map));
  EXPECT_EQ(moved.layers[2], static_cast<uint64_t>(2 * conv1_map));
  EXPECT_EQ(moved.output_gather, static_cast<uint64_t>(conv1_map));
}

// Depthwise convolutions split by channels exchange nothing: after the
// scatter each node runs on its own clock until the gather.
TEST(EstimateTime, LayersWithoutExchangeDoNotSynchronize) {
  ModelBuilder b(nchw(1, 4, 4, 4));
  b.conv("dw1", "input", 4, conv_params(3, 1, 1, 4));
  b.conv("dw2", "dw1", 4, conv_params(3, 1, 1, 4));
  const Model model = b.finish("dw2");
  LayerRegions regions(3, std::vector<Region>(2));
  for (int layer : {1, 2}) {
    regions[layer][0] = {0, 1, 0, 4, 0, 4};
    regions[layer][1] = {1, 4, 0, 4, 0, 4};
  }
  const std::vector<NodeProgram> programs = programs_of(model, regions);
  ASSERT_FALSE(programs[0].layers[2].inputs[0].exchange);
  const DeviceProfile device = test_device();
  const TimeEstimate estimate = estimate_time(model, programs, device);

  const double link = device.link_bytes_per_second, latency = device.message_latency_seconds;
  const double scatter = (4 * 16 * 4) / link + 2 * latency;
  const auto work = [&](int channels) {  // one depthwise layer on `channels` channels
    return (channels * 9 + channels) * 4 / device.flash_bytes_per_second +
           (channels * 16) * 9 / device.macs_per_second_float32;
  };
  EXPECT_EQ(estimate.nodes[0].layers[2].wait, 0.0);
  EXPECT_EQ(estimate.nodes[0].layers[2].communication, 0.0);
  EXPECT_NEAR(estimate.nodes[0].layers[2].finish, scatter + 2 * work(1), kTolerance);
  EXPECT_NEAR(estimate.nodes[1].layers[2].finish, scatter + 2 * work(3), kTolerance);
  const double gather = (4 * 16 * 4) / link + 2 * latency;
  EXPECT_NEAR(estimate.total_seconds, scatter + 2 * work(3) + gather, kTolerance);
}

TEST(EstimateTime, QuantizedLayersUseTheInt8Rate) {
  ModelBuilder b(nchw(1, 2, 4, 4));
  b.conv("conv", "input", 3, conv_params(3, 1, 1));
  Model model = b.finish("conv");
  const std::vector<NodeProgram> programs = programs_of(model, spatial_regions(model, 1, 1));
  const DeviceProfile device = test_device();
  const double macs = 3 * 16 * 2 * 9;
  EXPECT_NEAR(estimate_time(model, programs, device).nodes[0].layers[1].compute,
              macs / device.macs_per_second_float32, kTolerance);
  model.layers[1].dtype = DType::u8;  // only the rate the model picks depends on it here
  EXPECT_NEAR(estimate_time(model, programs, device).nodes[0].layers[1].compute,
              macs / device.macs_per_second_int8, kTolerance);
}

// ---- bookkeeping on random plans ----

// Each node's clock is the sum of what the model charged it, and the layers'
// advances of the latest clock (with the gather) reach the end.
TEST(EstimateTime, ClocksAddUpOnRandomPlans) {
  const DeviceProfile device = test_device();
  for (uint32_t seed = 1; seed <= 30; ++seed) {
    const Model model = random_stack(seed);
    for (int nodes : {1, 2, 3, 5}) {
      for (int kind = 0; kind < 3; ++kind) {
        const LayerRegions regions =
            kind == 0 ? spatial_regions(model, nodes, 1) : channel_regions(model, nodes);
        const TimeEstimate estimate =
            estimate_time(model, programs_of(model, regions, kind == 2), device);
        double latest = estimate.total_seconds;
        for (const NodeTime& node : estimate.nodes) {
          double charged = node.gather_wait + node.gather_communication;
          for (const LayerTime& layer : node.layers)
            charged += layer.wait + layer.communication + layer.flash + layer.compute;
          EXPECT_NEAR(charged, node.finish, kTolerance) << "seed " << seed << " node " << node.node;
          latest = std::max(latest, node.finish);
        }
        const double advances =
            std::accumulate(estimate.layer_seconds.begin(), estimate.layer_seconds.end(), 0.0);
        EXPECT_NEAR(advances + estimate.output_gather_seconds, latest, kTolerance)
            << "seed " << seed;
        EXPECT_GT(estimate.total_seconds, 0.0);
      }
    }
  }
}

// ---- plans ----

TEST(PlanWithDevice, PredictsAndKeepsTheEstimateInPlanH5) {
  ModelBuilder b(nchw(1, 3, 12, 10));
  b.conv("conv1", "input", 8, conv_params(3, 2, 1));
  b.unary("relu", Op::relu, "conv1");
  b.conv("conv2", "relu", 8, conv_params(3, 1, 1));
  Model model = b.finish("conv2");
  model.meta.mean = {0, 0, 0};  // what a model file holds for its input
  model.meta.std = {1, 1, 1};
  PlanOptions options;
  options.nodes = 3;
  options.device = test_device();
  const Plan plan = make_plan(model, options);
  ASSERT_EQ(plan.devices.size(), 3u);
  const TimeEstimate expected = estimate_time(model, node_programs(model, plan), test_device());
  EXPECT_EQ(plan.emulated.total_seconds, expected.total_seconds);

  const std::string dir =
      (std::filesystem::path(::testing::TempDir()) / "splitinfer_cost_model_plan").string();
  std::filesystem::remove_all(dir);
  write_plan(dir, model, plan);
  Model read_model;
  Plan read;
  read_plan(dir, read_model, read);
  ASSERT_EQ(read.devices.size(), 3u);
  EXPECT_EQ(read.devices[2].name, "testboard");
  EXPECT_EQ(read.devices[2].link_bytes_per_second, test_device().link_bytes_per_second);
  EXPECT_EQ(read.emulated.total_seconds, plan.emulated.total_seconds);
  EXPECT_EQ(read.emulated.output_gather_seconds, plan.emulated.output_gather_seconds);
  EXPECT_EQ(read.emulated.layer_seconds, plan.emulated.layer_seconds);
  ASSERT_EQ(read.emulated.nodes.size(), 3u);
  for (size_t k = 0; k < 3; ++k) {
    EXPECT_EQ(read.emulated.nodes[k].finish, plan.emulated.nodes[k].finish);
    EXPECT_EQ(read.emulated.nodes[k].gather_wait, plan.emulated.nodes[k].gather_wait);
    for (size_t i = 0; i < model.layers.size(); ++i) {
      const LayerTime& a = read.emulated.nodes[k].layers[i];
      const LayerTime& e = plan.emulated.nodes[k].layers[i];
      EXPECT_EQ(a.wait, e.wait);
      EXPECT_EQ(a.communication, e.communication);
      EXPECT_EQ(a.flash, e.flash);
      EXPECT_EQ(a.compute, e.compute);
      EXPECT_EQ(a.finish, e.finish);
    }
  }

  // A plan without a device writes and reads without either group.
  options.device.reset();
  write_plan(dir, model, make_plan(model, options));
  read_plan(dir, read_model, read);
  EXPECT_TRUE(read.devices.empty());
  EXPECT_TRUE(read.emulated.nodes.empty());
  std::filesystem::remove_all(dir);
}


// ---- mixed clusters (plan --devices) ----

// A second board: half the MAC rate, a quarter of the link, other latency.
DeviceProfile slow_device() {
  DeviceProfile device = test_device();
  device.name = "slowboard";
  device.ram_bytes = 1 << 16;
  device.macs_per_second_float32 = 500;
  device.macs_per_second_int8 = 2000;
  device.link_bytes_per_second = 25;
  device.message_latency_seconds = 0.5;
  return device;
}

TEST(TransferSeconds, EachPortRunsAtItsNodesLinkTheCoordinatorsAtTheFastest) {
  const std::vector<DeviceProfile> devices = {test_device(), slow_device()};
  const DeviceProfile coordinator = coordinator_link(devices);
  EXPECT_EQ(coordinator.link_bytes_per_second, 100);
  EXPECT_EQ(coordinator.message_latency_seconds, 0.25);
  // Node 1 to node 2: node 2's receiving side is the busiest.
  EXPECT_NEAR(transfer_seconds({{1, 2, 300}}, devices), 300 / 25.0 + 0.5, kTolerance);
  // The coordinator to node 1: both ports of the fast kind.
  EXPECT_NEAR(transfer_seconds({{0, 1, 300}}, devices), 300 / 100.0 + 0.25, kTolerance);
  // The coordinator's port sends both; node 2's receiving side is slower still.
  EXPECT_NEAR(transfer_seconds({{0, 1, 300}, {0, 2, 100}}, devices),
              std::max(400 / 100.0 + 2 * 0.25, 100 / 25.0 + 0.5), kTolerance);
}

// Channel halves of one convolution: equal MACs, the slow node twice as long.
TEST(EstimateTime, EachNodeComputesAtItsDevicesRate) {
  ModelBuilder b(nchw(1, 2, 6, 6));
  b.conv("conv", "input", 4, conv_params(3, 1, 1));
  const Model model = b.finish("conv");
  const std::vector<NodeProgram> programs = programs_of(model, channel_regions(model, 2));
  const TimeEstimate estimate =
      estimate_time(model, programs, std::vector<DeviceProfile>{test_device(), slow_device()});
  const double macs = (2 * 6 * 6) * (2 * 3 * 3);  // each node's half
  EXPECT_NEAR(estimate.nodes[0].layers[1].compute, macs / 1000, kTolerance);
  EXPECT_NEAR(estimate.nodes[1].layers[1].compute, macs / 500, kTolerance);
  // One profile for all is the single-device estimate.
  EXPECT_EQ(estimate_time(model, programs, test_device()).total_seconds,
            estimate_time(model, programs, std::vector<DeviceProfile>(2, test_device()))
                .total_seconds);
}

Model mixed_test_model() {
  ModelBuilder b(nchw(1, 3, 48, 16));
  b.conv("conv1", "input", 8, conv_params(3, 1, 1));
  b.unary("relu", Op::relu, "conv1");
  b.conv("conv2", "relu", 16, conv_params(3, 1, 1));
  b.conv("conv3", "conv2", 8, conv_params(3, 1, 1));
  Model model = b.finish("conv3");
  model.meta.mean = {0, 0, 0};
  model.meta.std = {1, 1, 1};
  return model;
}

uint64_t node_macs(const NodePlan& node) {
  return std::accumulate(node.layer_macs.begin(), node.layer_macs.end(), uint64_t{0});
}

// Static cuts give each node work in proportion to its speed, each node
// keeps its own caps, and plan.h5 keeps every node's device and caps.
TEST(PlanWithDevices, SharesWorkBySpeedWithinEachNodesCaps) {
  const Model model = mixed_test_model();
  DeviceProfile fast = test_device();
  fast.name = "fastboard";
  fast.macs_per_second_float32 = 1500;  // three times the slow board's 500
  PlanOptions options;
  options.nodes = 2;
  options.devices = {fast, slow_device()};
  options.devices[1].ram_bytes = 1 << 20;  // no cap in the way yet
  for (Strategy strategy : {Strategy::spatial, Strategy::channel, Strategy::fused}) {
    options.strategy = strategy;
    const Plan plan = make_plan(model, options);
    const double ratio = static_cast<double>(node_macs(plan.node_plans[0])) /
                         static_cast<double>(node_macs(plan.node_plans[1]));
    EXPECT_GT(ratio, 2.4) << strategy_name(strategy);  // 3, give or take the rounding of cuts
    EXPECT_LT(ratio, 3.8) << strategy_name(strategy);
    ASSERT_EQ(plan.devices.size(), 2u);
    EXPECT_EQ(plan.devices[1].name, "slowboard");
  }

  // A RAM cap that the speed share overflows: the slow node gets less, within it.
  options.strategy = Strategy::spatial;
  options.devices[0].macs_per_second_float32 = 500;  // equal speeds...
  options.devices[1].ram_bytes = 20000;              // ...but node 2 has little RAM
  const Plan capped = make_plan(model, options);
  EXPECT_EQ(capped.node_plans[0].ram_cap_bytes, test_device().ram_bytes);
  EXPECT_EQ(capped.node_plans[1].ram_cap_bytes, 20000u);
  EXPECT_LE(capped.node_plans[1].predicted_peak_ram_bytes, 20000u);
  EXPECT_LT(node_macs(capped.node_plans[1]), node_macs(capped.node_plans[0]));
  // The emulated time is the cost model's on each node's device.
  const TimeEstimate expected =
      estimate_time(model, node_programs(model, capped), options.devices);
  EXPECT_EQ(capped.emulated.total_seconds, expected.total_seconds);

  const std::string dir =
      (std::filesystem::path(::testing::TempDir()) / "splitinfer_mixed_plan").string();
  std::filesystem::remove_all(dir);
  write_plan(dir, model, capped);
  Model read_model;
  Plan read;
  read_plan(dir, read_model, read);
  ASSERT_EQ(read.devices.size(), 2u);
  EXPECT_EQ(read.devices[0].name, "fastboard");
  EXPECT_EQ(read.devices[1].name, "slowboard");
  EXPECT_EQ(read.devices[1].ram_bytes, 20000u);
  EXPECT_EQ(read.node_plans[1].ram_cap_bytes, 20000u);
  EXPECT_EQ(read.node_plans[0].ram_cap_bytes, test_device().ram_bytes);
  EXPECT_EQ(read.emulated.total_seconds, capped.emulated.total_seconds);
  std::filesystem::remove_all(dir);

  // --ram replaces every node's cap; nothing fits 1 KiB: the error names the node.
  options.ram_cap_bytes = 1024;
  const std::string error = [&] {
    try {
      make_plan(model, options);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  }();
  EXPECT_NE(error.find("node 1 (fastboard) needs"), std::string::npos) << error;
}

// Tasks on a mixed cluster: each task's home has a RAM cap that holds it,
// homes in proportion to speed, and a node takes only tasks it can hold.
TEST(PlanWithDevices, TaskHomesAndStealingRespectEachNodesCap) {
  const Model model = mixed_test_model();
  PlanOptions options;
  options.nodes = 2;
  options.strategy = Strategy::fused;
  options.tasks = 8;
  options.grid = "8x1";
  options.devices = {test_device(), slow_device()};
  options.devices[1].ram_bytes = 1 << 20;
  const Plan roomy = make_plan(model, options);
  int fast_homes = 0;
  for (const Task& task : roomy.tasks.list) fast_homes += task.home == 1;
  EXPECT_GT(fast_homes, static_cast<int>(roomy.tasks.list.size()) / 2);  // twice the speed

  // Node 2's cap below every task's peak: every task is node 1's.
  options.devices[1].ram_bytes = 256;
  const Plan tight = make_plan(model, options);
  for (size_t task = 0; task < tight.tasks.list.size(); ++task) {
    EXPECT_EQ(tight.tasks.list[task].home, 1);
    EXPECT_FALSE(tight.tasks.may_take[1][task]);
  }
  EXPECT_LE(tight.node_plans[1].predicted_peak_ram_bytes, 256u);
}

}  // namespace
}  // namespace splitinfer
