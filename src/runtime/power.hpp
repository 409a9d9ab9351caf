#pragma once
// run --power: nodes on harvested energy, as DynBal's MSP432 runs. Each node
// keeps a clock of its emulated device time (its jobs' MACs at the device's
// rate, its NVM reads and writes at the NVM's rates, the recharges) and
// loses power at random instants of that clock: exponential intervals of
// mean MEAN_MS, each failure followed by RECHARGE_MS without power. At a
// failure the node's RAM (its arena) is overwritten with garbage; it reads
// back from NVM (NvmStore, a file per node) what it had committed and
// computes the lost job again (Executor::set_power()). As on DynBal's board,
// the maps live in the NVM: a job's device time is reading its inputs from
// NVM and its weights from flash, its MACs, and writing its output and
// commit record to NVM; the arena mirrors the NVM and is read back after a
// failure at no device time. A failure may strike while a job reads or
// computes, or while its output is written (the write is torn at the byte
// the instant reaches: the file really holds the partial write); the power
// holds while the node
// exchanges pieces with its neighbours and keeps what it received in NVM
// (neighbours would otherwise have to send again): an instant falling there
// strikes at the node's next job. Neighbours waiting for a node without
// power simply wait.
#include <cstdint>
#include <memory>
#include <optional>
#include <random>
#include <string>

#include "../../partition/device.hpp"
#include "../executor.hpp"
#include "nvm_store.hpp"

namespace splitinfer {

struct PowerSettings {
  double mean_seconds = 0;      // mean device time between failures; 0: never fails
  double recharge_seconds = 0;  // device time without power after each
  uint64_t seed = 0;
  // The size of jobs, as DynBal configures its tiles: "static", every job of
  // about job_seconds of device time; "dynamic", per layer the candidate
  // duration with the least expected time under the failure rate measured
  // so far in the run (reading inputs again for more jobs against computing
  // again more of a job lost).
  // Static tiles cut the output by "channels" (bands of channels with
  // every row: each job reads all of a dense convolution's input and its
  // channels' weights) or by "rows" (bands of rows with every channel: each
  // job reads its rows of the input and all the weights): DynBal's loop
  // order. Dynamic tries both.
  std::string reconfigure = "static";
  double job_seconds = kDefaultJobSeconds;
  std::string job_order = "channels";
  static constexpr double kDefaultJobSeconds = 0.002;
  // A recorded supply (--power-trace) instead of random failures: per
  // cycle, the seconds with power, then the seconds without; replayed from
  // the start, over again when it ends. Empty: random failures.
  std::vector<std::pair<double, double>> trace;
  // The job durations dynamic chooses among (the plan's candidates; 0: a
  // whole layer); empty: default_job_seconds_candidates() (partition/plan.hpp).
  std::vector<double> candidates;
};

// Reads a power trace: one cycle per line, "ON_MS OFF_MS" (device time with
// power, then without), '#' starting a comment. Throws Error naming the file
// and line for anything else, an on time <= 0, an off time < 0, or no cycle.
std::vector<std::pair<double, double>> read_power_trace(const std::string& path);

// "static" or "dynamic", the static job duration in ms (> 0, or "layer" for
// whole layers; empty: the default) and the static job order ("channels" or
// "rows"; empty: channels). Throws Error for anything else, and for a
// duration or order with "dynamic".
void parse_reconfiguration(const std::string& mode, const std::string& job_ms,
                           const std::string& job_order, PowerSettings& settings);

// "MEAN_MS[:RECHARGE_MS]" (milliseconds of device time; recharge 0 when left
// out); empty: steady power (NVM kept all the same, for --resume). Throws
// Error for a mean <= 0, a recharge < 0 or anything unreadable.
PowerSettings parse_power(const std::string& text, uint64_t seed);

// Where an inference stood when its processes were killed: the last job a
// node committed (its progress record "inference N input DIGEST layer L
// tile CxR jobs J": J jobs of C channels by R rows of layer L done).
struct ResumePoint {
  int inference = 0;
  std::string input_digest;
  int layer = 0;
  PowerSupply::Tile tile;
  int64_t jobs_done = 0;
};

struct PowerStats {
  int power_failures = 0;
  uint64_t reexecuted_macs = 0;  // computed again after failures (the lost part of each job)
  uint64_t nvm_bytes_written = 0, nvm_bytes_read = 0;  // the jobs' (not the emulation's read-backs)
  double recharge_seconds = 0;
  double device_seconds = 0;  // the node's clock: compute, NVM traffic, recharges
  double nvm_joules = 0;      // the NVM's energy for the jobs' reads and writes
};

class PowerEmulation : public PowerSupply {
 public:
  // Node `node` of the plan `plan_id` running `program` on `device` (which
  // must have an NVM); its NVM file is `nvm_path`. Throws Error when the
  // NVM cannot hold what the program keeps, or the file belongs to another
  // plan or node, or is corrupt (NvmStore).
  // With `resume`, the NVM file must exist.
  PowerEmulation(const Model& model, const NodeProgram& program, const DeviceProfile& device,
                 const PowerSettings& settings, int node, const std::string& nvm_path,
                 const std::string& plan_id, bool resume = false);

  // A new inference: its number and its input's digest go into every
  // progress record committed.
  void start_inference(int inference, const std::string& input_digest);
  // What the NVM's progress record says (none: nothing committed, or a
  // record this version does not read).
  std::optional<ResumePoint> resume_point() const;
  // This inference's figures.
  PowerStats stats() const;

  void keep(int64_t key, const Chunk& chunk) override;
  bool job(const Job& job) override;
  Tile job_tile(const LayerShape& layer) override;
  void restore(int64_t key, uint64_t offset, void* data, uint64_t bytes) override;

 private:
  uint64_t place(int64_t key, uint64_t offset, uint64_t bytes) const;  // NVM offset
  // Device seconds of a job of `layer` reading `input_bytes` from NVM and
  // `weight_bytes` from flash, computing `macs`, writing `written_bytes`.
  double job_seconds(int layer, double input_bytes, double weight_bytes, double macs,
                     double written_bytes) const;
  void fail(double at);  // the power fails at device time `at`

  const Model& model_;
  DeviceProfile device_;
  PowerSettings settings_;
  std::unique_ptr<NvmStore> store_;
  std::vector<std::pair<int64_t, uint64_t>> keys_;  // (key, bytes)
  std::vector<uint64_t> offsets_;               // per key, in keys_ order
  int node_ = 0;
  std::mt19937_64 random_;  // this inference's failure intervals
  double clock_ = 0, next_failure_ = 0;
  int inference_ = 0;
  std::string input_digest_;
  PowerStats stats_;
  // The run's failures and device time so far (every inference): the
  // failure rate `dynamic` judges by.
  size_t cycle_ = 0;  // --power-trace: the cycle the power is in
  int run_failures_ = 0;
  double run_seconds_ = 0, run_recharge_seconds_ = 0;
  // Device seconds of one job of `tile` of `layer`.
  double job_time(const LayerShape& layer, const Tile& tile) const;
  // The largest tile of `layer` cut in `order` ("channels" or "rows") whose
  // job lasts at most `seconds` (0: the whole layer).
  Tile tile_within(const LayerShape& layer, double seconds, const std::string& order) const;
  uint64_t written_at_start_ = 0;
};

}  // namespace splitinfer
