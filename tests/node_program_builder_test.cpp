// The partition math, each against a computation of its own:
// - needed_region() against a brute force that visits every output element of
//   the region and every input element its definition reads (kernel taps
//   inside the map, the concat slot holding the channel, ...) and takes the
//   bounding box, on seeded random shapes and regions;
// - strategies' regions partition every map (disjoint, covering);
// - build_node_program()'s traffic: each node receives exactly the part of
//   every needed region it does not hold itself, what nodes send is what
//   others receive, and the exchange flag is the same on every node.
#include "node_program_builder.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "error.hpp"
#include "model_builder.hpp"
#include "strategies.hpp"
#include "test_util.hpp"

namespace splitinfer {
namespace {

using testing::conv_params;
using testing::ModelBuilder;
using testing::nchw;
using testing::pool_params;
using testing::random_region;
using testing::uniform;

// ---- needed_region against a brute force ----

// The bounding box of the input elements of slot `slot` that the elements of
// `out` read, by the ops' definitions; empty when they read none.
Region brute_force_needed(const Model& model, const Layer& layer, int slot, const Region& out) {
  const Shape& in = model.layers[layer.inputs[slot]].output_shape;
  Region box{in.c, 0, in.h, 0, in.w, 0};
  bool any = false;
  const auto read = [&](int64_t c, int64_t y, int64_t x) {
    EXPECT_TRUE(0 <= c && c < in.c && 0 <= y && y < in.h && 0 <= x && x < in.w)
        << "the brute force read outside the map";
    any = true;
    box = {std::min(box.c0, c),     std::max(box.c1, c + 1), std::min(box.y0, y),
           std::max(box.y1, y + 1), std::min(box.x0, x),     std::max(box.x1, x + 1)};
  };
  // Taps of a window along one axis: input positions `at*stride - pad + tap*dilation`.
  const auto inside = [](int64_t position, int64_t extent) {
    return 0 <= position && position < extent;
  };
  for (int64_t c = out.c0; c < out.c1; ++c)
    for (int64_t y = out.y0; y < out.y1; ++y)
      for (int64_t x = out.x0; x < out.x1; ++x) switch (layer.op) {
          case Op::conv2d: {
            const Conv2dParams& p = layer.conv;
            const int64_t in_per_group = in.c / p.groups;
            const int64_t group = c / (layer.output_shape.c / p.groups);
            for (int64_t ic = group * in_per_group; ic < (group + 1) * in_per_group; ++ic)
              for (int64_t ky = 0; ky < p.kernel_h; ++ky)
                for (int64_t kx = 0; kx < p.kernel_w; ++kx) {
                  const int64_t iy = y * p.stride_h - p.pad_h + ky * p.dilation_h;
                  const int64_t ix = x * p.stride_w - p.pad_w + kx * p.dilation_w;
                  if (inside(iy, in.h) && inside(ix, in.w)) read(ic, iy, ix);
                }
            break;
          }
          case Op::maxpool: {
            const PoolParams& p = layer.pool;
            for (int64_t ky = 0; ky < p.kernel_h; ++ky)
              for (int64_t kx = 0; kx < p.kernel_w; ++kx) {
                const int64_t iy = y * p.stride_h - p.pad_h + ky * p.dilation_h;
                const int64_t ix = x * p.stride_w - p.pad_w + kx * p.dilation_w;
                if (inside(iy, in.h) && inside(ix, in.w)) read(c, iy, ix);
              }
            break;
          }
          case Op::avgpool: {  // PyTorch's window: [start, start + kernel) inside the map
            const PoolParams& p = layer.pool;
            for (int64_t iy = y * p.stride_h - p.pad_h; iy < y * p.stride_h - p.pad_h + p.kernel_h;
                 ++iy)
              for (int64_t ix = x * p.stride_w - p.pad_w;
                   ix < x * p.stride_w - p.pad_w + p.kernel_w; ++ix)
                if (inside(iy, in.h) && inside(ix, in.w)) read(c, iy, ix);
            break;
          }
          case Op::upsample_nearest:
            read(c, y / layer.scale_h, x / layer.scale_w);
            break;
          case Op::concat: {
            int64_t first = 0;  // the slot's first channel in the output
            for (int i = 0; i < slot; ++i) first += model.layers[layer.inputs[i]].output_shape.c;
            if (first <= c && c < first + in.c) read(c - first, y, x);
            break;
          }
          case Op::slice:
            read(c + layer.slice_start, y, x);
            break;
          case Op::channel_shuffle: {  // view [g, C/g] -> transpose -> view
            const int64_t groups = layer.shuffle_groups, per_group = in.c / groups;
            read(c % groups * per_group + c / groups, y, x);
            break;
          }
          case Op::global_avgpool:
            for (int64_t iy = 0; iy < in.h; ++iy)
              for (int64_t ix = 0; ix < in.w; ++ix) read(c, iy, ix);
            break;
          case Op::flatten:  // feature c of [1, C*H*W] is (c / HW, c % HW / W, c % W)
            read(c / (in.h * in.w), c % (in.h * in.w) / in.w, c % in.w);
            break;
          case Op::linear:
            for (int64_t feature = 0; feature < in.c; ++feature) read(feature, 0, 0);
            break;
          default:  // element-wise; mul broadcasts a [1, C, 1, 1] operand
            if (in.h == 1 && in.w == 1)
              read(c, 0, 0);
            else
              read(c, y, x);
            break;
        }
  return any ? box : Region{};
}

// needed_region() of every slot of the model's output layer, for `count`
// random regions of its output (and the whole map, and nothing), equals the
// brute force. Returns how many comparisons it made.
int expect_needed_equals_brute_force(const Model& model, std::mt19937& generator, int count) {
  const Layer& layer = model.layers[model.output];
  std::vector<Region> outs{Region::whole(layer.output_shape)};
  for (int i = 0; i < count; ++i) outs.push_back(random_region(generator, layer.output_shape));
  int compared = 0;
  for (const Region& out : outs)
    for (int slot = 0; slot < static_cast<int>(layer.inputs.size()); ++slot) {
      const Shape& in = model.layers[layer.inputs[slot]].output_shape;
      const Region needed = needed_region(model, layer, slot, out);
      Region expected = brute_force_needed(model, layer, slot, out);
      // Flatten's tile holds whole channel planes: the executor copies the
      // node's features as one contiguous run out of them.
      if (layer.op == Op::flatten && !expected.empty())
        expected = {expected.c0, expected.c1, 0, in.h, 0, in.w};
      if (expected.empty())
        EXPECT_TRUE(needed.empty()) << layer.name << " slot " << slot << ", out " << out.str()
                                    << ": needed " << needed.str() << ", reads nothing";
      else
        EXPECT_EQ(needed, expected)
            << layer.name << " (input " << in.str() << ", output " << layer.output_shape.str()
            << ") slot " << slot << ", out " << out.str();
      EXPECT_TRUE(needed_region(model, layer, slot, Region{}).empty());
      ++compared;
    }
  return compared;
}

constexpr int kModels = 150;          // random models per op
constexpr int kRegionsPerModel = 12;  // random output regions per model

TEST(NeededRegion, Conv2dMatchesBruteForce) {
  std::mt19937 generator(1);
  int compared = 0, depthwise = 0, grouped = 0, dilated = 0, strided3 = 0, over_padded = 0;
  for (int trial = 0; trial < kModels; ++trial) {
    Conv2dParams p;
    p.kernel_h = uniform(generator, 1, 4), p.kernel_w = uniform(generator, 1, 4);
    p.stride_h = uniform(generator, 1, 3), p.stride_w = uniform(generator, 1, 3);
    p.dilation_h = uniform(generator, 1, 2), p.dilation_w = uniform(generator, 1, 2);
    // Up to one row more padding than the dilated kernel reaches: PyTorch
    // allows it, and then some output rows read only padding.
    p.pad_h = uniform(generator, 0, (p.kernel_h - 1) * p.dilation_h + 1);
    p.pad_w = uniform(generator, 0, (p.kernel_w - 1) * p.dilation_w + 1);
    int64_t in_c = 0, out_c = 0;
    switch (trial % 3) {
      case 0:
        p.groups = 1, in_c = uniform(generator, 1, 5), out_c = uniform(generator, 1, 5);
        break;
      case 1:
        p.groups = 2, in_c = 2 * uniform(generator, 1, 3), out_c = 2 * uniform(generator, 1, 3);
        break;
      default:  // depthwise, with a channel multiplier of 1 or 2
        in_c = uniform(generator, 1, 6), p.groups = in_c, out_c = in_c * uniform(generator, 1, 2);
        break;
    }
    const int64_t h = uniform(generator, 1, 10), w = uniform(generator, 1, 10);
    if (window_output_size(h, p.kernel_h, p.stride_h, p.pad_h, p.dilation_h) < 1 ||
        window_output_size(w, p.kernel_w, p.stride_w, p.pad_w, p.dilation_w) < 1)
      continue;
    ModelBuilder b(nchw(1, in_c, h, w), trial);
    b.conv("conv", "input", out_c, p);
    const Model model = b.finish("conv");
    compared += expect_needed_equals_brute_force(model, generator, kRegionsPerModel);
    depthwise += p.groups == in_c && p.groups > 2;
    grouped += p.groups == 2;
    dilated += p.dilation_h == 2 || p.dilation_w == 2;
    strided3 += p.stride_h == 3 || p.stride_w == 3;
    over_padded += p.pad_h > (p.kernel_h - 1) * p.dilation_h;
  }
  // The random draw covers every kind it claims to.
  EXPECT_GT(compared, 1000);
  EXPECT_GT(depthwise, 10);
  EXPECT_GT(grouped, 10);
  EXPECT_GT(dilated, 10);
  EXPECT_GT(strided3, 10);
  EXPECT_GT(over_padded, 10);
}

TEST(NeededRegion, PoolsMatchBruteForce) {
  std::mt19937 generator(2);
  int compared = 0, ceil_mode = 0;
  for (int trial = 0; trial < kModels; ++trial) {
    const Op op = trial % 2 ? Op::maxpool : Op::avgpool;
    PoolParams p;
    p.kernel_h = uniform(generator, 1, 4), p.kernel_w = uniform(generator, 1, 4);
    p.stride_h = uniform(generator, 1, 3), p.stride_w = uniform(generator, 1, 3);
    p.pad_h = uniform(generator, 0, p.kernel_h / 2),
    p.pad_w = uniform(generator, 0, p.kernel_w / 2);
    p.ceil_mode = uniform(generator, 0, 1) == 1;
    if (op == Op::maxpool)
      p.dilation_h = uniform(generator, 1, 2), p.dilation_w = uniform(generator, 1, 2);
    else
      p.count_include_pad = uniform(generator, 0, 1) == 1;
    const int64_t h = uniform(generator, 1, 10), w = uniform(generator, 1, 10);
    if (pool_output_size(h, p.kernel_h, p.stride_h, p.pad_h, p.dilation_h, p.ceil_mode) < 1 ||
        pool_output_size(w, p.kernel_w, p.stride_w, p.pad_w, p.dilation_w, p.ceil_mode) < 1)
      continue;
    ModelBuilder b(nchw(1, uniform(generator, 1, 4), h, w), trial);
    b.pool("pool", op, "input", p);
    const Model model = b.finish("pool");
    compared += expect_needed_equals_brute_force(model, generator, kRegionsPerModel);
    ceil_mode += p.ceil_mode;
  }
  EXPECT_GT(compared, 1000);
  EXPECT_GT(ceil_mode, 30);
}

TEST(NeededRegion, UpsampleMatchesBruteForce) {
  std::mt19937 generator(3);
  for (int trial = 0; trial < kModels; ++trial) {
    ModelBuilder b(
        nchw(1, uniform(generator, 1, 4), uniform(generator, 1, 6), uniform(generator, 1, 6)),
        trial);
    b.upsample("up", "input", uniform(generator, 1, 3), uniform(generator, 1, 3));
    expect_needed_equals_brute_force(b.finish("up"), generator, kRegionsPerModel);
  }
}

TEST(NeededRegion, ConcatSlotsMatchBruteForce) {
  std::mt19937 generator(4);
  for (int trial = 0; trial < kModels; ++trial) {
    const int64_t h = uniform(generator, 1, 5), w = uniform(generator, 1, 5);
    ModelBuilder b(nchw(1, 2, h, w), trial);
    std::vector<std::string> parts;
    const int64_t count = uniform(generator, 2, 4);
    for (int64_t i = 0; i < count; ++i) {
      parts.push_back("part" + std::to_string(i));
      b.conv(parts.back(), "input", uniform(generator, 1, 4), conv_params(1, 1, 0));
    }
    b.concat("joined", parts);
    expect_needed_equals_brute_force(b.finish("joined"), generator, kRegionsPerModel);
  }
}

TEST(NeededRegion, SliceMatchesBruteForce) {
  std::mt19937 generator(5);
  for (int trial = 0; trial < kModels; ++trial) {
    const int64_t channels = uniform(generator, 1, 8);
    ModelBuilder b(nchw(1, channels, uniform(generator, 1, 5), uniform(generator, 1, 5)), trial);
    const int64_t start = uniform(generator, 0, channels - 1);
    b.slice("slice", "input", start, uniform(generator, start + 1, channels));
    expect_needed_equals_brute_force(b.finish("slice"), generator, kRegionsPerModel);
  }
}

TEST(NeededRegion, ChannelShuffleMatchesBruteForce) {
  std::mt19937 generator(6);
  for (int trial = 0; trial < kModels; ++trial) {
    const int64_t groups = uniform(generator, 1, 4), per_group = uniform(generator, 1, 4);
    ModelBuilder b(nchw(1, groups * per_group, uniform(generator, 1, 4), uniform(generator, 1, 4)),
                   trial);
    b.channel_shuffle("shuffled", "input", groups);
    expect_needed_equals_brute_force(b.finish("shuffled"), generator, kRegionsPerModel);
  }
}

TEST(NeededRegion, MulBroadcastAndElementwiseMatchBruteForce) {
  std::mt19937 generator(7);
  for (int trial = 0; trial < kModels; ++trial) {
    ModelBuilder b(
        nchw(1, uniform(generator, 1, 5), uniform(generator, 1, 6), uniform(generator, 1, 6)),
        trial);
    b.global_avgpool("gate", "input");  // [1, C, 1, 1]
    b.unary("relu", Op::relu, "input");
    switch (trial % 4) {
      case 0:
        b.binary("out", Op::mul, "gate", "input");  // the broadcast operand first
        break;
      case 1:
        b.binary("out", Op::mul, "input", "gate");  // ... and second
        break;
      case 2:
        b.binary("out", Op::mul, "input", "relu");
        break;
      default:
        b.binary("out", Op::add, "relu", "input");
        break;
    }
    expect_needed_equals_brute_force(b.finish("out"), generator, kRegionsPerModel);
  }
}

TEST(NeededRegion, GlobalAvgpoolFlattenAndLinearMatchBruteForce) {
  std::mt19937 generator(8);
  for (int trial = 0; trial < kModels; ++trial) {
    const Shape input =
        nchw(1, uniform(generator, 1, 5), uniform(generator, 1, 5), uniform(generator, 1, 5));
    {
      ModelBuilder b(input, trial);
      b.global_avgpool("pooled", "input");
      expect_needed_equals_brute_force(b.finish("pooled"), generator, kRegionsPerModel);
    }
    {
      ModelBuilder b(input, trial);
      b.flatten("flat", "input");
      expect_needed_equals_brute_force(b.finish("flat"), generator, kRegionsPerModel);
    }
    {
      ModelBuilder b(input, trial);
      b.flatten("flat", "input");
      b.linear("fc", "flat", uniform(generator, 1, 6));
      expect_needed_equals_brute_force(b.finish("fc"), generator, kRegionsPerModel);
    }
  }
}

// ---- regions and traffic of whole plans ----

// Every layer's regions lie in its map, are pairwise disjoint and cover it;
// the input layer's are empty (the coordinator holds the input).
void expect_regions_partition(const Model& model, const LayerRegions& regions) {
  ASSERT_EQ(regions.size(), model.layers.size());
  for (const Region& region : regions[0]) EXPECT_TRUE(region.empty());
  for (size_t i = 1; i < model.layers.size(); ++i) {
    const Region whole = Region::whole(model.layers[i].output_shape);
    int64_t covered = 0;
    for (size_t k = 0; k < regions[i].size(); ++k) {
      EXPECT_TRUE(whole.contains(regions[i][k])) << model.layers[i].name << " node " << k + 1;
      covered += regions[i][k].elements();
      for (size_t j = 0; j < k; ++j)
        EXPECT_TRUE(regions[i][k].intersect(regions[i][j]).empty())
            << model.layers[i].name << ": nodes " << j + 1 << " and " << k + 1 << " overlap";
    }
    // Disjoint pieces inside the map with as many elements as the map cover it.
    EXPECT_EQ(covered, whole.elements()) << model.layers[i].name;
  }
}

// Traffic of every node's program against an independent count: a node
// receives, for every input slot, the elements of the needed box outside its
// own stored box (from the coordinator, for the input), and nothing else;
// every piece one node sends another is one the other receives.
// With `owners` (fused tiles: regions overlap), pieces come from their owners,
// and a node that computed all it needs receives nothing.
void expect_traffic_adds_up(const Model& model, const LayerRegions& regions,
                            const LayerRegions& owners = {}) {
  const int nodes = static_cast<int>(regions[0].size());
  const LayerRegions& sources = owners.empty() ? regions : owners;
  std::vector<NodeProgram> programs;
  for (int k = 1; k <= nodes; ++k)
    programs.push_back(build_node_program(model, regions, k, false, owners));
  // (layer, slot, from, to) -> region, as senders and as receivers list them.
  std::map<std::tuple<int, int, int, int>, Region> sent, received;
  uint64_t total_sent = 0, total_received = 0;  // between nodes
  for (int k = 1; k <= nodes; ++k) {
    const NodeProgram& program = programs[k - 1];
    ASSERT_EQ(program.layers.size(), model.layers.size());
    uint64_t expected_received = 0, listed_received = 0, listed_sent = 0;
    std::vector<int> neighbours;
    for (int i = 0; i < static_cast<int>(model.layers.size()); ++i) {
      const Layer& layer = model.layers[i];
      const LayerStep& step = program.layers[i];
      EXPECT_EQ(step.out, regions[i][k - 1]);
      ASSERT_EQ(step.inputs.size(), layer.inputs.size());
      for (int slot = 0; slot < static_cast<int>(layer.inputs.size()); ++slot) {
        const InputSlot& input = step.inputs[slot];
        const int source = layer.inputs[slot];
        const Region needed = needed_region(model, layer, slot, regions[i][k - 1]);
        const Region& own = regions[source][k - 1];
        ASSERT_EQ(input.needed.empty(), needed.empty());
        if (!needed.empty()) {
          EXPECT_EQ(input.needed, needed) << layer.name;
        }
        // |needed \ own|: own is a box, so the difference has |needed| - |needed ∩ own| elements.
        const int64_t outside =
            own.contains(needed) ? 0 : needed.elements() - needed.intersect(own).elements();
        expected_received += static_cast<uint64_t>(outside) * sizeof(float);
        int64_t outside_received = 0;  // of what the pieces bring, the elements not held

        bool any_transfer = false;
        for (const Transfer& piece : input.receives) {
          EXPECT_FALSE(piece.region.empty());
          EXPECT_TRUE(needed.contains(piece.region)) << layer.name;
          EXPECT_NE(piece.peer, k);
          listed_received += piece.region.bytes(sizeof(float));
          if (piece.peer == 0) {
            EXPECT_EQ(model.layers[source].op, Op::input) << layer.name;
            continue;
          }
          EXPECT_TRUE(sources[source][piece.peer - 1].contains(piece.region)) << layer.name;
          received[{i, slot, piece.peer, k}] = piece.region;
          outside_received += piece.region.elements() - piece.region.intersect(own).elements();
          total_received += piece.region.bytes(sizeof(float));
          neighbours.push_back(piece.peer);
          any_transfer = true;
        }
        for (const Transfer& piece : input.sends) {
          EXPECT_GE(piece.peer, 1);
          EXPECT_NE(piece.peer, k);
          EXPECT_TRUE(own.contains(piece.region)) << layer.name;
          sent[{i, slot, k, piece.peer}] = piece.region;
          listed_sent += piece.region.bytes(sizeof(float));
          total_sent += piece.region.bytes(sizeof(float));
          neighbours.push_back(piece.peer);
          any_transfer = true;
        }
        if (any_transfer) {
          EXPECT_TRUE(input.exchange) << layer.name << " node " << k;
        }
        // The pieces (disjoint: each from its owner) bring every needed
        // element the node does not hold; partitions move nothing it holds.
        if (model.layers[source].op != Op::input) {
          EXPECT_EQ(outside_received, outside) << layer.name << " node " << k;
        }
        for (int j = 1; j <= nodes; ++j)
          EXPECT_EQ(programs[j - 1].layers[i].inputs[slot].exchange, input.exchange)
              << layer.name << " slot " << slot << ": nodes " << j << " and " << k;
        if (input.direct) {  // read in place: a channel range of its own stored box
          EXPECT_TRUE(own.contains(needed)) << layer.name;
          EXPECT_TRUE(input.receives.empty()) << layer.name;
        }
      }
    }
    if (owners.empty()) {
      EXPECT_EQ(listed_received, expected_received) << "node " << k;
    } else {  // fused: a piece the node holds part of may move whole
      EXPECT_GE(listed_received, expected_received) << "node " << k;
    }
    EXPECT_EQ(program.bytes_received, listed_received) << "node " << k;
    EXPECT_EQ(program.bytes_sent, listed_sent + regions[model.output][k - 1].bytes(sizeof(float)))
        << "node " << k;
    std::sort(neighbours.begin(), neighbours.end());
    neighbours.erase(std::unique(neighbours.begin(), neighbours.end()), neighbours.end());
    EXPECT_EQ(program.neighbours, neighbours) << "node " << k;
  }
  EXPECT_EQ(total_sent, total_received);
  EXPECT_EQ(sent, received);
  // A slot is exchanged exactly when some node sends some other node a piece of it.
  for (int i = 0; i < static_cast<int>(model.layers.size()); ++i)
    for (int slot = 0; slot < static_cast<int>(model.layers[i].inputs.size()); ++slot) {
      bool moves = false;
      for (const auto& [key, region] : sent)
        moves = moves || (std::get<0>(key) == i && std::get<1>(key) == slot);
      EXPECT_EQ(programs[0].layers[i].inputs[slot].exchange, moves)
          << model.layers[i].name << " slot " << slot;
    }
}

struct NamedPlan {
  std::string name;
  LayerRegions regions;
};

std::vector<NamedPlan> plans_for(const Model& model) {
  std::vector<NamedPlan> plans;
  for (int rows = 1; rows <= 7; ++rows)
    plans.push_back({"rows" + std::to_string(rows), spatial_regions(model, rows, 1)});
  for (const auto& [rows, cols] :
       std::vector<std::pair<int, int>>{{1, 2}, {1, 4}, {2, 2}, {2, 3}, {3, 2}, {3, 3}, {4, 4}})
    plans.push_back({"grid" + std::to_string(rows) + "x" + std::to_string(cols),
                     spatial_regions(model, rows, cols)});
  for (int nodes : {2, 3, 4, 5, 9})
    plans.push_back({"channel" + std::to_string(nodes), channel_regions(model, nodes)});
  return plans;
}

TEST(PlanTraffic, RandomStacksPartitionTheirMapsAndTrafficAddsUp) {
  int with_empty_regions = 0, thinner_than_halo = 0;
  for (uint32_t seed = 1; seed <= 80; ++seed) {
    const Model model = testing::random_stack(seed);
    for (const NamedPlan& plan : plans_for(model)) {
      SCOPED_TRACE("seed " + std::to_string(seed) + ", " + plan.name);
      expect_regions_partition(model, plan.regions);
      expect_traffic_adds_up(model, plan.regions);
      for (size_t i = 1; i < model.layers.size(); ++i)
        for (size_t k = 0; k < plan.regions[i].size(); ++k) {
          with_empty_regions += plan.regions[i][k].empty();
          // A node receiving from a node two away holds a tile thinner than the halo.
          const NodeProgram program =
              build_node_program(model, plan.regions, static_cast<int>(k + 1));
          for (const InputSlot& input : program.layers[i].inputs)
            for (const Transfer& piece : input.receives)
              thinner_than_halo += plan.name.rfind("rows", 0) == 0 && piece.peer != 0 &&
                                   std::abs(piece.peer - static_cast<int>(k + 1)) >= 2;
        }
      if (HasFailure()) return;  // one plan's failures tell enough
    }
  }
  EXPECT_GT(with_empty_regions, 100);
  EXPECT_GT(thinner_than_halo, 100);
}

TEST(PlanTraffic, HandBuiltGraphsPartitionTheirMapsAndTrafficAddsUp) {
  ModelBuilder b(nchw(1, 4, 13, 11));
  b.conv("conv_s2", "input", 8, conv_params(3, 2, 1, 2));
  b.conv("dilated", "conv_s2", 8, conv_params(3, 1, 2, 8, 2));
  b.binary("residual", Op::add, "dilated", "conv_s2");
  b.pool("maxpool", Op::maxpool, "residual", pool_params(3, 2, 1, true));
  b.global_avgpool("squeeze", "maxpool");
  b.binary("excite", Op::mul, "squeeze", "maxpool");
  b.slice("half", "excite", 2, 6);
  b.upsample("up", "half", 2, 3);
  b.channel_shuffle("shuffled", "up", 2);
  b.conv("branch", "maxpool", 4, conv_params(1, 1, 0));
  b.pool("avgpool", Op::avgpool, "maxpool", pool_params(3, 1, 1));
  b.concat("joined", {"branch", "avgpool"});
  b.flatten("flatten", "joined");
  b.linear("fc", "flatten", 7);
  const Model model = b.finish("fc");
  for (const NamedPlan& plan : plans_for(model)) {
    SCOPED_TRACE(plan.name);
    expect_regions_partition(model, plan.regions);
    expect_traffic_adds_up(model, plan.regions);
  }
}

// Rows thinner than the halo, by hand: eight nodes, one row each, and 5x5
// convolutions (a halo of two rows each side).
TEST(PlanTraffic, OneRowPerNodeReceivesFromTwoNeighboursEachSide) {
  ModelBuilder b(nchw(1, 2, 8, 6));
  b.conv("conv1", "input", 3, conv_params(5, 1, 2));  // 3x8x6
  b.conv("conv2", "conv1", 2, conv_params(5, 1, 2));  // 2x8x6
  const Model model = b.finish("conv2");
  const LayerRegions regions = spatial_regions(model, 8, 1);
  const int conv2 = model.find("conv2");
  const uint64_t row_bytes = 3 * 6 * sizeof(float);  // one row of conv1: 3 channels x 6 columns
  {
    // Node 4 computes conv2's row 3, which reads conv1's rows 1..5: it holds
    // row 3 and receives rows 1, 2, 4 and 5 from nodes 2, 3, 5 and 6.
    const NodeProgram program = build_node_program(model, regions, 4);
    const InputSlot& input = program.layers[conv2].inputs[0];
    EXPECT_EQ(input.needed, (Region{0, 3, 1, 6, 0, 6}));
    ASSERT_EQ(input.receives.size(), 4u);
    const int peers[] = {2, 3, 5, 6};
    const int64_t rows[] = {1, 2, 4, 5};
    for (size_t i = 0; i < 4; ++i) {
      EXPECT_EQ(input.receives[i].peer, peers[i]);
      EXPECT_EQ(input.receives[i].region, (Region{0, 3, rows[i], rows[i] + 1, 0, 6}));
    }
    // It sends its row 3 to the same four.
    ASSERT_EQ(input.sends.size(), 4u);
    for (size_t i = 0; i < 4; ++i) EXPECT_EQ(input.sends[i].region, (Region{0, 3, 3, 4, 0, 6}));
    EXPECT_EQ(program.neighbours, (std::vector<int>{2, 3, 5, 6}));
    // conv1 row 3 needs input rows 1..5 (5 rows x 2 channels x 6 columns)
    // from the coordinator; conv2 four rows of conv1.
    EXPECT_EQ(program.bytes_received, 5u * 2 * 6 * sizeof(float) + 4 * row_bytes);
    // Four rows of conv1 to the neighbours, one row of conv2 to the coordinator.
    EXPECT_EQ(program.bytes_sent, 4 * row_bytes + 2u * 6 * sizeof(float));
  }
  {
    // Node 1 (row 0) reads rows 0..2: rows 1 and 2 from nodes 2 and 3.
    const NodeProgram program = build_node_program(model, regions, 1);
    const InputSlot& input = program.layers[conv2].inputs[0];
    EXPECT_EQ(input.needed, (Region{0, 3, 0, 3, 0, 6}));
    ASSERT_EQ(input.receives.size(), 2u);
    EXPECT_EQ(input.receives[0].peer, 2);
    EXPECT_EQ(input.receives[1].peer, 3);
    EXPECT_EQ(program.neighbours, (std::vector<int>{2, 3}));
  }
}

}  // namespace
// ---- fused tiles and branches ----

// Owners partition every map and lie inside the regions; inside a block
// nothing moves unless tiles reuse their neighbours' borders.
void expect_fused_plan(const Model& model, const FusedRegions& fused, bool reuse) {
  expect_regions_partition(model, fused.owners);
  for (size_t i = 0; i < model.layers.size(); ++i)
    for (size_t k = 0; k < fused.regions[i].size(); ++k) {
      EXPECT_TRUE(fused.regions[i][k].contains(fused.owners[i][k])) << model.layers[i].name;
      EXPECT_TRUE(Region::whole(model.layers[i].output_shape).contains(fused.regions[i][k]));
    }
  expect_traffic_adds_up(model, fused.regions, fused.owners);
  if (reuse) return;
  for (size_t k = 1; k <= fused.regions[0].size(); ++k) {
    const NodeProgram program =
        build_node_program(model, fused.regions, static_cast<int>(k), false, fused.owners);
    for (size_t i = 1; i < model.layers.size(); ++i)
      for (size_t slot = 0; slot < model.layers[i].inputs.size(); ++slot) {
        const int source = model.layers[i].inputs[slot];
        if (fused.block[i] != 0 && fused.block[source] == fused.block[i]) {
          EXPECT_TRUE(program.layers[i].inputs[slot].receives.empty()) << model.layers[i].name;
          EXPECT_FALSE(program.layers[i].inputs[slot].exchange) << model.layers[i].name;
        }
      }
  }
}

// The receptive-field walk of fused_regions() against a brute force: walking
// back from each node's tile of a block's last layer, every layer's region is
// the bounding box of the elements its consumers in the block read, found by
// enumerating every tap of every computed element.
TEST(FusedRegions, WalkMatchesBruteForceOnRandomStacks) {
  int grown = 0, blocks_cut = 0;
  for (uint32_t seed = 1; seed <= 60; ++seed) {
    const Model model = testing::random_stack(seed);
    for (const auto& [rows, cols] :
         std::vector<std::pair<int, int>>{{2, 1}, {1, 3}, {2, 2}, {3, 3}, {4, 1}})
      for (int fuse : {0, 2, 3})
        for (bool reuse : {false, true}) {
          SCOPED_TRACE("seed " + std::to_string(seed) + ", grid " + std::to_string(rows) + "x" +
                       std::to_string(cols) + ", fuse " + std::to_string(fuse) +
                       (reuse ? ", reuse" : ""));
          const FusedRegions fused = fused_regions(model, rows, cols, fuse, reuse);
          const LayerRegions tiles = spatial_regions(model, rows, cols);
          EXPECT_EQ(fused.owners, tiles);
          LayerRegions expected = tiles;
          for (int k = 0; k < rows * cols; ++k) {
            if (reuse && (k / cols + k % cols) % 2 == 1) continue;  // fetches, does not recompute
            for (int j = static_cast<int>(model.layers.size()) - 1; j >= 1; --j)
              for (size_t slot = 0; slot < model.layers[j].inputs.size(); ++slot) {
                const int source = model.layers[j].inputs[slot];
                if (fused.block[j] == 0 || fused.block[source] != fused.block[j]) continue;
                const Region read = brute_force_needed(model, model.layers[j],
                                                       static_cast<int>(slot), expected[j][k]);
                Region& box = expected[source][k];
                if (box.empty())
                  box = read;
                else if (!read.empty())
                  box = {std::min(box.c0, read.c0), std::max(box.c1, read.c1),
                         std::min(box.y0, read.y0), std::max(box.y1, read.y1),
                         std::min(box.x0, read.x0), std::max(box.x1, read.x1)};
              }
          }
          EXPECT_EQ(fused.regions, expected);
          for (size_t i = 1; i < model.layers.size(); ++i) {
            for (int k = 0; k < rows * cols; ++k) grown += !(fused.regions[i][k] == tiles[i][k]);
            blocks_cut += fuse > 0 && fused.block[i] > 1 && fused.block[i - 1] != fused.block[i];
          }
          expect_fused_plan(model, fused, reuse);
          if (HasFailure()) return;
        }
  }
  EXPECT_GT(grown, 500);
  EXPECT_GT(blocks_cut, 50);
}

TEST(FusedRegions, BlocksStopAtMapsWithoutRowsAndCols) {
  ModelBuilder b(nchw(1, 3, 16, 16));
  b.conv("conv1", "input", 4, conv_params(3, 1, 1));
  b.conv("conv2", "conv1", 4, conv_params(3, 2, 1));
  b.global_avgpool("pool", "conv2");
  b.flatten("flatten", "pool");
  b.linear("fc", "flatten", 5);
  const Model model = b.finish("fc");
  const FusedRegions fused = fused_regions(model, 2, 2, 0, false);
  EXPECT_EQ(fused.block, (std::vector<int>{0, 1, 1, 0, 0, 0}));
  // Node 4 owns rows and columns 4..7 of conv2 (8x8, 3x3 stride 2 pad 1):
  // they read conv1's rows and columns 7..15, one more than its own 8..15.
  EXPECT_EQ(fused.regions[2][3], (Region{0, 4, 4, 8, 4, 8}));
  EXPECT_EQ(fused.regions[1][3], (Region{0, 4, 7, 16, 7, 16}));
  // Node 1's tile 0..3 reads conv1's rows and columns 0..7: its own tile.
  EXPECT_EQ(fused.regions[1][0], (Region{0, 4, 0, 8, 0, 8}));
  expect_fused_plan(model, fused, false);
}

Model two_branch_model() {
  ModelBuilder b(nchw(1, 3, 12, 12));
  b.conv("a1", "input", 4, conv_params(3, 2, 1));
  b.conv("a2", "a1", 4, conv_params(3, 1, 1));
  b.binary("a_res", Op::add, "a2", "a1");
  b.global_avgpool("a_pool", "a_res");
  b.flatten("a_flat", "a_pool");
  b.conv("b1", "input", 6, conv_params(3, 1, 1));
  b.pool("b2", Op::maxpool, "b1", pool_params(2, 2, 0));
  b.global_avgpool("b_pool", "b2");
  b.flatten("b_flat", "b_pool");
  b.concat("joined", {"a_flat", "b_flat"});
  b.linear("fc", "joined", 5);
  return b.finish("fc");
}

TEST(Branches, FoundUpToTheJoin) {
  const Model model = two_branch_model();
  EXPECT_EQ(independent_branches(model), (std::vector<int>{-1, 0, 0, 0, 0, 0, 1, 1, 1, 1, -1, -1}));
  EXPECT_THROW(independent_branches(testing::random_stack(3)), Error);
  EXPECT_THROW(branch_regions(model, independent_branches(model), 1), Error);
}

TEST(Branches, NothingMovesBetweenGroupsBeforeTheJoin) {
  const Model model = two_branch_model();
  const std::vector<int> branches = independent_branches(model);
  for (int nodes = 2; nodes <= 5; ++nodes) {
    SCOPED_TRACE(std::to_string(nodes) + " nodes");
    const LayerRegions regions = branch_regions(model, branches, nodes);
    expect_regions_partition(model, regions);
    expect_traffic_adds_up(model, regions);
    // Node k is in group (k - 1) * 2 / nodes... as share() cuts: the group of
    // a node is the branch whose layers it computes.
    std::vector<int> group(nodes + 1, -1);
    for (size_t i = 1; i < model.layers.size(); ++i)
      for (int k = 1; k <= nodes; ++k)
        if (branches[i] >= 0 && !regions[i][k - 1].empty()) {
          EXPECT_TRUE(group[k] < 0 || group[k] == branches[i]) << "node " << k;
          group[k] = branches[i];
        }
    for (int k = 1; k <= nodes; ++k) {
      EXPECT_GE(group[k], 0) << "node " << k << " computes no branch";
      const NodeProgram program = build_node_program(model, regions, k);
      for (size_t i = 1; i < model.layers.size(); ++i) {
        if (branches[i] < 0) continue;
        for (const InputSlot& input : program.layers[i].inputs) {
          for (const Transfer& piece : input.receives)
            EXPECT_TRUE(piece.peer == 0 || group[piece.peer] == group[k]) << model.layers[i].name;
          for (const Transfer& piece : input.sends)
            EXPECT_EQ(group[piece.peer], group[k]) << model.layers[i].name;
        }
      }
    }
  }
}

}  // namespace splitinfer
