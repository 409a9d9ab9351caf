#pragma once
// The subcommands of the splitinfer executable. Each returns the exit status.
#include <cstdint>
#include <string>
#include <vector>

namespace splitinfer {

struct InspectOptions {
  std::string model_path;
  bool json = false;
};
int inspect_command(const InspectOptions& options);

struct PlanCommandOptions {
  std::string model_path;
  std::string output_dir;
  int nodes = -1;  // not given: 1, or with --strategy auto the fewest that fit
  std::string device, ram, flash, strategy, grid;
  std::string devices;  // a mixed cluster: NAME:COUNT,... or a cluster .json
  int fuse = 0;
  bool reuse = false;
  std::string stream;  // "R" or "RxC"; empty: no streaming
  bool keep_weights = false;
  bool weights_in_place = false;
  bool input_pixels = false;
  int tasks = 0;  // spatial, fused: tiles run as tasks (work stealing); 0: none
  std::vector<double> row_shares;  // spatial rows: each node's share (unequal nodes)
};
int plan_command(const PlanCommandOptions& options);

struct RunOptions {
  std::string plan_dir;
  std::string input_path;
  std::string output_path;
  std::string stats_path;
  std::string trace_path;
  std::string ram;  // overrides the plan's RAM cap
  int repeat = 0;   // inferences after one warm-up; 0: one inference
  bool dump_layers = false;
  bool reference_kernels = false;
  std::string requantization;  // pytorch | cmsis; empty: the model's own
  double timeout = 0;          // seconds any wait may last; 0: derived from the plan
  std::string slow;            // NODE:FACTOR[,...]: stragglers on purpose (parse_slowdowns)
  std::string schedule = "static";  // plans with tasks: static | steal
  bool rebalance = false;           // spatial row plans: rows follow measured node times
  std::string power;                // MEAN_MS[:RECHARGE_MS]: intermittent power (power.hpp)
  int64_t seed = 0;                 // of the power failures
  std::string nvm_dir;              // each node's NVM file under --power; empty: the default
  bool resume = false;              // continue the inference the NVM files hold
  std::string reconfigure = "static";  // job sizes under --power: static | dynamic
  std::string job_ms;                  // static job duration (ms of device time, or "layer")
  std::string job_order;               // static job tiles: channels | rows; empty: channels
  std::string power_trace;             // a recorded on/off supply instead of --power
};
// Runs under MPI (already initialised): rank 0 coordinates, ranks 1..N are nodes.
int run_command(const RunOptions& options);

struct EvalOptions {
  std::string model_path;
  std::string dataset = "fashion-mnist";
  std::string data_dir;  // default: where Debian's package installs it
  int nodes = 1;
  std::string strategy = "spatial", grid;
  std::string ram;
  std::string device;          // profile name or .json: caps and emulated time
  std::string requantization;  // pytorch | cmsis; empty: the model's own
  int64_t limit = 0;           // the first K test images; 0: all
  std::string json_path;       // write the result as JSON
};
// Top-1 accuracy on a data set's test split, under MPI like run (N+1 ranks).
int eval_command(const EvalOptions& options);

struct QuantizeOptions {
  std::string model_path;
  std::string output_path;
  std::string calib_path;  // calibration inputs (.h5 with /input [K,C,H,W])
  std::string observer = "minmax";
  std::string requantization;    // pytorch | cmsis; empty: pytorch
  std::string weights = "int8";  // int8 (calibrated quint8 model) | fp16 (float16 weights only)
  bool per_tensor = false;       // one weight scale per layer instead of per output channel
};
// Post-training quantization of a float model file; no MPI.
int quantize_command(const QuantizeOptions& options);

}  // namespace splitinfer
