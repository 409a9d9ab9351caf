#pragma once
// Partition strategies: which region of every layer's output each node
// computes. Each layer's regions partition its map; a node may get nothing.
// The registry (strategy_registry.hpp) names the strategies and cuts plans
// with these functions.
#include "../src/graph.hpp"
#include "node_program_builder.hpp"

namespace splitinfer {

// Spatial tiles: each map with more than one pixel is cut into a grid of
// grid_rows x grid_cols regions (node r*grid_cols + c gets tile (r, c)), all
// channels; 1x1 maps and rank-2 tensors (the classifier) are cut by channels
// (output neurons). grid_rows * grid_cols = nodes.
//
// `shares` (one positive weight per node, e.g. its MAC rate; empty: equal)
// cut every extent in proportion: a grid row's rows by the shares of its
// tiles together, a column's columns likewise, the channels of maps cut by
// channels by each node's own; cuts rounded, a node's part possibly empty.
// The other strategies take shares alike.
LayerRegions spatial_regions(const Model& model, int grid_rows, int grid_cols,
                             const std::vector<double>& shares = {});

// spatial_regions() in rows (grid N x 1) with node k's share of every map's
// rows `shares[k - 1]` (shares add up to about 1; cuts are rounded, each
// layer on its own), for rebalancing; the maps cut by channels equally.
LayerRegions spatial_row_regions(const Model& model, const std::vector<double>& shares);

// Channel split: every layer's output channels (neurons) cut into `nodes`
// contiguous ranges over the whole map.
LayerRegions channel_regions(const Model& model, int nodes,
                             const std::vector<double>& shares = {});

// Fused tile partitioning: consecutive layers with spatial maps form blocks
// of at most `fuse` layers (0: as many as possible). Each node owns the
// spatial tile of every layer (`owners`, as spatial_regions); inside a block
// it computes, walking back from its tile of the block's last layer, the
// bounding box of what its own later layers in the block read, so nothing
// moves inside a block and the borders tiles share are computed by each of
// them. With `reuse`, only the tiles of one checkerboard colour (row + column
// even) recompute; the others compute just their own tiles and fetch their
// borders from their neighbours, layer by layer.
struct FusedRegions {
  LayerRegions regions, owners;
  std::vector<int> block;  // per layer: its block number (from 1), 0 outside blocks
};
FusedRegions fused_regions(const Model& model, int grid_rows, int grid_cols, int fuse, bool reuse,
                           const std::vector<double>& shares = {});
// The blocks alone (FusedRegions::block): per layer its block number.
std::vector<int> fused_blocks(const Model& model, int fuse);
// The same with the blocks given: block[layer] numbers them from 1 (0: not
// fused); a block's layers must have spatial maps.
FusedRegions fused_regions_in_blocks(const Model& model, int grid_rows, int grid_cols,
                                     std::vector<int> block, bool reuse,
                                     const std::vector<double>& shares = {});

// Runs of layers to stream (StreamGroup, parts left 0): the longest runs
// check_stream_groups() accepts, none crossing from one block to another
// (`block[layer]`, when given; 0 is outside every block), and with
// `at_expansions` none going on past a layer whose map is smaller in bytes
// than the next layer's: a run then starts at a narrow map and holds one
// widening block (an inverted residual: expand, depthwise, project).
StreamGroups stream_runs(const Model& model, const std::vector<int>& block, bool at_expansions);

// Runs from the first layer after the input deep into the network, across
// expansions (MCUNetV2's patch-based first stages): every run check_stream_groups()
// accepts that starts there and ends at a map smaller in bytes than at every
// earlier end (a narrow block output after each downsampling), shortest first.
StreamGroups deep_runs(const Model& model);

// Regions under which `groups` stream: each node's regions of the layers
// before a run's last grow (as fused blocks do) to hold what the run reads
// of them. Runs a grid cannot stream (a node would compute some of a run
// but nothing of its last layer) are left out. `owners` are the previous
// owners (or the regions, when they partitioned every map).
struct StreamedRegions {
  LayerRegions regions, owners;
  StreamGroups groups;  // the runs that stream
};
StreamedRegions stream_regions(const Model& model, const LayerRegions& regions,
                               const LayerRegions& owners, const StreamGroups& groups);

// Independent branches: the layers before the first layer that joins two
// parts of the graph with no path between them (the input aside), grouped by
// those parts. Returns per layer its branch (from 0), or -1 for the join and
// everything after it; throws Error when the model has fewer than two branches.
std::vector<int> independent_branches(const Model& model);

// Branches: the nodes are cut into one near-equal group per branch; a branch
// runs on its group only (spatial rows within the group), so nothing moves
// between groups before the join; the join and what follows are spatial over
// all nodes. Needs at least one node per branch.
LayerRegions branch_regions(const Model& model, const std::vector<int>& branches, int nodes);

}  // namespace splitinfer
