// The splitinfer executable: inspect, plan, quantize, run and eval (under mpirun).
#include <mpi.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "../../io/hdf5.hpp"
#include "../../partition/strategy_registry.hpp"
#include "../error.hpp"
#include "../format.hpp"
#include "../runtime/exit_status.hpp"
#include "commands.hpp"

namespace {

// The message on one line, whatever bytes it carries from a file.
std::string one_line(const char* message) {
  return splitinfer::printable(message, std::string::npos);
}

// A failure after the ranks started talking: one line, then end every rank.
[[noreturn]] void abort_job(const char* message) {
  std::fprintf(stderr, "splitinfer: error: %s\n", one_line(message).c_str());
  std::fflush(stderr);
  splitinfer::record_exit_status(1);
  MPI_Abort(MPI_COMM_WORLD, 1);
  std::_Exit(1);
}

// The end of a run under MPI. A launcher that lets the other ranks run on
// when one exits non-zero (as splitinfer_mpirun starts runs, so that a killed
// node can be named) would also report success for a run whose ranks all
// failed: then rank 0, whose line is printed already, ends the job with
// MPI_Abort and its status, while the others wait in MPI_Finalize.
int end_mpi(int rank, int status) {
  const char* abort_on_failure = std::getenv("OMPI_MCA_orte_abort_on_non_zero_status");
  const bool survivors_run_on = abort_on_failure && (std::strcmp(abort_on_failure, "0") == 0 ||
                                                     std::strcmp(abort_on_failure, "false") == 0);
  if (rank == 0) splitinfer::record_exit_status(status);
  if (status != 0 && rank == 0 && survivors_run_on) {
    std::fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, status);
  }
  MPI_Finalize();
  return status;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace splitinfer;
  // Every file is read first by splitinfer-vet, beside this executable, in a
  // process of its own (io/hdf5.hpp): a file that crashes the HDF5 library is
  // refused, not fatal.
  {
    std::error_code error;
    const std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", error);
    h5::set_vet_program(
        ((error ? std::filesystem::path(argv[0]) : self).parent_path() / "splitinfer-vet").string());
  }
  const bool under_mpi =
      argc > 1 && (std::strcmp(argv[1], "run") == 0 || std::strcmp(argv[1], "eval") == 0);
  int rank = 0;
  if (under_mpi) {
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  }

  CLI::App app{
      "splitinfer: one CNN inference across a cluster of small memory-capped nodes (MPI ranks)"};
  app.require_subcommand(1);

  InspectOptions inspect;
  CLI::App* inspect_app =
      app.add_subcommand("inspect", "print every layer: shape, MACs, bytes, receptive field");
  inspect_app->add_option("model", inspect.model_path, "model file (.h5)")->required();
  inspect_app->add_flag("--json", inspect.json, "print JSON instead of a table");

  PlanCommandOptions plan;
  CLI::App* plan_app = app.add_subcommand(
      "plan", "partition a model over nodes: writes PLANDIR/plan.h5 and node_K.h5");
  plan_app->add_option("model", plan.model_path, "model file (.h5)")->required();
  plan_app->add_option("-o,--output", plan.output_dir, "plan directory to write")->required();
  plan_app->add_option("--nodes", plan.nodes,
                       "number of nodes (MPI ranks 1..N); default 1, or with --strategy auto "
                       "the fewest nodes that fit the caps");
  plan_app->add_option("--device", plan.device,
                       "device profile of the nodes: a name in partition/devices (teensy41, "
                       "esp32s3, msp432, rpi3, pynq-z1) or a .json file; sets the caps and "
                       "predicts the emulated time");
  plan_app->add_option("--devices", plan.devices,
                       "a mixed cluster, node by node: NAME:COUNT,... in node order (e.g. "
                       "teensy41:2,esp32s3:2) or a cluster .json file; each node gets its "
                       "device's caps and work in proportion to its speed, and the emulated "
                       "time times each on its own device")
      ->excludes("--device");
  plan_app->add_option("--ram", plan.ram,
                       "RAM cap per node, e.g. 512KiB (default: the device's, else unlimited)");
  plan_app->add_option("--flash", plan.flash,
                       "flash cap per node, e.g. 8MiB (default: the device's, else unlimited)");
  plan_app->add_option("--strategy", plan.strategy, "partition strategy: " + strategy_help());
  plan_app->add_option("--grid", plan.grid, "tile grid RxC (spatial, fused; default Nx1)");
  plan_app->add_option("--fuse", plan.fuse,
                       "fused: layers per fused block (default 0: every run of spatial layers "
                       "is one block)");
  plan_app->add_flag("--reuse", plan.reuse,
                     "fused: tiles of one checkerboard colour fetch their borders from their "
                     "neighbours instead of recomputing them");
  plan_app->add_option("--stream", plan.stream,
                       "spatial, fused: compute runs of layers part by part, in parts of at most "
                       "R rows (RxC: and C columns) of each run's last layer, so no map inside a "
                       "run is ever whole on a node (spatial: each widening block such as an "
                       "inverted residual; fused: each block, its tiles in sequence)");
  plan_app->add_option("--tasks", plan.tasks,
                       "spatial, fused: cut the maps into T tiles (T >= N; --grid RxC with R*C = "
                       "T, default Tx1) run as tasks: under run --schedule steal an idle node "
                       "takes tasks from busy ones (every node keeps the weights of the tasks it "
                       "may take)");
  plan_app
      ->add_option("--row-shares", plan.row_shares,
                   "spatial in rows: each node's share of every map's rows, e.g. 2,1 for a node "
                   "twice as fast as the other (default: equal)")
      ->delimiter(',');
  plan_app->add_flag("--weights-in-place", plan.weights_in_place,
                     "nodes read weights where flash holds them (memory-mapped flash, "
                     "execute-in-place) instead of copying each layer's into RAM; float16 "
                     "weights are still widened into RAM");
  plan_app->add_flag("--input-pixels", plan.input_pixels,
                     "the coordinator (a camera) sends the input as 8-bit pixels, which the "
                     "model's first op normalises and quantizes on the nodes: a quarter of "
                     "float32's bytes (int8 models; run takes an image of the input size)");
  plan_app->add_flag("--keep-weights", plan.keep_weights,
                     "with --stream: each run reads its layers' weights from flash once and keeps "
                     "them in RAM to its end (boards with RAM to spare), instead of once per part");

