#include "auto_plan.hpp"

#include <algorithm>
#include <functional>
#include <limits>
#include <optional>

#include "../src/error.hpp"
#include "../src/format.hpp"
#include "prediction.hpp"
#include "strategies.hpp"
#include "strategy_registry.hpp"
#include "stream_plan.hpp"

namespace splitinfer {
namespace {

// One way to cut every layer, from which segments take their layers' regions.
struct Candidate {
  std::string name;  // as layer_strategies shows it: "spatial 2x2", "channel", ...
  LayerRegions regions, owners;
  bool whole_model = false;  // relay and branches: taken for every layer or not at all
  bool via_coordinator = false;
};

// Grids of `nodes` tiles, rows first (Nx1 before 1xN): candidates that score
// the same keep the first, and a tile of whole rows runs faster than one of
// part-rows on the kernels (a convolution's band of rows, a vector of
// positions along a row, halos contiguous per channel).
std::vector<std::pair<int, int>> grids(int nodes) {
  std::vector<std::pair<int, int>> result;
  for (int rows = nodes; rows >= 1; --rows)
    if (nodes % rows == 0) result.emplace_back(rows, nodes / rows);
  return result;
}

// A candidate's name: the strategy's, and the grid when it has one.
std::string named(Strategy strategy, const std::string& grid = "") {
  return strategy_name(strategy) + (grid.empty() ? "" : " " + grid);
}

// `shares`: per node, the weight of its part (PlanOptions::node_shares).
std::vector<Candidate> candidates(const Model& model, const std::vector<int>& segment, int nodes,
                                  const std::vector<double>& shares) {
  std::vector<Candidate> result;
  for (const auto& [rows, cols] : grids(nodes)) {
    const std::string grid = std::to_string(rows) + "x" + std::to_string(cols);
    result.push_back(
        {named(Strategy::spatial, grid), spatial_regions(model, rows, cols, shares), {}});
    if (nodes == 1) continue;
    // Fused: each segment's layers with spatial maps are one block.
    std::vector<int> block(model.layers.size(), 0);
    for (size_t i = 1; i < model.layers.size(); ++i) {
      const Shape& shape = model.layers[i].output_shape;
      if (shape.rank != 2 && shape.h * shape.w > 1) block[i] = segment[i] + 1;
    }
    FusedRegions fused = fused_regions_in_blocks(model, rows, cols, block, false, shares);
    result.push_back(
        {named(Strategy::fused, grid), std::move(fused.regions), std::move(fused.owners)});
  }
  if (nodes > 1)
    result.push_back({named(Strategy::channel), channel_regions(model, nodes, shares), {}});
  if (nodes > 1) {
    Candidate relay{named(Strategy::relay), channel_regions(model, nodes, shares), {}, true, true};
    result.push_back(std::move(relay));
    try {
      Candidate branches{named(Strategy::branches),
                         branch_regions(model, independent_branches(model), nodes),
                         {},
                         true};
      result.push_back(std::move(branches));
    } catch (const Error&) {  // no independent branches, or fewer nodes than branches
    }
  }
  return result;
}

// The search for one node count.
class Search {
 public:
  Search(const Model& model, const PlanOptions& options, const PlanScore& score, int nodes)
      : model_(model), options_(options), score_(score), nodes_(nodes) {
    segment_ = stage_segments(model);
    segments_ = *std::max_element(segment_.begin(), segment_.end()) + 1;
    candidates_ = candidates(model, segment_, nodes, {});
    // A mixed cluster: each candidate also with work in proportion to the
    // nodes' speeds (equal parts may still win where a slow node's link or
    // caps matter more than its compute).
    if (static_cast<int>(options.node_shares.size()) == nodes)
      for (Candidate& weighted : candidates(model, segment_, nodes, options.node_shares)) {
        weighted.name += " by speed";
        candidates_.push_back(std::move(weighted));
      }
    runs_ = stream_runs(model, {}, true);
    deep_ = deep_runs(model);
  }

