#pragma once
// The auto planner: per segment of layers, the strategy and tile grid under
// which every node fits its RAM and flash caps with the least emulated
// latency. Segments are runs of layers whose maps have one size (a stage of
// the network between two downsamplings; the classifier is its own), since
// what fits changes with the map: early stages hold large activations and
// few weights (tiles suit them), late stages the reverse (channel splits
// suit them). Strategies mix freely because a plan is just every layer's
// regions: where two segments meet, the node programs move whatever the
// next segment's regions need.
#include <functional>

#include "plan.hpp"

namespace splitinfer {

// Scores a candidate plan (its node_plans predicted): lower is better.
using PlanScore = std::function<double(const Plan&)>;

// Plans `model` with options.nodes nodes, or, when options.nodes is 0, with
// the fewest nodes (up to `max_nodes`) that fit. Candidates per segment:
// spatial tiles and fused tiles on every grid of the node count, and channel
// splits; whole-model relay and branches (when the model has independent
// branches) compete as they are. Coordinate descent from the best uniform
// plan: each segment in turn takes the candidate that lowers the score while
// every node still fits. With the node count left open, each count is first
// screened by a one-pass search, and fully searched where that fits or comes
// within half the cap. Throws Error when nothing fits, naming the smallest RAM
// cap (or flash cap) with which the node count (or the largest) fits, and
// for a given count a larger one that fits the caps, if any.
Plan auto_plan(const Model& model, const PlanOptions& options, const PlanScore& score,
               int max_nodes = 64);

// Segment number of every layer (the input layer: -1).
std::vector<int> stage_segments(const Model& model);

}  // namespace splitinfer