  RunOptions run;
  CLI::App* run_app =
      app.add_subcommand("run", "run a plan: mpirun -np N+1 splitinfer run PLANDIR --input X");
  run_app->add_option("plan", run.plan_dir, "plan directory")->required();
  run_app
      ->add_option("--input", run.input_path, "input: .h5 with /input (NCHW float32), or .png/.jpg")
      ->required();
  run_app->add_option("--output", run.output_path,
                      "write /output (and /layers with --dump-layers) to this .h5");
  run_app->add_option("--stats", run.stats_path, "write per-node statistics to this .json");
  run_app->add_option("--trace", run.trace_path, "write a Chrome trace-event .json");
  run_app->add_option("--ram", run.ram, "RAM cap per node, overriding the plan's");
  run_app->add_option("--repeat", run.repeat,
                      "run K inferences after one warm-up; reports the median");
  run_app->add_flag("--dump-layers", run.dump_layers, "also write every layer's output");
  run_app->add_option("--slow", run.slow,
                      "NODE:FACTOR[,NODE:FACTOR...]: make a node take FACTOR (1 to 1000) times as "
                      "long per layer, sleeping the extra time (stragglers on purpose)");
  run_app
      ->add_option("--schedule", run.schedule,
                   "plans with tasks (plan --tasks): static (each node runs its own tasks, the "
                   "default) or steal (a node that runs out takes tasks from the node with the "
                   "most left)")
      ->check(CLI::IsMember({"static", "steal"}));
  run_app->add_flag("--rebalance", run.rebalance,
                    "spatial plans in rows (Nx1), with --repeat: after each inference the rows "
                    "move toward equal node times (measured), within the RAM cap; the output "
                    "stays bit for bit the same");
  run_app->add_option("--power", run.power,
                      "MEAN_MS[:RECHARGE_MS]: nodes on harvested energy lose power at random "
                      "instants of their device's time (exponential, mean MEAN_MS), their RAM "
                      "lost, and resume from NVM after RECHARGE_MS (default 0); the output stays "
                      "bit for bit the same. Plans made for a device with an NVM (msp432, teensy41, esp32s3)");
  run_app->add_option("--seed", run.seed, "seed of the power failures (--power); default 0");
  run_app->add_option("--power-trace", run.power_trace,
                      "replay a recorded supply instead of --power's random failures: a text "
                      "file, one cycle per line 'ON_MS OFF_MS' (device time with power, then "
                      "without), repeated when it ends");
  run_app->add_option("--nvm", run.nvm_dir,
                      "directory of each node's NVM file under --power (node_K.nvm); default "
                      "splitinfer-nvm/PLAN_ID in the working directory");
  run_app
      ->add_option("--reconfigure", run.reconfigure,
                   "job sizes under --power, as DynBal configures its tiles: static (every job "
                   "about --job-ms of device time, cut by --job-order; default) or dynamic (per "
                   "layer the job duration and order with the least expected time under the "
                   "failure rate measured so far: inputs or weights read again for more jobs "
                   "against work lost in longer ones)")
      ->check(CLI::IsMember({"static", "dynamic"}));
  run_app->add_option("--job-ms", run.job_ms,
                      "--reconfigure static: each job's device time in ms (default 2), or "
                      "'layer' for one job per layer");
  run_app
      ->add_option("--job-order", run.job_order,
                   "--reconfigure static: how jobs cut a layer's output: channels (bands of "
                   "channels with every row: each job reads all of a convolution's input; "
                   "default) or rows (bands of rows with every channel: each job reads all the "
                   "weights)")
      ->check(CLI::IsMember({"channels", "rows"}));
  run_app->add_flag("--resume", run.resume,
                    "continue the inference whose processes were killed from what the NVM files "
                    "hold (the same plan, input and --nvm; a plan made for a device with an NVM); "
                    "the output is the same bit for bit. --nvm alone keeps the jobs in NVM "
                    "without power failures, so that a killed run can be resumed");
  run_app
      ->add_option("--requantization", run.requantization,
                   "int8 models: pytorch (PyTorch's float32 arithmetic, bit for bit) or cmsis "
                   "(integer only, as an MCU runs it); default: the model file's")
      ->check(CLI::IsMember({"pytorch", "cmsis"}));
  run_app->add_option("--timeout", run.timeout,
                      "seconds any rank may wait for another before the run ends, naming the "
                      "node that stopped responding; default: 10x the model's MACs on one slow "
                      "core, at least 3 s");
  run_app->add_flag("--reference-kernels", run.reference_kernels,
                    "use the plain-loop kernels (slow; for checking)");

