#include "strategies.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "../src/error.hpp"

namespace splitinfer {
namespace {

// Part `index` of `parts` near-equal parts of [0, extent): [begin, end).
std::pair<int64_t, int64_t> share(int64_t extent, int index, int parts) {
  return {extent * index / parts, extent * (index + 1) / parts};
}

// Part `index` of [0, extent) cut in proportion to `weights` (one per part;
// empty: near-equal parts, share()): cuts rounded to the nearest whole, each
// part possibly empty.
std::pair<int64_t, int64_t> weighted_share(int64_t extent, int index,
                                           const std::vector<double>& weights, int parts) {
  if (weights.empty()) return share(extent, index, parts);
  double total = 0, before = 0;
  for (size_t k = 0; k < weights.size(); ++k) {
    total += weights[k];
    if (static_cast<int>(k) < index) before += weights[k];
  }
  const auto cut = [&](double weight_before, int at) {
    if (at >= parts) return extent;
    return std::clamp<int64_t>(std::llround(static_cast<double>(extent) * weight_before / total),
                               0, extent);
  };
  return {cut(before, index), cut(before + weights[index], index + 1)};
}

Region channel_share(const Shape& shape, int index, int parts,
                     const std::vector<double>& shares = {}) {
  const auto [c0, c1] = weighted_share(shape.c, index, shares, parts);
  return {c0, c1, 0, shape.h, 0, shape.w};
}

void check_shares(const std::vector<double>& shares, int nodes) {
  if (shares.empty()) return;
  if (static_cast<int>(shares.size()) != nodes)
    throw Error("internal: " + std::to_string(shares.size()) + " shares for " +
                std::to_string(nodes) + " nodes");
  for (double weight : shares)
    if (!(weight > 0 && weight < 1e300)) throw Error("internal: a node's share must be positive");
}

// A spatial map (rank 4, more than one pixel): what tiles cut.
bool spatial_map(const Shape& shape) { return shape.rank != 2 && shape.h * shape.w > 1; }

}  // namespace

LayerRegions spatial_regions(const Model& model, int grid_rows, int grid_cols,
                             const std::vector<double>& shares) {
  const int nodes = grid_rows * grid_cols;
  check_shares(shares, nodes);
  // A grid row's share is its tiles' together, a column's likewise.
  std::vector<double> row_shares, col_shares;
  if (!shares.empty()) {
    row_shares.assign(grid_rows, 0.0);
    col_shares.assign(grid_cols, 0.0);
    for (int k = 0; k < nodes; ++k) {
      row_shares[k / grid_cols] += shares[k];
      col_shares[k % grid_cols] += shares[k];
    }
  }
  LayerRegions regions(model.layers.size(), std::vector<Region>(nodes));
  for (size_t i = 1; i < model.layers.size(); ++i) {
    const Shape& shape = model.layers[i].output_shape;
    for (int k = 0; k < nodes; ++k) {
      if (shape.rank == 2 || shape.h * shape.w == 1) {
        regions[i][k] = channel_share(shape, k, nodes, shares);
        continue;
      }
      const auto [y0, y1] = weighted_share(shape.h, k / grid_cols, row_shares, grid_rows);
      const auto [x0, x1] = weighted_share(shape.w, k % grid_cols, col_shares, grid_cols);
      regions[i][k] = {0, shape.c, y0, y1, x0, x1};
    }
  }
  return regions;
}

LayerRegions spatial_row_regions(const Model& model, const std::vector<double>& shares) {
  LayerRegions regions = spatial_regions(model, static_cast<int>(shares.size()), 1, shares);
  // The maps cut by channels stay near-equal (rebalancing moves rows only).
  const LayerRegions equal = spatial_regions(model, static_cast<int>(shares.size()), 1);
  for (size_t i = 1; i < model.layers.size(); ++i)
    if (!spatial_map(model.layers[i].output_shape)) regions[i] = equal[i];
  return regions;
}

LayerRegions channel_regions(const Model& model, int nodes, const std::vector<double>& shares) {
  check_shares(shares, nodes);
  LayerRegions regions(model.layers.size(), std::vector<Region>(nodes));
  for (size_t i = 1; i < model.layers.size(); ++i)
    for (int k = 0; k < nodes; ++k)
      regions[i][k] = channel_share(model.layers[i].output_shape, k, nodes, shares);
  return regions;
}

std::vector<int> fused_blocks(const Model& model, int fuse) {
  const int count = static_cast<int>(model.layers.size());
  // Blocks: runs of consecutive spatial layers, cut every `fuse` layers.
  std::vector<int> block(count, 0);
  int blocks = 0, length = 0;
  for (int i = 1; i < count; ++i) {
    if (!spatial_map(model.layers[i].output_shape)) {
      length = 0;
      continue;
    }
    if (length == 0 || (fuse > 0 && length == fuse)) ++blocks, length = 0;
    block[i] = blocks;
    ++length;
  }
  return block;
}

FusedRegions fused_regions(const Model& model, int grid_rows, int grid_cols, int fuse, bool reuse,
                           const std::vector<double>& shares) {
  return fused_regions_in_blocks(model, grid_rows, grid_cols, fused_blocks(model, fuse), reuse,
                                 shares);
}

FusedRegions fused_regions_in_blocks(const Model& model, int grid_rows, int grid_cols,
                                     std::vector<int> block, bool reuse,
                                     const std::vector<double>& shares) {
  const int count = static_cast<int>(model.layers.size());
  const int nodes = grid_rows * grid_cols;
  FusedRegions fused;
  fused.owners = spatial_regions(model, grid_rows, grid_cols, shares);
  fused.regions = fused.owners;
  fused.block = std::move(block);
  for (int k = 0; k < nodes; ++k) {
    const bool recomputes = !reuse || (k / grid_cols + k % grid_cols) % 2 == 0;
    if (!recomputes) continue;
    // Walk each block backwards: a layer's region grows to what its
    // consumers in the same block read of it.
    for (int j = count - 1; j >= 1; --j) {
      if (fused.block[j] == 0) continue;
      const Layer& layer = model.layers[j];
      for (size_t slot = 0; slot < layer.inputs.size(); ++slot) {
        const int source = layer.inputs[slot];
        if (fused.block[source] != fused.block[j]) continue;
        Region& grown = fused.regions[source][k];
        grown = grown.bounding(
            needed_region(model, layer, static_cast<int>(slot), fused.regions[j][k]));
      }
    }
  }
  return fused;
}

StreamGroups stream_runs(const Model& model, const std::vector<int>& block, bool at_expansions) {
  const int count = static_cast<int>(model.layers.size());
  std::vector<int> last_reader(count, 0);
  for (int i = 0; i < count; ++i)
    for (int source : model.layers[i].inputs)
      last_reader[source] = std::max(last_reader[source], i);
  std::vector<bool> can(count, false);
  for (int i = 1; i < count; ++i) can[i] = streamable_layer(model.layers[i]);
  // A layer of a run ends where the next layer cannot follow it.
  const auto joined = [&](int i) {  // i and i + 1 may be in one run
    if (i + 1 >= count || !can[i] || !can[i + 1]) return false;
    if (!block.empty() && (block[i] == 0 || block[i] != block[i + 1])) return false;
    const auto bytes = [&](int layer) {
      return model.layers[layer].output_shape.elements() * dtype_bytes(model.layers[layer].dtype);
    };
    return !at_expansions || bytes(i) >= bytes(i + 1);
  };
  StreamGroups groups;
  for (int start = 1; start < count;) {
    int end = start;  // the segment [start, end] of layers joined one to the next
    while (joined(end)) ++end;
    // The longest runs in it whose earlier layers are read only inside them.
    for (int first = start; first < end;) {
      int last = -1, reach = 0;
      for (int e = first + 1; e <= end && e - 1 != model.output; ++e) {
        reach = std::max(reach, last_reader[e - 1]);
        if (reach <= e) last = e;
      }
      if (last < 0) {
        ++first;
        continue;
      }
      groups.push_back({first, last, 0, 0, 0});
      first = last + 1;
    }
    start = end + 1;
  }
  return groups;
}

StreamGroups deep_runs(const Model& model) {
  const int count = static_cast<int>(model.layers.size());
  std::vector<int> last_reader(count, 0);
  for (int i = 0; i < count; ++i)
    for (int source : model.layers[i].inputs)
      last_reader[source] = std::max(last_reader[source], i);
  StreamGroups groups;
  uint64_t smallest = std::numeric_limits<uint64_t>::max();
  int reach = 0;
  for (int last = 1; last < count && streamable_layer(model.layers[last]); ++last) {
    if (last > 1) reach = std::max(reach, last_reader[last - 1]);
    if (last - 1 == model.output) break;
    const Layer& layer = model.layers[last];
    const uint64_t bytes = layer.output_shape.elements() * dtype_bytes(layer.dtype);
    if (last < 2 || reach > last || bytes >= smallest) continue;
    smallest = bytes;
    groups.push_back({1, last, 0, 0, 0});
  }
  return groups;
}

StreamedRegions stream_regions(const Model& model, const LayerRegions& regions,
                               const LayerRegions& owners, const StreamGroups& groups) {
  StreamedRegions streamed;
  streamed.regions = regions;
  const int nodes = static_cast<int>(regions[0].size());
  for (const StreamGroup& group : groups) {
    LayerRegions grown = streamed.regions;
    bool streams = true;
    for (int k = 0; k < nodes && streams; ++k) {
      if (grown[group.last][k].empty()) {
        for (int j = group.first; j < group.last; ++j) streams = streams && grown[j][k].empty();
        continue;
      }
      for (int j = group.last; j > group.first; --j) {
        const Layer& layer = model.layers[j];
        for (size_t slot = 0; slot < layer.inputs.size(); ++slot) {
          const int source = layer.inputs[slot];
          if (source < group.first) continue;
          grown[source][k] = grown[source][k].bounding(
              needed_region(model, layer, static_cast<int>(slot), grown[j][k]));
        }
      }
    }
    if (!streams) continue;
    streamed.regions = std::move(grown);
    streamed.groups.push_back(group);
  }
  streamed.owners = streamed.groups.empty() || !owners.empty() ? owners : regions;
  return streamed;
}

std::vector<int> independent_branches(const Model& model) {
  const int count = static_cast<int>(model.layers.size());
  // Union-find over the layers seen so far, joined along their edges (the
  // input layer, which every branch reads, joins nothing).
  std::vector<int> parent(count);
  std::iota(parent.begin(), parent.end(), 0);
  const auto find = [&](int i) {
    while (parent[i] != i) i = parent[i] = parent[parent[i]];
    return i;
  };
  int join = count;
  for (int i = 1; i < count && join == count; ++i) {
    std::vector<int> parts;
    for (int source : model.layers[i].inputs)
      if (model.layers[source].op != Op::input) parts.push_back(find(source));
    std::sort(parts.begin(), parts.end());
    parts.erase(std::unique(parts.begin(), parts.end()), parts.end());
    if (parts.size() > 1) {
      join = i;
      break;
    }
    for (int part : parts) parent[find(i)] = part;
  }
  std::vector<int> branch(count, -1), numbers(count, -1);
  int branches = 0;
  for (int i = 1; i < join; ++i) {
    int& number = numbers[find(i)];
    if (number < 0) number = branches++;
    branch[i] = number;
  }
  if (join == count || branches < 2)
    throw Error("model '" + model.name +
                "' has no independent branches (parts of the graph that only the input and a "
                "later join connect); use another strategy");
  return branch;
}

LayerRegions branch_regions(const Model& model, const std::vector<int>& branches, int nodes) {
  const int groups = *std::max_element(branches.begin(), branches.end()) + 1;
  if (nodes < groups)
    throw Error("model '" + model.name + "' has " + std::to_string(groups) +
                " independent branches, so the branches strategy needs --nodes " +
                std::to_string(groups) + " at least");
  LayerRegions regions = spatial_regions(model, nodes, 1);
  for (int g = 0; g < groups; ++g) {
    const auto [first, end] = share(nodes, g, groups);  // the group's nodes [first, end)
    const int size = static_cast<int>(end - first);
    const LayerRegions within = spatial_regions(model, size, 1);
    for (size_t i = 1; i < model.layers.size(); ++i) {
      if (branches[i] != g) continue;
      for (int k = 0; k < nodes; ++k)
        regions[i][k] = k >= first && k < end ? within[i][k - first] : Region{};
    }
  }
  return regions;
}

}  // namespace splitinfer
