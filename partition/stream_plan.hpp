#pragma once
// Streaming inside a node, set up on a plan whose regions are cut: runs of
// layers every node computes part by part (so no map inside a run is ever
// whole on a node), and conv2d or linear layers whose weights stream by
// output channels. The one set-up behind `plan --stream R[xC]` (parts of a
// given size) and the auto planner's budgets (parts sized to bytes).
#include <cstdint>

#include "../src/graph.hpp"
#include "node_program_builder.hpp"
#include "plan.hpp"

namespace splitinfer {

// How the runs are cut into parts.
struct StreamParts {
  // Parts of at most `rows` rows and `cols` columns of a run's last layer
  // (cols 0: whole rows).
  int64_t rows = 0, cols = 0;
  // Instead, when > 0: each run in bands of rows sized so that the largest
  // map of the run before its last layer takes about `budget_bytes` of a
  // band on every node (a run whose every map fits, or that some node cuts
  // by channels, is left whole); and every conv2d or linear layer outside
  // the runs whose weight slice on some node is over `budget_bytes` streams
  // its weights by output channels.
  uint64_t budget_bytes = 0;
  bool keep_weights = false;  // the runs read their weights from flash once
  // And a run from the input deep into the network (deep_runs() of
  // strategies.hpp; last -1: none) streamed instead of the runs it covers,
  // in parts sized so that every map's part (and the model input's) takes
  // at most about `deep_budget_bytes`: bands of whole rows where they are
  // narrow enough, else square tiles.
  StreamGroup deep{0, -1};
  uint64_t deep_budget_bytes = 0;
};

// Streams `runs` (stream_runs() of strategies.hpp, parts left 0) of `plan`:
// grows its regions (and owners) to what the runs read (stream_regions),
// sets plan.streams, and marks their layers " streamed" in
// plan.layer_strategies. Returns how many of `runs` stream (a run the grid
// cannot stream is left out); layers streamed by output channels not counted.
size_t stream_plan(const Model& model, const StreamGroups& runs, const StreamParts& parts,
                   Plan& plan);

}  // namespace splitinfer