  // The best plan that fits, if any. `passes` bounds the coordinate descent;
  // a quick search (one pass) skips the wider moves made when nothing fits
  // (the budget and the deep run together, the descents from deep starts).
  std::optional<Plan> run(int passes = 3) {
    // Uniform plans first: every segment the same candidate, with each
    // streaming budget. choice[segments_] is the budget, choice[segments_ + 1]
    // the deep run (0: none).
    std::optional<Scored> best;
    std::vector<int> start;
    std::optional<Scored> start_scored;
    // Per candidate, the budget of its plan least over the cap (a start for
    // the deep runs).
    std::vector<std::optional<Scored>> candidate_least(candidates_.size());
    std::vector<int> candidate_budget(candidates_.size(), 0);
    for (size_t c = 0; c < candidates_.size(); ++c)
      for (size_t b = 0; b < kBudgets.size(); ++b) {
        if (candidates_[c].via_coordinator && b > 0) continue;
        std::vector<int> choice(segments_ + 2, static_cast<int>(c));
        choice[segments_] = static_cast<int>(b);
        choice[segments_ + 1] = 0;
        Scored scored = evaluate(choice);
        if (!candidates_[c].whole_model) {
          if (!start_scored || less_over(scored, *start_scored))
            start = choice, start_scored = scored;
          if (!candidate_least[c] || less_over(scored, *candidate_least[c]))
            candidate_least[c] = scored, candidate_budget[c] = static_cast<int>(b);
        }
        if (scored.fits && (!best || scored.score < best->score)) best = std::move(scored);
      }
    const auto keep = [&](Scored& scored) {
      if (scored.fits && (!best || scored.score < best->score)) best = std::move(scored);
    };
    // Coordinate descent over the per-segment candidates, the budget and the
    // deep run, from the best uniform plan that fits, else the one least over.
    Scored current = descend(best && !best_choice_.empty() ? best_choice_ : start, passes);
    if (!current.fits && !best && passes > 1) {
      // Nothing fits: descend again from the uniform plans with a deep run
      // (streaming the input deep pays only on tiles, which the descent may
      // have left on its way): per candidate its deep run least over the
      // cap, the kDeepStarts least over of those.
      std::vector<std::pair<Scored, std::vector<int>>> deep_starts;
      for (size_t c = 0; c < candidates_.size(); ++c) {
        if (candidates_[c].whole_model) continue;
        std::vector<int> choice(segments_ + 2, static_cast<int>(c));
        choice[segments_] = candidate_budget[c];
        std::optional<std::pair<Scored, std::vector<int>>> least;
        for (size_t d = 1; d < deep_options(); ++d) {
          choice[segments_ + 1] = static_cast<int>(d);
          Scored scored = evaluate(choice);
          if (!least || less_over(scored, least->first)) least.emplace(std::move(scored), choice);
        }
        if (least) deep_starts.push_back(std::move(*least));
      }
      std::sort(deep_starts.begin(), deep_starts.end(),
                [](const auto& a, const auto& b) { return less_over(a.first, b.first); });
      for (size_t i = 0; i < deep_starts.size() && i < kDeepStarts && !best; ++i) {
        Scored again = descend(deep_starts[i].second, passes);
        keep(again);
      }
    }
    keep(current);
    if (!best) return std::nullopt;
    return std::move(best->plan);
  }

  uint64_t smallest_ram() const { return smallest_ram_; }
  uint64_t smallest_flash() const { return smallest_flash_; }

 private:
  struct Scored {
    Plan plan;
    uint64_t peak = 0;  // the largest node's
    // Every layer's footprint on its largest node, largest first: compared
    // in that order (the peak first), it is lowered by any change that
    // shrinks one of the largest layers, where the peak (one layer's) is not
    // until the last such layer shrinks. It does not depend on the cap, so
    // a search under a smaller cap goes the same way until a plan fits.
    std::vector<uint64_t> footprints;
    bool fits = false;
    double score = 0;
  };

