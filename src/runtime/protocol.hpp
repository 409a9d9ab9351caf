#pragma once
// What the ranks of a run agree on, and how a failure before the first
// inference ends every rank together (the order of the run's messages is
// in session.hpp).
//
// A run starts with rank 0's settings broadcast to every rank, so ranks
// started with different arguments still follow one protocol. Then come
// checked steps (reading the plan, the input, each node's weights and memory):
// after each, every rank says whether it failed, and when one did, every rank
// throws AgreedFailure with the lowest failing rank's message (which names
// the node at fault) and nobody waits for a message that will not come.
#include <functional>
#include <string>

#include "../error.hpp"
#include "transport.hpp"

namespace splitinfer {

// What rank 0 decides for the whole run (the run command's options).
struct RunSettings {
  std::string plan_dir;
  std::string ram;  // a size overriding the plan's RAM cap; empty: the plan's
  int repeat = 0;   // inferences after one warm-up; 0: one inference
  bool dump_layers = false;
  bool reference_kernels = false;
  bool trace = false;          // record every rank's slices of the last inference
  std::string requantization;  // pytorch | cmsis; empty: the model's own
  // How long any wait of a rank may last before the run ends naming the
  // node that stopped responding; 0: derived from the plan (session.hpp).
  double timeout = 0;
  // Stragglers on purpose: "NODE:FACTOR[,NODE:FACTOR...]" (parse_slowdowns,
  // session.hpp); empty: none.
  std::string slow;
  // Plans with tasks: "static" (each node runs its own) or "steal" (idle
  // nodes take tasks from busy ones); a plan without tasks runs static only.
  std::string schedule = "static";
  // Spatial row plans with --repeat: between inferences the rows move toward
  // equal node times (session.hpp).
  bool rebalance = false;
  // Intermittent power (power.hpp): "MEAN_MS[:RECHARGE_MS]" of device time
  // between failures and after each; empty: none. Failures drawn from `seed`;
  // each node's NVM file in `nvm_dir` (empty: splitinfer-nvm/PLAN_ID in the
  // working directory, so that runs of different plans never share one).
  std::string power;
  int64_t seed = 0;
  std::string nvm_dir;
  // Continue the inference the NVM files hold (its processes killed): the
  // nodes read back what they had committed and compute the rest.
  bool resume = false;
  // Job sizes under NVM (power.hpp, PowerSettings): "static" (jobs of
  // job_ms milliseconds of device time, empty: the default; "layer": whole
  // layers; cut by job_order, "channels" or "rows", empty: channels) or
  // "dynamic".
  std::string reconfigure = "static";
  std::string job_ms;
  std::string job_order;
  // A recorded on/off supply replayed instead of --power's random failures.
  std::string power_trace;
  // Nodes keep their jobs in NVM: with --power, --nvm or --resume.
  bool keeps_nvm() const {
    return !power.empty() || !power_trace.empty() || !nvm_dir.empty() || resume;
  }
};

// Rank 0's `settings` on every rank.
RunSettings agree_settings(Transport& transport, const RunSettings& settings);

// Thrown on every rank at once: a checked step failed somewhere.
class AgreedFailure : public Error {
 public:
  explicit AgreedFailure(const std::string& message) : Error(message) {}
};

// Runs `step` on this rank and then agrees with every rank: throws
// AgreedFailure (the first failing rank's message) on every rank when any
// rank's step threw.
void agreed_step(Transport& transport, const std::function<void()>& step);

}  // namespace splitinfer
