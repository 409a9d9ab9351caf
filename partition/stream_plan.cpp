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
    tallest = std::max(tallest, last.y1 - last.y0);
    rows = std::min(rows, std::max<int64_t>(1, static_cast<int64_t>(budget / widest)));
  }
  return !spatial || tallest == 0 || rows >= tallest ? 0 : rows;
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
  for (StreamGroup group : runs) {
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