  Scored evaluate(const std::vector<int>& choice) {
    Plan plan;
    plan.nodes = nodes_;
    plan.strategy = Strategy::automatic;
    plan.ram_cap_bytes = options_.ram_cap_bytes;
    plan.flash_cap_bytes = options_.flash_cap_bytes;
    plan.weights_in_place = options_.weights_in_place;
    plan.regions.assign(model_.layers.size(), std::vector<Region>(nodes_));
    plan.layer_strategies.assign(model_.layers.size(), "");
    bool overlaps = false;
    for (int s = 0; s < segments_; ++s)
      overlaps = overlaps || !candidates_[choice[s]].owners.empty();
    if (overlaps) plan.owners = plan.regions;
    for (size_t i = 1; i < model_.layers.size(); ++i) {
      const Candidate& candidate = candidates_[choice[segment_[i]]];
      plan.regions[i] = candidate.regions[i];
      if (overlaps)
        plan.owners[i] = candidate.owners.empty() ? candidate.regions[i] : candidate.owners[i];
      plan.layer_strategies[i] = candidate.name;
    }
    // Relay and branches are taken whole: every segment chose the same one.
    plan.via_coordinator = candidates_[choice[0]].via_coordinator;
    const int deep = choice[segments_ + 1] - 1;
    if ((choice[segments_] > 0 || deep >= 0) && !plan.via_coordinator) {
      StreamParts parts = kBudgets[choice[segments_]];
      if (deep >= 0) {
        parts.deep = deep_[deep / kDeepBudgets.size()];
        parts.deep_budget_bytes = kDeepBudgets[deep % kDeepBudgets.size()];
      }
      stream_plan(model_, runs_, parts, plan);
    }
    predict_nodes(model_, plan);
    Scored scored;
    scored.peak = largest_peak_ram(plan);
    const uint64_t flash = largest_flash(plan);
    if (flash <= options_.flash_cap_bytes) smallest_ram_ = std::min(smallest_ram_, scored.peak);
    smallest_flash_ = std::min(smallest_flash_, flash);
    scored.fits = true;  // every node within its own caps
    scored.footprints.assign(model_.layers.size(), 0);
    for (const NodePlan& node : plan.node_plans)
      for (size_t i = 0; i < node.layer_peak_ram_bytes.size(); ++i)
        scored.footprints[i] = std::max(scored.footprints[i], node.layer_peak_ram_bytes[i]);
    std::sort(scored.footprints.begin(), scored.footprints.end(), std::greater<>());
    for (const NodePlan& node : plan.node_plans)
      scored.fits = scored.fits && node.predicted_peak_ram_bytes <= node_ram_cap(options_, node.node) &&
                    node.flash_bytes <= node_flash_cap(options_, node.node);
    if (scored.fits) {
      scored.score = score_(plan);
      if (!candidates_[choice[0]].whole_model &&
          (best_choice_.empty() || scored.score < best_score_))
        best_choice_ = choice, best_score_ = scored.score;
    }
    scored.plan = std::move(plan);
    return scored;
  }

  static constexpr size_t kDeepStarts = 3;
  size_t deep_options() const { return deep_.size() * kDeepBudgets.size() + 1; }

  // Neither fits: `a` is less over the cap than `b`.
  static bool less_over(const Scored& a, const Scored& b) {
    return a.peak < b.peak || (a.peak == b.peak && a.footprints < b.footprints);
  }

  // Coordinate descent from `choice`: each coordinate in turn takes the
  // option that lowers the score while the plan fits, or, while it does not,
  // that brings it less over the cap; when a pass finds nothing and the plan
  // still does not fit, the budget and the deep run are tried together.
  Scored descend(std::vector<int> choice, int passes) {
    Scored current = evaluate(choice);
    const auto try_choice = [&](const std::vector<int>& trial) {
      if (trial == choice) return false;
      Scored scored = evaluate(trial);
      const bool better = current.fits ? scored.fits && scored.score < current.score
                                       : scored.fits || less_over(scored, current);
      if (better) choice = trial, current = std::move(scored);
      return better;
    };
    for (int pass = 0; pass < passes; ++pass) {
      bool improved = false;
      for (int s = 0; s <= segments_ + 1; ++s) {
        const size_t options = s < segments_    ? candidates_.size()
                               : s == segments_ ? kBudgets.size()
                                                : deep_options();
        for (size_t c = 0; c < options; ++c) {
          if (s < segments_ && candidates_[c].whole_model) continue;
          std::vector<int> trial = choice;
          trial[s] = static_cast<int>(c);
          improved = try_choice(trial) || improved;
        }
      }
      if (!improved && !current.fits && passes > 1) {
        const std::vector<int> at = choice;
        for (size_t b = 0; b < kBudgets.size(); ++b)
          for (size_t d = 0; d < deep_options(); ++d) {
            std::vector<int> trial = at;
            trial[segments_] = static_cast<int>(b);
            trial[segments_ + 1] = static_cast<int>(d);
            improved = try_choice(trial) || improved;
          }
      }
      if (!improved) break;
    }
    return current;
  }

  // Streaming budgets (StreamParts::budget_bytes: bytes of a band's largest
  // map; 0: no streaming), and whether runs keep their weights in RAM
  // (boards with RAM to spare).
  static inline const std::vector<StreamParts> kBudgets = {
      {.budget_bytes = 0},
      {.budget_bytes = 128 << 10},
      {.budget_bytes = 64 << 10},
      {.budget_bytes = 32 << 10},
      {.budget_bytes = 16 << 10},
      {.budget_bytes = 8 << 10},
      {.budget_bytes = 1 << 20, .keep_weights = true},
      {.budget_bytes = 128 << 10, .keep_weights = true},
      {.budget_bytes = 16 << 10, .keep_weights = true},
      {.budget_bytes = 4 << 10}};

