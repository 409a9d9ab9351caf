// `mpirun -np N+1 splitinfer run PLANDIR --input X ...`: the options become
// the run's settings (rank 0's govern), the runtime runs the plan
// (src/runtime/session.hpp), and rank 0 writes the results and a summary.
#include <algorithm>
#include <cmath>
#include <cstdio>

#include "../../io/input_file.hpp"
#include "../../io/output_file.hpp"
#include "../../io/plan_file.hpp"
#include "../format.hpp"
#include "../runtime/mpi_transport.hpp"
#include "../runtime/session.hpp"
#include "commands.hpp"

namespace splitinfer {
namespace {

void write_output(const std::string& path, const RunResult& result) {
  const Model& model = result.model;
  const Layer& out_layer = model.layers[model.output];
  OutputFile file(path);
  file.write("output", out_layer.output_shape, real_values(out_layer, result.output).data());
  if (out_layer.quantized()) file.write_quantized("output_q", out_layer, result.output.data());
  for (size_t i = 0; i < result.dumps.size(); ++i) {
    const Layer& layer = model.layers[i];
    if (layer.quantized())
      file.write_quantized("layers/" + layer.name, layer, result.dumps[i].data());
    else
      file.write("layers/" + layer.name, layer.output_shape,
                 reinterpret_cast<const float*>(result.dumps[i].data()));
  }
  file.commit();
}

void print_summary(const RunResult& result) {
  const Model& model = result.model;
  const nlohmann::json& stats = result.stats;
  const std::vector<float> output = real_values(model.layers[model.output], result.output);
  const Shape& shape = model.layers[model.output].output_shape;
  if (shape.rank == 2 && shape.c > 1) {
    // Softmax of the logits, for the top-1 class and its probability.
    const float largest = *std::max_element(output.begin(), output.end());
    double total = 0;
    for (float logit : output) total += std::exp(static_cast<double>(logit - largest));
    const size_t best = std::max_element(output.begin(), output.end()) - output.begin();
    const std::string name =
        best < model.meta.class_names.size() ? model.meta.class_names[best] : "";
    std::printf("top-1: class %zu%s%s%s, probability %.4f\n", best, name.empty() ? "" : " (",
                name.c_str(), name.empty() ? "" : ")", 1.0 / total);
  } else {
    std::printf("output %s\n", shape.str().c_str());
  }
  for (const auto& node : stats["nodes"]) {
    std::printf("node %d: peak RAM %s (predicted %s), sent %s, received %s",
                node["rank"].get<int>(),
                format_bytes(node["peak_ram_bytes"].get<uint64_t>()).c_str(),
                format_bytes(node["predicted_peak_ram_bytes"].get<uint64_t>()).c_str(),
                format_bytes(node["bytes_sent"].get<uint64_t>()).c_str(),
                format_bytes(node["bytes_received"].get<uint64_t>()).c_str());
    if (node.contains("tasks"))
      std::printf(", %d tasks (%d stolen), busy %.3f ms, waited for work %.3f ms",
                  node["tasks"].get<int>(), node["tasks_stolen"].get<int>(),
                  node["busy_seconds"].get<double>() * 1e3,
                  node["idle_seconds"].get<double>() * 1e3);
    std::printf("\n");
  }
  std::printf("host time %.3f ms", stats["host_seconds"].get<double>() * 1e3);
  if (stats.contains("host_seconds_median"))
    std::printf(" (median of %d: %.3f ms)", stats["repeat"].get<int>(),
                stats["host_seconds_median"].get<double>() * 1e3);
  if (!stats["emulated_seconds"].is_null())
    std::printf(", emulated time %.3f ms on %s", stats["emulated_seconds"].get<double>() * 1e3,
                stats["device"].get<std::string>().c_str());
  std::printf("\n");
}

}  // namespace

int run_command(const RunOptions& options) {
  const std::unique_ptr<Transport> transport = make_mpi_transport();
  RunSettings mine;
  mine.plan_dir = options.plan_dir;
  mine.ram = options.ram;
  mine.repeat = options.repeat;
  mine.dump_layers = options.dump_layers;
  mine.reference_kernels = options.reference_kernels;
  mine.trace = !options.trace_path.empty();
  mine.requantization = options.requantization;
  mine.timeout = options.timeout;
  mine.slow = options.slow;
  mine.schedule = options.schedule;
  mine.rebalance = options.rebalance;
  mine.power = options.power;
  mine.seed = options.seed;
  mine.nvm_dir = options.nvm_dir;
  mine.resume = options.resume;
  mine.reconfigure = options.reconfigure;
  mine.job_ms = options.job_ms;
  mine.job_order = options.job_order;
  mine.power_trace = options.power_trace;
  const RunSettings settings = agree_settings(*transport, mine);

  std::vector<float> input;  // rank 0's, read once and fed to every inference
  const auto open_feed = [&](const Model& model) {
    // No output may overwrite the input, a file of the plan, or another output.
    std::vector<NamedPath> inputs = {{"--input", options.input_path},
                                     {"the plan's", plan_path(settings.plan_dir)}};
    for (int node = 1; node < transport->ranks(); ++node)
      inputs.push_back({"the plan's", node_path(settings.plan_dir, node)});
    check_output_paths({{"--output", options.output_path},
                        {"--stats", options.stats_path},
                        {"--trace", options.trace_path}},
                       inputs);
    input = read_input(options.input_path, model.meta);
    if (model.layers[0].dtype == DType::u8) {  // plan --input-pixels: the floats must be pixels
      Bytes pixels;
      input_map(model, input, pixels);
    }
    if (!options.output_path.empty()) OutputFile probe(options.output_path);
    Feed feed;
    feed.count = settings.repeat > 0 ? settings.repeat + 1 : 1;  // a warm-up, then K
    feed.input = [&](int) -> const std::vector<float>& { return input; };
    feed.output = [](int, const Bytes&) {};
    return feed;
  };
  RunResult result;
  try {
    result = run_session(*transport, settings, open_feed);
  } catch (const AgreedFailure& failure) {
    if (transport->rank() == 0)
      std::fprintf(stderr, "splitinfer: error: %s\n",
                   printable(failure.what(), std::string::npos).c_str());
    return 1;
  }
  if (transport->rank() != 0) return 0;
  if (!options.output_path.empty()) write_output(options.output_path, result);
  if (!options.stats_path.empty()) write_json(options.stats_path, result.stats);
  if (!options.trace_path.empty())
    write_json(options.trace_path,
               {{"traceEvents", result.trace_events}, {"displayTimeUnit", "ms"}});
  print_summary(result);
  return 0;
}

}  // namespace splitinfer
