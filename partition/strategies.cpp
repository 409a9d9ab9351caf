#include "strategies.hpp"

namespace splitinfer {
namespace {

// Part `index` of `parts` near-equal parts of [0, extent): [begin, end).
std::pair<int64_t, int64_t> share(int64_t extent, int index, int parts) {
  return {extent * index / parts, extent * (index + 1) / parts};
}

Region channel_share(const Shape& shape, int index, int parts) {
  const auto [c0, c1] = share(shape.c, index, parts);
  return {c0, c1, 0, shape.h, 0, shape.w};
}

}  // namespace

LayerRegions spatial_regions(const Model& model, int grid_rows, int grid_cols) {
  const int nodes = grid_rows * grid_cols;
  LayerRegions regions(model.layers.size(), std::vector<Region>(nodes));
  for (size_t i = 1; i < model.layers.size(); ++i) {
    const Shape& shape = model.layers[i].output_shape;
    for (int k = 0; k < nodes; ++k) {
      if (shape.rank == 2 || shape.h * shape.w == 1) {
        regions[i][k] = channel_share(shape, k, nodes);
        continue;
      }
      const auto [y0, y1] = share(shape.h, k / grid_cols, grid_rows);
      const auto [x0, x1] = share(shape.w, k % grid_cols, grid_cols);
      regions[i][k] = {0, shape.c, y0, y1, x0, x1};
    }
  }
  return regions;
}

LayerRegions channel_regions(const Model& model, int nodes) {
  LayerRegions regions(model.layers.size(), std::vector<Region>(nodes));
  for (size_t i = 1; i < model.layers.size(); ++i)
    for (int k = 0; k < nodes; ++k)
      regions[i][k] = channel_share(model.layers[i].output_shape, k, nodes);
  return regions;
}

}  // namespace splitinfer