  // Budgets of the deep run's parts (StreamParts::deep_budget_bytes).
  static inline const std::vector<uint64_t> kDeepBudgets = {128 << 10, 96 << 10, 64 << 10, 48 << 10,
                                                            32 << 10,  24 << 10, 16 << 10, 8 << 10};

  const Model& model_;
  const PlanOptions& options_;
  const PlanScore& score_;
  int nodes_;
  std::vector<int> segment_;
  int segments_ = 0;
  std::vector<Candidate> candidates_;
  StreamGroups runs_;             // the runs of layers that may stream
  // Runs from the input deep into the network; choice[segments_ + 1] - 1
  // picks one and its parts' budget (-1: none).
  StreamGroups deep_;
  std::vector<int> best_choice_;  // the best fitting per-segment choice seen
  double best_score_ = 0;
  uint64_t smallest_ram_ = std::numeric_limits<uint64_t>::max();
  uint64_t smallest_flash_ = std::numeric_limits<uint64_t>::max();
};

}  // namespace

std::vector<int> stage_segments(const Model& model) {
  std::vector<int> segment(model.layers.size(), -1);
  int current = -1;
  for (size_t i = 1; i < model.layers.size(); ++i) {
    const Shape& shape = model.layers[i].output_shape;
    const Shape& previous = model.layers[i - 1].output_shape;
    const bool spatial = shape.rank != 2 && shape.h * shape.w > 1;
    const bool was_spatial = i > 1 && previous.rank != 2 && previous.h * previous.w > 1;
    // A new segment where the map size changes, or the maps stop being spatial.
    if (i == 1 || spatial != was_spatial ||
        (spatial && (shape.h != previous.h || shape.w != previous.w)))
      ++current;
    segment[i] = current;
  }
  return segment;
}

Plan auto_plan(const Model& model, const PlanOptions& options, const PlanScore& score,
               int max_nodes) {
  if (options.nodes > 0) {
    Search search(model, options, score, options.nodes);
    if (std::optional<Plan> plan = search.run()) return *plan;
    std::string message = "no plan for " + std::to_string(options.nodes) + " node(s) fits";
    if (!options.devices.empty())
      throw Error(message + " each node's own caps (--devices " + cluster_name(options.devices) +
                  "): with the largest node's caps for all, --ram " +
                  std::to_string(search.smallest_ram()) + " --flash " +
                  std::to_string(search.smallest_flash()) + " would be the least that fits");
    if (search.smallest_flash() > options.flash_cap_bytes)
      message += ": a node's weights take " + format_bytes(search.smallest_flash()) +
                 " of flash at least; the smallest flash cap that fits is --flash " +
                 std::to_string(search.smallest_flash());
    else
      message += " the RAM cap of " + format_bytes(options.ram_cap_bytes) +
                 "; the smallest RAM cap that fits " + std::to_string(options.nodes) +
                 " node(s) is --ram " + std::to_string(search.smallest_ram());
    for (int nodes = options.nodes + 1; nodes <= max_nodes; ++nodes) {
      Search more(model, options, score, nodes);
      if (more.run(1)) {
        message += ", or --nodes " + std::to_string(nodes) + " fits these caps";
        break;
      }
    }
    throw Error(message);
  }
  // The fewest nodes: a quick search (one descent pass) screens each count;
  // the full search runs where the quick one fits or comes close.
  for (int nodes = 1; nodes <= max_nodes; ++nodes) {
    Search quick(model, options, score, nodes);
    const bool found = quick.run(1).has_value();
    if (!found && (quick.smallest_flash() > options.flash_cap_bytes ||
                   quick.smallest_ram() > options.ram_cap_bytes / 2 * 3))
      continue;
    Search search(model, options, score, nodes);
    if (std::optional<Plan> plan = search.run()) return *plan;
  }
  Search largest(model, options, score, max_nodes);
  largest.run();
  const uint64_t smallest_ram = largest.smallest_ram(), smallest_flash = largest.smallest_flash();
  if (smallest_flash > options.flash_cap_bytes)
    throw Error("no plan with up to " + std::to_string(max_nodes) + " nodes fits: with " +
                std::to_string(max_nodes) + " nodes the smallest flash cap that fits is --flash " +
                std::to_string(smallest_flash));
  throw Error("no plan with up to " + std::to_string(max_nodes) + " nodes fits: with " +
              std::to_string(max_nodes) + " nodes the smallest RAM cap that fits is --ram " +
              std::to_string(smallest_ram));
}

}  // namespace splitinfer
