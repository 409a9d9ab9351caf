#pragma once
// A run of a plan on every rank, start to end:
//  1. every rank reads the plan and checks the rank count and settings;
//  2. rank 0 opens its feed (reads the input); each node reads only its own
//     weights (node_K.h5) and checks that its program fits its RAM cap;
//  3. every rank learns how many inferences there are; the nodes run their
//     programs (node_runner.hpp) while rank 0 coordinates each inference
//     (coordinator.hpp); then each node sends rank 0 its statistics.
// Steps 1 and 2 end with an agreement (protocol.hpp): a bad plan, input,
// node file or cap throws AgreedFailure on every rank. A failure in step 3
// is a fault of the run itself; the caller ends the job (MPI_Abort).
#include <functional>
#include <nlohmann/json.hpp>
#include <vector>

#include "../../partition/plan.hpp"
#include "coordinator.hpp"
#include "protocol.hpp"

namespace splitinfer {

// What rank 0 feeds the nodes, inference by inference, and what it does with
// each output.
struct Feed {
  int count = 1;
  std::function<const std::vector<float>&(int index)> input;
  std::function<void(int index, const Bytes& output)> output;
};

// What a run leaves on rank 0 (the nodes get an empty one).
struct RunResult {
  Model model;  // as the plan holds it (no weights)
  Plan plan;
  nlohmann::json stats;         // run_statistics()
  nlohmann::json trace_events;  // every rank's, with settings.trace
  Bytes output;                 // the last inference's whole output map
  std::vector<Bytes> dumps;     // with settings.dump_layers: every layer's whole map
};

// Every wait of a run is bounded (Transport::set_deadline): by --timeout
// when given; otherwise by kSetupTimeoutSeconds while the ranks read their
// files, then by default_timeout(): ten times the model's MACs on one slow
// core, at least kTimeoutFloorSeconds.
inline constexpr double kSetupTimeoutSeconds = 60;
inline constexpr double kTimeoutFloorSeconds = 3;
inline constexpr double kMaxTimeoutSeconds = 86400;
inline constexpr double kSlowestMacsPerSecond = 2e8;
double default_timeout(const Model& model);

// `run --slow NODE:FACTOR[,NODE:FACTOR...]` for a plan of `nodes` nodes: each
// node's slowdown (index 0 is node 1; 1 when not named). A factor is at least
// 1 and at most 1000 (the node sleeps the extra time); throws Error naming
// what is wrong: a node the plan does not have, a factor out of range, a node
// named twice, text that is not NODE:FACTOR.
std::vector<double> parse_slowdowns(const std::string& text, int nodes);

// Runs the plan `settings.plan_dir` (settings agreed already) on this rank.
// Rank 0 calls `open_feed` with the plan's model once the plan checked out.
// Throws AgreedFailure on every rank when a step 1 or 2 check fails.
RunResult run_session(Transport& transport, const RunSettings& settings,
                      const std::function<Feed(const Model&)>& open_feed);

}  // namespace splitinfer
