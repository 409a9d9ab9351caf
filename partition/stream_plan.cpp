#include "stream_plan.hpp"

#include <algorithm>
#include <limits>

#include "strategies.hpp"

namespace splitinfer {
namespace {

// Rows per band of `run` under `budget` bytes (see StreamParts), or 0 when
// the run stays whole: some node cuts one of its layers by channels, or
// every node's band would hold its whole region anyway.
int64_t budget_rows(const Model& model, const Plan& plan, const StreamGroup& run, uint64_t budget) {
  int64_t rows = std::numeric_limits<int64_t>::max(), tallest = 0;
  bool spatial = true;
  for (int k = 0; k < plan.nodes && spatial; ++k) {
    const Region& last = plan.regions[run.last][k];
    uint64_t widest = 0;  // bytes per row of `last`
    for (int j = run.first; j <= run.last; ++j) {
      const Region& region = plan.regions[j][k];
      const Shape& shape = model.layers[j].output_shape;
      spatial = spatial && (region.empty() || (region.c0 == 0 && region.c1 == shape.c));
      if (j < run.last && !last.empty())
        widest = std::max(widest, region.bytes(dtype_bytes(model.layers[j].dtype)) /
                                      static_cast<uint64_t>(last.y1 - last.y0));
    }
    if (last.empty() || widest == 0) continue;
    // Streamed, a run holds a layer's weights (copied into RAM for every
    // band) beside two bands; whole, a layer's input and output beside a
    // budget's worth of its weights (channel_streams()). A run whose weights
    // outweigh its maps (a late stage: small maps, many channels) stays whole.
    if (!plan.weights_in_place) {
      uint64_t weights = 0, maps = 0;
      for (int j = run.first; j <= run.last; ++j) {
        const Layer& layer = model.layers[j];
        const uint64_t out = plan.regions[j][k].bytes(dtype_bytes(layer.dtype));
        weights = std::max(weights, weight_slice_bytes(layer, plan.regions[j][k], true));
        for (size_t slot = 0; slot < layer.inputs.size(); ++slot) {
          // The input as held, and a tile of it with its halo beside it.
          const Region& held = plan.regions[layer.inputs[slot]][k];
          const Region needed =
              needed_region(model, layer, static_cast<int>(slot), plan.regions[j][k]);
          const size_t bytes = dtype_bytes(model.layers[layer.inputs[slot]].dtype);
          maps = std::max(
              maps, out + needed.bytes(bytes) + (held.contains(needed) ? 0 : held.bytes(bytes)));
        }
      }
      if (weights + 2 * budget > maps + std::min(weights, budget)) return 0;
    }
    tallest = std::max(tallest, last.y1 - last.y0);
    rows = std::min(rows, std::max<int64_t>(1, static_cast<int64_t>(budget / widest)));
  }
  return !spatial || tallest == 0 || rows >= tallest ? 0 : rows;
}

// The bytes of the largest part of a map of `run` before its last layer,
// or of the model input a part reads, when the node's region `last` of
// the run's last layer is cut into parts of `rows` x `cols` (0: whole):
// a part in the middle of the region, walked back through the run.
uint64_t largest_part_bytes(const Model& model, const StreamGroup& run, const Region& last,
                            int64_t rows, int64_t cols) {
  Region part = last;
  const auto middle = [](int64_t& begin, int64_t& end, int64_t size) {
    if (size <= 0 || size >= end - begin) return;
    begin += (end - begin - size) / 2;
    end = begin + size;
  };
  middle(part.y0, part.y1, rows);
  middle(part.x0, part.x1, cols);
  std::vector<Region> box(run.last - run.first + 1);
  box.back() = part;
  uint64_t largest = 0;
  for (int j = run.last; j >= run.first; --j) {
    const Layer& layer = model.layers[j];
    const Region& out = box[j - run.first];
    if (out.empty()) continue;
    if (j < run.last) largest = std::max(largest, out.bytes(dtype_bytes(layer.dtype)));
    for (size_t slot = 0; slot < layer.inputs.size(); ++slot) {
      const int source = layer.inputs[slot];
      const Region needed = needed_region(model, layer, static_cast<int>(slot), out);
      if (source >= run.first)
        box[source - run.first] = box[source - run.first].bounding(needed);
      else if (model.layers[source].op == Op::input)
        largest = std::max(largest, needed.bytes(dtype_bytes(model.layers[source].dtype)));
    }
  }
  return largest;
}

// The parts of a deep run (StreamParts::deep) under `budget` on every node:
// the most rows of whole-row bands whose parts fit, else the largest square
// tiles (at least 1x1). False when some node cuts one of its layers by
// channels.
bool deep_parts(const Model& model, const Plan& plan, StreamGroup& run, uint64_t budget) {
  int64_t tallest = 0, widest = 0;
  for (int k = 0; k < plan.nodes; ++k) {
    for (int j = run.first; j <= run.last; ++j) {
      const Region& region = plan.regions[j][k];
      if (!region.empty() && (region.c0 != 0 || region.c1 != model.layers[j].output_shape.c))
        return false;
    }
    const Region& last = plan.regions[run.last][k];
    if (last.empty()) continue;
    tallest = std::max(tallest, last.y1 - last.y0);
    widest = std::max(widest, last.x1 - last.x0);
  }
  if (tallest == 0) return false;
  const auto fits = [&](int64_t rows, int64_t cols) {
    for (int k = 0; k < plan.nodes; ++k) {
      const Region& last = plan.regions[run.last][k];
      if (!last.empty() && largest_part_bytes(model, run, last, rows, cols) > budget) return false;
    }
    return true;
  };
  // The largest size in [1, most] that fits (a part's bytes grow with its
  // size), 0 when none does.
  const auto largest = [](int64_t most, const auto& fits_size) {
    int64_t low = 0, high = most;  // fits_size(low) or low == 0; high + 1 does not fit
    while (low < high) {
      const int64_t middle = (low + high + 1) / 2;
      if (fits_size(middle))
        low = middle;
      else
        high = middle - 1;
    }
    return low;
  };
  if (const int64_t rows = largest(tallest, [&](int64_t r) { return fits(r, 0); })) {
    run.part_rows = rows, run.part_cols = 0;
    return true;
  }
  const int64_t side =
      largest(std::min(tallest, widest), [&](int64_t side) { return fits(side, side); });
  run.part_rows = run.part_cols = std::max<int64_t>(side, 1);
  return true;
}

// Conv2d and linear layers outside `streamed` whose weight slice on some
// node is over `budget` bytes, each streaming its weights by output channels.
StreamGroups channel_streams(const Model& model, const Plan& plan,
                             const std::vector<bool>& streamed, uint64_t budget) {
  StreamGroups groups;
  for (size_t i = 1; i < model.layers.size(); ++i) {
    const Layer& layer = model.layers[i];
    if (streamed[i] || (layer.op != Op::conv2d && layer.op != Op::linear)) continue;
    int64_t channels = std::numeric_limits<int64_t>::max(), widest = 0;
    for (int k = 0; k < plan.nodes; ++k) {
      const Region& region = plan.regions[i][k];
      if (region.empty()) continue;
      const uint64_t bytes = weight_slice_bytes(layer, region, true);
      if (bytes <= budget) continue;
      const uint64_t per_channel = std::max<uint64_t>(1, bytes / (region.c1 - region.c0));
      channels = std::min(channels, std::max<int64_t>(1, budget / per_channel));
      widest = std::max(widest, region.c1 - region.c0);
    }
    if (widest > channels)
      groups.push_back({static_cast<int>(i), static_cast<int>(i), 0, 0, channels});
  }
  return groups;
}

}  // namespace

size_t stream_plan(const Model& model, const StreamGroups& runs, const StreamParts& parts,
                   Plan& plan) {
  StreamGroups groups;
  StreamGroup deep = parts.deep;
  const bool deep_streams = parts.deep_budget_bytes > 0 && deep.last >= deep.first &&
                            deep_parts(model, plan, deep, parts.deep_budget_bytes);
  if (deep_streams) {
    deep.keep_weights = parts.keep_weights;
    groups.push_back(deep);
  }
  const bool others = parts.budget_bytes > 0 || parts.rows > 0 || parts.cols > 0;
  for (StreamGroup group : runs) {
    if ((deep_streams && group.first <= deep.last) || !others) continue;
    if (parts.budget_bytes > 0) {
      group.part_rows = budget_rows(model, plan, group, parts.budget_bytes);
      if (group.part_rows == 0) continue;
    } else {
      group.part_rows = parts.rows, group.part_cols = parts.cols;
    }
    group.keep_weights = parts.keep_weights;
    groups.push_back(group);
  }
  StreamedRegions streamed = stream_regions(model, plan.regions, plan.owners, groups);
  plan.regions = std::move(streamed.regions);
  plan.owners = std::move(streamed.owners);
  const size_t by_parts = streamed.groups.size();
  if (parts.budget_bytes > 0) {
    std::vector<bool> in_run(model.layers.size(), false);
    for (const StreamGroup& group : streamed.groups)
      for (int j = group.first; j <= group.last; ++j) in_run[j] = true;
    for (const StreamGroup& group : channel_streams(model, plan, in_run, parts.budget_bytes))
      streamed.groups.push_back(group);
  }
  std::sort(streamed.groups.begin(), streamed.groups.end(),
            [](const StreamGroup& a, const StreamGroup& b) { return a.first < b.first; });
  plan.streams = std::move(streamed.groups);
  for (const StreamGroup& group : plan.streams)
    for (int j = group.first; j <= group.last; ++j) plan.layer_strategies[j] += " streamed";
  return by_parts;
}

}  // namespace splitinfer
