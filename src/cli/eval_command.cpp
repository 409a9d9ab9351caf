// `mpirun -np N+1 splitinfer eval MODEL.h5 --nodes N`: rank 0 plans the model
// into a temporary directory, then the runtime runs that plan once per test
// image of the data set (src/runtime/session.hpp) and rank 0 counts the
// top-1 hits.
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>

#include "../../io/dataset.hpp"
#include "../../io/input_file.hpp"
#include "../../io/model_file.hpp"
#include "../../io/output_file.hpp"
#include "../../io/plan_file.hpp"
#include "../../partition/strategy_registry.hpp"
#include "../format.hpp"
#include "../runtime/mpi_transport.hpp"
#include "../runtime/session.hpp"
#include "commands.hpp"
#include "progress.hpp"

namespace splitinfer {
namespace {

// Plans `options.model_path` for the evaluation (rank 0) into `plan_dir`.
void plan_for_eval(const EvalOptions& options, const std::string& plan_dir) {
  const Model model = read_model(options.model_path);
  PlanOptions plan_options;
  plan_options.nodes = options.nodes;
  plan_options.strategy = parse_strategy(options.strategy);
  plan_options.grid = options.grid;
  if (!options.device.empty()) {  // its RAM and flash are the caps unless --ram says
    plan_options.device = load_device(options.device);
    plan_options.ram_cap_bytes = plan_options.device->ram_bytes;
    plan_options.flash_cap_bytes = plan_options.device->flash_bytes;
  }
  if (!options.ram.empty()) plan_options.ram_cap_bytes = parse_bytes(options.ram, "--ram");
  std::ifstream file(options.model_path, std::ios::binary);
  std::stringstream content;
  content << file.rdbuf();
  plan_options.model_digest = digest(content.str());
  write_plan(plan_dir, model, make_plan(model, plan_options));
}

// The top-1 counts, and a progress bar on rank 0.
struct Tally {
  int64_t correct = 0, done = 0;
  std::unique_ptr<ProgressBar> progress;
};

void print_result(const EvalOptions& options, const RunResult& run, const Tally& tally) {
  const Model& model = run.model;
  const bool quantized = model.layers[model.output].quantized();
  const double accuracy = static_cast<double>(tally.correct) / static_cast<double>(tally.done);
  std::printf(
      "%s on %s (%lld test images), %d node(s), strategy %s%s%s: top-1 %.2f%% (%lld correct)\n",
      model.name.c_str(), options.dataset.c_str(), static_cast<long long>(tally.done),
      run.plan.nodes, strategy_name(run.plan.strategy), quantized ? ", int8 " : "",
      quantized ? requantization_name(model.requantization) : "", accuracy * 100,
      static_cast<long long>(tally.correct));
  for (const auto& node : run.stats["nodes"])
    std::printf("node %d: peak RAM %s (predicted %s), flash %s\n", node["rank"].get<int>(),
                format_bytes(node["peak_ram_bytes"].get<uint64_t>()).c_str(),
                format_bytes(node["predicted_peak_ram_bytes"].get<uint64_t>()).c_str(),
                format_bytes(node["flash_bytes"].get<uint64_t>()).c_str());
  if (!run.plan.devices.empty())
    std::printf("emulated time per inference %.3f ms on %s\n",
                run.plan.emulated.total_seconds * 1e3, cluster_name(run.plan.devices).c_str());
  if (options.json_path.empty()) return;
  nlohmann::json result = {{"model", options.model_path},
                           {"name", model.name},
                           {"dataset", options.dataset},
                           {"images", tally.done},
                           {"correct", tally.correct},
                           {"top1", accuracy},
                           {"nodes", run.plan.nodes},
                           {"strategy", strategy_name(run.plan.strategy)},
                           {"dtype", dtype_name(model.layers[model.output].dtype)},
                           {"emulated_seconds", run.stats["emulated_seconds"]},
                           {"node_stats", run.stats["nodes"]}};
  if (quantized) result["requantization"] = requantization_name(model.requantization);
  write_json(options.json_path, result);
}

}  // namespace

int eval_command(const EvalOptions& options) {
  const std::unique_ptr<Transport> transport = make_mpi_transport();
  const int rank = transport->rank();
  // Rank 0 plans into a temporary directory that every rank then reads (on a
  // cluster, TMPDIR must be a shared file system).
  std::string plan_dir;
  struct RemoveAtEnd {
    std::string dir;
    ~RemoveAtEnd() {
      if (!dir.empty()) std::filesystem::remove_all(dir);
    }
  } remove_plan;
  RunSettings settings;
  ImageDataset dataset;
  std::vector<float> input;
  Tally tally;
  Model model;  // rank 0: the plan's (its metadata and output layer)
  const auto open_feed = [&](const Model& planned) {
    model = planned;
    dataset =
        read_fashion_mnist("test", options.data_dir.empty() ? kFashionMnistDir : options.data_dir);
    const Shape& out = model.layers[model.output].output_shape;
    if (out.rank != 2 || out.c != 10)
      throw Error("model '" + options.model_path + "' outputs " + out.str() +
                  "; Fashion-MNIST needs 10 class scores");
    Feed feed;
    feed.count = static_cast<int>(options.limit > 0 ? std::min(options.limit, dataset.count)
                                                    : dataset.count);
    image_to_input(dataset.image(0), static_cast<int>(dataset.cols), static_cast<int>(dataset.rows),
                   1, model.meta);  // shape errors here
    tally.progress = std::make_unique<ProgressBar>(feed.count, "eval");
    feed.input = [&](int index) -> const std::vector<float>& {
      input = image_to_input(dataset.image(index), static_cast<int>(dataset.cols),
                             static_cast<int>(dataset.rows), 1, model.meta);
      return input;
    };
    feed.output = [&](int index, const Bytes& result) {
      const std::vector<float> scores = real_values(model.layers[model.output], result);
      const size_t best = std::max_element(scores.begin(), scores.end()) - scores.begin();
      tally.correct += best == dataset.labels[index];
      ++tally.done;
      char note[32];
      std::snprintf(note, sizeof note, "acc %.2f%%", 100.0 * tally.correct / tally.done);
      tally.progress->update(tally.done, note);
    };
    return feed;
  };
  RunResult run;
  try {
    agreed_step(*transport, [&] {
      if (transport->ranks() != options.nodes + 1)
        throw Error("eval on " + std::to_string(options.nodes) + " node(s) runs with mpirun -np " +
                    std::to_string(options.nodes + 1) + " (a coordinator and the nodes), not -np " +
                    std::to_string(transport->ranks()));
      if (options.limit < 0) throw Error("--limit must not be negative");
      if (rank != 0) return;
      // --json may not overwrite the model or a file of the data set.
      const std::filesystem::path data =
          options.data_dir.empty() ? kFashionMnistDir : options.data_dir;
      check_output_paths(
          {{"--json", options.json_path}},
          {{"the model", options.model_path},
           {"the data set's", (data / "t10k-images-idx3-ubyte.gz").string()},
           {"the data set's", (data / "t10k-labels-idx1-ubyte.gz").string()}});
      plan_dir = (std::filesystem::temp_directory_path() /
                  ("splitinfer-eval-" + std::to_string(::getpid())))
                     .string();
      remove_plan.dir = plan_dir;
      plan_for_eval(options, plan_dir);
    });
    transport->broadcast(plan_dir);
    settings.plan_dir = plan_dir;
    settings.ram = options.ram;
    settings.requantization = options.requantization;
    run = run_session(*transport, agree_settings(*transport, settings), open_feed);
  } catch (const AgreedFailure& failure) {
    if (rank == 0)
      std::fprintf(stderr, "splitinfer: error: %s\n",
                   printable(failure.what(), std::string::npos).c_str());
    return 1;
  }
  if (rank != 0) return 0;
  tally.progress->finish();
  print_result(options, run, tally);
  return 0;
}

}  // namespace splitinfer