  EvalOptions eval;
  CLI::App* eval_app = app.add_subcommand("eval",
                                          "top-1 accuracy on a data set's test images: mpirun -np "
                                          "N+1 splitinfer eval MODEL.h5 --nodes N");
  eval_app->add_option("model", eval.model_path, "model file (.h5), float32 or int8")->required();
  eval_app->add_option("--dataset", eval.dataset, "data set (its test split)")
      ->check(CLI::IsMember({"fashion-mnist"}))
      ->capture_default_str();
  eval_app->add_option("--data-dir", eval.data_dir,
                       "where the data set's files are (default: Debian's dataset-fashion-mnist)");
  eval_app->add_option("--nodes", eval.nodes, "number of nodes (MPI ranks 1..N)")
      ->capture_default_str();
  eval_app->add_option("--strategy", eval.strategy, "partition strategy: " + strategy_names())
      ->capture_default_str();
  eval_app->add_option("--grid", eval.grid, "tile grid RxC (spatial, fused)");
  eval_app->add_option("--ram", eval.ram,
                       "RAM cap per node (default: the device's, else unlimited)");
  eval_app->add_option("--device", eval.device,
                       "device profile of the nodes (name or .json): caps and emulated time");
  eval_app
      ->add_option("--requantization", eval.requantization,
                   "int8 models: pytorch or cmsis (default: the model file's)")
      ->check(CLI::IsMember({"pytorch", "cmsis"}));
  eval_app->add_option("--limit", eval.limit, "evaluate only the first K test images");
  eval_app->add_option("--json", eval.json_path, "also write the result to this .json");

  QuantizeOptions quantize;
  CLI::App* quantize_app = app.add_subcommand(
      "quantize",
      "int8 post-training quantization of a float model (MinMax calibration), or float16 weights");
  quantize_app->add_option("model", quantize.model_path, "float model file (.h5)")->required();
  quantize_app->add_option("-o,--output", quantize.output_path, "model file to write")->required();
  quantize_app->add_option("--calib", quantize.calib_path,
                           "calibration inputs: .h5 with /input float32 [K,C,H,W]");
  quantize_app->add_option("--observer", quantize.observer, "activation observer")
      ->check(CLI::IsMember({"minmax"}))
      ->capture_default_str();
  quantize_app
      ->add_option("--requantization", quantize.requantization,
                   "how the int8 model requantizes: pytorch (default) or cmsis")
      ->check(CLI::IsMember({"pytorch", "cmsis"}));
  quantize_app->add_flag("--per-tensor", quantize.per_tensor,
                         "one weight scale per layer (default: one per output channel)");
  quantize_app
      ->add_option("--weights", quantize.weights,
                   "int8: calibrated quint8 model; fp16: float16 weights, graph unchanged")
      ->check(CLI::IsMember({"int8", "fp16"}))
      ->capture_default_str();

  int status = 0;
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& help) {
    status = rank == 0 ? app.exit(help) : 0;
    return under_mpi ? end_mpi(rank, status) : status;
  } catch (const CLI::ParseError& failure) {
    if (rank == 0)
      std::fprintf(stderr, "splitinfer: error: %s (see --help)\n",
                   one_line(failure.what()).c_str());
    return under_mpi ? end_mpi(rank, 2) : 2;
  }

  try {
    if (inspect_app->parsed()) status = inspect_command(inspect);
    if (plan_app->parsed()) status = plan_command(plan);
    if (run_app->parsed()) status = run_command(run);
    if (eval_app->parsed()) status = eval_command(eval);
    if (quantize_app->parsed()) status = quantize_command(quantize);
  } catch (const std::exception& failure) {
    if (under_mpi) abort_job(failure.what());
    std::fprintf(stderr, "splitinfer: error: %s\n", one_line(failure.what()).c_str());
    return 1;
  }
  return under_mpi ? end_mpi(rank, status) : status;
}
