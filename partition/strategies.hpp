#pragma once
// Partition strategies: which region of every layer's output each node
// computes. Each layer's regions partition its map; a node may get nothing.
#include "../src/graph.hpp"
#include "node_program_builder.hpp"

namespace splitinfer {

// Spatial tiles: each map with more than one pixel is cut into a grid of
// grid_rows x grid_cols regions (node r*grid_cols + c gets tile (r, c)), all
// channels; 1x1 maps and rank-2 tensors (the classifier) are cut by channels
// (output neurons). grid_rows * grid_cols = nodes.
LayerRegions spatial_regions(const Model& model, int grid_rows, int grid_cols);

// Channel split: every layer's output channels (neurons) cut into `nodes`
// contiguous ranges over the whole map.
LayerRegions channel_regions(const Model& model, int nodes);

}  // namespace splitinfer
