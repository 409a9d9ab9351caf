// `mpirun -np N+1 splitinfer run PLANDIR --input X ...`: rank 0 coordinates
// (reads the input, sends it, gathers the output and statistics, writes the
// results); ranks 1..N are nodes, each opening only plan.h5 and its own
// node_K.h5 and computing within its RAM cap.
#include <mpi.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>

#include "../../io/dataset.hpp"
#include "../../io/input_file.hpp"
#include "../../io/model_file.hpp"
#include "../../io/output_file.hpp"
#include "../../io/plan_file.hpp"
#include "../../partition/plan.hpp"
#include "../../partition/prediction.hpp"
#include "../../partition/strategy_registry.hpp"
#include "../error.hpp"
#include "../executor.hpp"
#include "../format.hpp"
#include "commands.hpp"
#include "mpi_exchange.hpp"
#include "progress.hpp"

namespace splitinfer {
namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Every rank calls this at the same point with what it found. If any rank
// failed, the lowest failing rank prints its message and every rank gets
// true (exit non-zero), so a bad input never leaves a rank waiting.
bool any_rank_failed(const std::optional<std::string>& failure) {
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  const int mine = failure ? rank : INT_MAX;
  int first = INT_MAX;
  MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
  if (first == INT_MAX) return false;
  if (first == rank) std::fprintf(stderr, "splitinfer: error: %s\n", failure->c_str());
  return true;
}

template <typename Step>
std::optional<std::string> attempt(Step step) {
  try {
    step();
    return std::nullopt;
  } catch (const std::exception& failure) {
    return std::string(failure.what());
  }
}

void send_text(const std::string& text, int to, int tag) {
  MPI_Send(text.data(), static_cast<int>(text.size()), MPI_CHAR, to, tag, MPI_COMM_WORLD);
}

std::string receive_text(int from, int tag) {
  MPI_Status status;
  MPI_Probe(from, tag, MPI_COMM_WORLD, &status);
  int length = 0;
  MPI_Get_count(&status, MPI_CHAR, &length);
  std::string text(length, '\0');
  MPI_Recv(text.data(), length, MPI_CHAR, from, tag, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
  return text;
}

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  const size_t middle = values.size() / 2;
  return values.size() % 2 ? values[middle] : (values[middle - 1] + values[middle]) / 2;
}

// Chrome trace events ("complete" slices) of one rank: its own track.
nlohmann::json trace_events(const Trace& trace, int rank) {
  nlohmann::json events = nlohmann::json::array();
  events.push_back(
      {{"name", "thread_name"},
       {"ph", "M"},
       {"pid", 0},
       {"tid", rank},
       {"args",
        {{"name", rank == 0 ? std::string("coordinator") : "node " + std::to_string(rank)}}}});
  for (const Trace::Slice& slice : trace.slices())
    events.push_back(
        {{"name", slice.name},
         {"cat", slice.category},
         {"ph", "X"},
         {"ts", slice.start_us},
         {"dur", slice.duration_us},
         {"pid", 0},
         {"tid", rank},
         {"args", {{"bytes_sent", slice.bytes_sent}, {"bytes_received", slice.bytes_received}}}});
  return events;
}

using Bytes = std::vector<unsigned char>;  // a whole map of any dtype

Bytes as_bytes(const std::vector<float>& values) {
  const auto* first = reinterpret_cast<const unsigned char*>(values.data());
  return Bytes(first, first + values.size() * sizeof(float));
}

// A whole map as real numbers: float32 as it is, quint8 dequantized.
std::vector<float> real_values(const Layer& layer, const Bytes& map) {
  if (!layer.quantized()) {
    std::vector<float> values(map.size() / sizeof(float));
    std::memcpy(values.data(), map.data(), map.size());
    return values;
  }
  std::vector<float> values(map.size());
  for (size_t i = 0; i < map.size(); ++i)
    values[i] = static_cast<float>(map[i] - layer.quant.zero_point) * layer.quant.scale;
  return values;
}

struct Setup {
  Model model;
  Plan plan;
  uint64_t ram_cap = ArenaLayout::kUnlimited;
  NodeProgram program;  // nodes: their own
};

// What the coordinator feeds the nodes, inference by inference, and what it
// does with each output.
struct Feed {
  int count = 1;
  std::function<const std::vector<float>&(int index)> input;
  std::function<void(int index, const Bytes& output)> output;
};

// What every node does: run its program `inferences` times, exchanging with
// its neighbours, then report its statistics to the coordinator.
void run_node(int rank, const RunOptions& options, Setup& setup, MPI_Comm node_comm,
              int inferences) {
  const std::vector<int> neighbours = setup.program.neighbours;
  Executor executor(setup.model, std::move(setup.program), "node " + std::to_string(rank),
                    options.reference_kernels ? Kernels::reference : Kernels::fast);
  // Dumps show every layer's own values, so a convolution keeps its own then.
  executor.set_fuse_activations(!options.dump_layers);
  Arena arena(setup.ram_cap);
  MpiExchange exchange(node_comm, neighbours);
  uint64_t sent = 0, received = 0;
  double host_seconds = 0;
  Trace trace;
  const bool tracing = !options.trace_path.empty();
  for (int run = 0; run < inferences; ++run) {
    const bool last = run == inferences - 1;
    if (last && tracing) {  // the traced inference starts together on every rank
      MPI_Barrier(MPI_COMM_WORLD);
      trace.set_origin();
      executor.set_trace(&trace);
      exchange.set_trace(&trace);
    }
    exchange.bytes_sent = exchange.bytes_received = 0;  // per inference
    uint64_t output_bytes = 0;
    const auto start = Clock::now();
    executor.run(
        arena, exchange,
        [&](int, const Tensor& tensor) {
          // Dumps are a debugging aid outside the plan's traffic: not counted.
          if (options.dump_layers && last)
            MPI_Send(tensor.data, static_cast<int>(tensor.shape.elements()),
                     element_mpi_type(tensor), 0, kDumpTag, MPI_COMM_WORLD);
        },
        [&](const Tensor& output) {
          MPI_Send(output.data, static_cast<int>(output.shape.elements()), element_mpi_type(output),
                   0, kOutputTag, MPI_COMM_WORLD);
          output_bytes = output.bytes();
        });
    host_seconds = seconds_since(start);
    sent = exchange.bytes_sent + output_bytes;
    received = exchange.bytes_received;
  }
  const NodePlan& predicted = setup.plan.node_plans[rank - 1];
  nlohmann::json stats = {
      {"rank", rank},
      {"peak_ram_bytes", arena.layout().peak_bytes()},
      {"predicted_peak_ram_bytes", predicted.predicted_peak_ram_bytes},
      {"ram_cap_bytes",
       setup.ram_cap == ArenaLayout::kUnlimited ? nlohmann::json() : nlohmann::json(setup.ram_cap)},
      {"flash_bytes", setup.model.weight_bytes()},
      {"predicted_flash_bytes", predicted.flash_bytes},
      {"bytes_sent", sent},
      {"predicted_bytes_sent", predicted.predicted_bytes_sent},
      {"bytes_received", received},
      {"predicted_bytes_received", predicted.predicted_bytes_received},
      {"host_seconds", host_seconds}};
  if (tracing) stats["trace"] = trace_events(trace, rank);
  send_text(stats.dump(), 0, kStatsTag);
}

// What the coordinator keeps from one inference to the next, so that an
// inference does not fault in fresh pages (some 0.6 ms for a 224x224 input's
// pieces on this machine).
struct CoordinatorBuffers {
  std::vector<Bytes> maps;   // whole maps relayed to the coordinator
  std::deque<Bytes> pieces;  // contiguous copies of the pieces it sends
};

// One inference as the coordinator sees it, layer by layer in the nodes'
// order: send every node the pieces it needs from the coordinator (the input;
// in relay plans every input), receive what nodes relay to it, collect dumps
// and the output (expected at `output_expected`, when an inference before
// was timed).
void coordinate(const Setup& setup, const std::vector<NodeProgram>& programs,
                const std::vector<float>& input, Bytes& output, std::vector<Bytes>* dumps,
                const ExpectedEnd& output_expected, CoordinatorBuffers& buffers) {
  const Model& model = setup.model;
  buffers.maps.resize(model.layers.size());
  // The whole maps the coordinator holds: the input, and relayed maps.
  std::vector<const unsigned char*> whole(model.layers.size(), nullptr);
  whole[0] = reinterpret_cast<const unsigned char*>(input.data());
  std::vector<MPI_Request> requests;
  size_t pieces_sent = 0;
  const auto map_bytes = [&](int layer_index) {
    const Layer& layer = model.layers[layer_index];
    return static_cast<size_t>(layer.output_shape.elements()) * dtype_bytes(layer.dtype);
  };
  const auto gather = [&](int layer_index, void* whole, int tag, bool relayed_only,
                          const ExpectedEnd& expected = {}) {
    const Layer& layer = model.layers[layer_index];
    for (const NodeProgram& program : programs) {
      const LayerStep& step = program.layers[layer_index];
      if (step.out.empty() || (relayed_only && !step.to_coordinator)) continue;
      PieceType type(Region::whole(layer.output_shape), step.out, dtype_bytes(layer.dtype));
      receive_without_spinning(type.at(whole), type.count(), type.type(), program.node, tag,
                               MPI_COMM_WORLD, expected);
    }
  };
  if (dumps) dumps->assign(model.layers.size(), {});
  for (size_t i = 1; i < model.layers.size(); ++i) {
    const Layer& layer = model.layers[i];
    for (const NodeProgram& program : programs)
      for (size_t slot = 0; slot < layer.inputs.size(); ++slot)
        for (const Transfer& piece : program.layers[i].inputs[slot].receives) {
          if (piece.peer != 0) continue;
          const int source = layer.inputs[slot];
          // Sent from a contiguous copy: the node's MPI can then read it
          // itself (single copy, RDMA), while a strided piece moves in
          // fragments, each waiting for this rank to poll.
          const size_t element_bytes = dtype_bytes(model.layers[source].dtype);
          if (buffers.pieces.size() == pieces_sent) buffers.pieces.emplace_back();
          Bytes& packed = buffers.pieces[pieces_sent++];
          packed.resize(piece.region.bytes(element_bytes));
          copy_region(whole[source], Region::whole(model.layers[source].output_shape),
                      packed.data(), piece.region, piece.region, element_bytes);
          requests.emplace_back();
          MPI_Isend(packed.data(), static_cast<int>(piece.region.elements()),
                    element_mpi_type(element_bytes), program.node, kInputTag, MPI_COMM_WORLD,
                    &requests.back());
        }
    const bool relayed =
        std::any_of(programs.begin(), programs.end(),
                    [&](const NodeProgram& program) { return program.layers[i].to_coordinator; });
    if (relayed) {
      buffers.maps[i].resize(map_bytes(static_cast<int>(i)));
      gather(static_cast<int>(i), buffers.maps[i].data(), kRelayTag, true);
      whole[i] = buffers.maps[i].data();
    }
    if (dumps) {
      (*dumps)[i].resize(map_bytes(static_cast<int>(i)));
      gather(static_cast<int>(i), (*dumps)[i].data(), kDumpTag, false);
    }
  }
  if (dumps) (*dumps)[0] = as_bytes(input);
  // Every piece the nodes need from here is taken before the long wait for
  // the output (where MPI cannot let the receiver read a piece itself, it
  // moves only while this rank polls), and every node has what it needs
  // before it sends its output: no deadlock.
  wait_without_spinning(requests);
  output.resize(map_bytes(model.output));
  gather(model.output, output.data(), kOutputTag, false, output_expected);
}

void print_summary(const Model& model, const std::vector<float>& output,
                   const nlohmann::json& stats) {
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
  for (const auto& node : stats["nodes"])
    std::printf("node %d: peak RAM %s (predicted %s), sent %s, received %s\n",
                node["rank"].get<int>(),
                format_bytes(node["peak_ram_bytes"].get<uint64_t>()).c_str(),
                format_bytes(node["predicted_peak_ram_bytes"].get<uint64_t>()).c_str(),
                format_bytes(node["bytes_sent"].get<uint64_t>()).c_str(),
                format_bytes(node["bytes_received"].get<uint64_t>()).c_str());
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

int run_agreed(const RunOptions& options);

int run_command(const RunOptions& options) {
  // Rank 0's options govern what the nodes do (dumps, repeats, caps, kernels),
  // so ranks started with different arguments still follow one protocol.
  RunOptions agreed = options;
  const int requantization = options.requantization.empty()      ? 0
                             : options.requantization == "cmsis" ? 2
                                                                 : 1;
  int flags[5] = {options.repeat, options.dump_layers, options.reference_kernels,
                  !options.trace_path.empty(), requantization};
  MPI_Bcast(flags, 5, MPI_INT, 0, MPI_COMM_WORLD);
  agreed.repeat = flags[0], agreed.dump_layers = flags[1], agreed.reference_kernels = flags[2];
  agreed.requantization = flags[4] == 0 ? "" : flags[4] == 2 ? "cmsis" : "pytorch";
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  if (rank != 0)
    agreed.trace_path = flags[3] ? "on" : "";  // nodes only need to know whether to record
  int ram_length = static_cast<int>(options.ram.size());
  MPI_Bcast(&ram_length, 1, MPI_INT, 0, MPI_COMM_WORLD);
  agreed.ram.resize(ram_length);
  MPI_Bcast(agreed.ram.data(), ram_length, MPI_CHAR, 0, MPI_COMM_WORLD);
  return run_agreed(agreed);
}

// Runs a plan on every rank: phases 1 and 2 agree collectively that the plan,
// the feed (rank 0) and every node's weights and memory are fine; phase 3
// runs `feed.count` inferences. Rank 0 returns the statistics (the nodes'
// gathered); nodes return an empty object; nullopt when phase 1 or 2 failed
// (the message is printed).
static std::optional<nlohmann::json> run_plan(const RunOptions& options,
                                              const std::function<Feed(const Model&)>& open_feed,
                                              Setup& setup, std::vector<Bytes>* dumps) {
  int rank = 0, world = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &world);
  Feed feed;

  // Phase 1, every rank: read the plan; check the rank count.
  if (any_rank_failed(attempt([&] {
        if (options.repeat < 0 || options.repeat > 1000000)
          throw Error("--repeat must be between 0 and 1000000");
        read_plan(options.plan_dir, setup.model, setup.plan);
        if (!options.requantization.empty())
          setup.model.requantization = requantization_from_name(options.requantization);
        if (world != setup.plan.nodes + 1)
          throw Error("the plan '" + options.plan_dir + "' is for " +
                      std::to_string(setup.plan.nodes) + " node(s), so it runs with mpirun -np " +
                      std::to_string(setup.plan.nodes + 1) + ", not -np " + std::to_string(world));
        setup.ram_cap = options.ram.empty() ? setup.plan.ram_cap_bytes : parse_bytes(options.ram);
      })))
    return std::nullopt;
  // Phase 2: rank 0 opens the feed (reads the input); each node its own
  // weights, and checks that its memory fits its cap before computing anything.
  if (any_rank_failed(attempt([&] {
        if (rank == 0) {
          feed = open_feed(setup.model);
          return;
        }
        read_node_weights(options.plan_dir, rank, setup.plan, setup.model);
        setup.program = node_program(setup.model, setup.plan, rank);
        const std::string label = "node " + std::to_string(rank);
        ArenaLayout layout(setup.ram_cap);
        try {
          replay_memory(setup.model, setup.program, layout, label);
        } catch (const Error& too_small) {
          ArenaLayout unlimited;
          throw Error(std::string(too_small.what()) + "; this node needs --ram " +
                      std::to_string(replay_memory(setup.model, setup.program, unlimited, label)) +
                      " at least");
        }
      })))
    return std::nullopt;

  // Phase 3: compute. A failure from here on is a bug, not a bad input; the
  // caller aborts the whole job.
  int inferences = feed.count;
  MPI_Bcast(&inferences, 1, MPI_INT, 0, MPI_COMM_WORLD);
  MPI_Comm node_comm = MPI_COMM_NULL;  // ranks 1..N
  MPI_Comm_split(MPI_COMM_WORLD, rank == 0 ? MPI_UNDEFINED : 1, rank, &node_comm);
  if (rank != 0) {
    run_node(rank, options, setup, node_comm, inferences);
    MPI_Comm_free(&node_comm);
    return nlohmann::json::object();
  }
  const Model& model = setup.model;
  const std::vector<NodeProgram> programs = node_programs(model, setup.plan);
  Bytes output;
  CoordinatorBuffers buffers;
  std::vector<double> times;
  Trace trace;
  for (int run = 0; run < inferences; ++run) {
    const bool last = run == inferences - 1;
    if (last && !options.trace_path.empty()) {
      MPI_Barrier(MPI_COMM_WORLD);
      trace.set_origin();
    }
    const std::vector<float>& input = feed.input(run);
    const auto start = Clock::now();
    const double traced_start = trace.now_us();
    // The output is expected as long after the start as the inference before
    // took (the warm-up's included).
    ExpectedEnd expected;
    if (!times.empty()) {
      expected.typical =
          std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(times.back()));
      expected.at = start + expected.typical;
    }
    coordinate(setup, programs, input, output, options.dump_layers && last ? dumps : nullptr,
               expected, buffers);
    times.push_back(seconds_since(start));
    if (last) trace.add("inference (input out, output in)", "coordinator", traced_start);
    feed.output(run, output);
  }
  nlohmann::json stats = {{"model", model.name},
                          {"plan", options.plan_dir},
                          {"strategy", strategy_name(setup.plan.strategy)},
                          {"node_count", setup.plan.nodes},
                          {"host_seconds", times.back()},
                          {"emulated_seconds", nullptr},  // plans without a device profile
                          {"nodes", nlohmann::json::array()}};
  // The plan's prediction for its device profile (partition/cost_model.hpp).
  if (setup.plan.device) {
    stats["emulated_seconds"] = setup.plan.emulated.total_seconds;
    stats["device"] = setup.plan.device->name;
  }
  if (model.layers[model.output].quantized())
    stats["requantization"] = requantization_name(model.requantization);
  if (takes_option(setup.plan.strategy, StrategyOption::grid))
    stats["grid"] = {setup.plan.grid_rows, setup.plan.grid_cols};
  if (options.repeat > 0) {
    times.erase(times.begin());  // the warm-up
    stats["repeat"] = options.repeat;
    stats["host_seconds_median"] = median(times);
  }
  // The coordinator's own traffic: the input pieces (every relayed piece in
  // relay plans) it sends, the outputs (and relayed regions) it receives.
  uint64_t coordinator_sent = 0, coordinator_received = 0, total_moved = 0;
  for (const NodeProgram& program : programs)
    for (size_t i = 0; i < model.layers.size(); ++i) {
      const LayerStep& step = program.layers[i];
      for (const InputSlot& slot : step.inputs)
        for (const Transfer& piece : slot.receives)
          if (piece.peer == 0) coordinator_sent += piece.region.bytes(slot.element_bytes);
      if (step.to_coordinator || static_cast<int>(i) == model.output)
        coordinator_received += step.out.bytes(step.element_bytes);
    }
  stats["coordinator"] = {{"bytes_sent", coordinator_sent},
                          {"bytes_received", coordinator_received}};
  total_moved = coordinator_sent;
  for (int node = 1; node <= setup.plan.nodes; ++node) {
    stats["nodes"].push_back(nlohmann::json::parse(receive_text(node, kStatsTag)));
    total_moved += stats["nodes"].back()["bytes_sent"].get<uint64_t>();
    stats["nodes"].back()["emulated_seconds"] =
        setup.plan.device ? nlohmann::json(setup.plan.emulated.nodes[node - 1].finish)
                          : nlohmann::json();
  }
  stats["total_bytes_moved"] = total_moved;  // every byte sent by any rank, once
  if (!options.trace_path.empty()) {
    nlohmann::json events = trace_events(trace, 0);
    for (auto& node : stats["nodes"]) {
      for (auto& event : node["trace"]) events.push_back(std::move(event));
      node.erase("trace");
    }
    write_json(options.trace_path, {{"traceEvents", events}, {"displayTimeUnit", "ms"}});
  }
  return stats;
}

int run_agreed(const RunOptions& options) {
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  Setup setup;
  std::vector<float> input;
  Bytes output;
  std::vector<Bytes> dumps;
  const auto open_feed = [&](const Model& model) {
    input = read_input(options.input_path, model.meta);
    if (!options.output_path.empty()) OutputFile probe(options.output_path);
    Feed feed;
    feed.count = options.repeat > 0 ? options.repeat + 1 : 1;  // a warm-up, then K
    feed.input = [&](int) -> const std::vector<float>& { return input; };
    feed.output = [&](int, const Bytes& result) { output = result; };
    return feed;
  };
  const std::optional<nlohmann::json> stats = run_plan(options, open_feed, setup, &dumps);
  if (!stats) return 1;
  if (rank != 0) return 0;

  const Model& model = setup.model;
  const Layer& out_layer = model.layers[model.output];
  const std::vector<float> logits = real_values(out_layer, output);
  if (!options.output_path.empty()) {
    OutputFile file(options.output_path);
    file.write("output", out_layer.output_shape, logits.data());
    if (out_layer.quantized()) file.write_quantized("output_q", out_layer, output.data());
    for (size_t i = 0; i < dumps.size(); ++i) {
      const Layer& layer = model.layers[i];
      if (layer.quantized())
        file.write_quantized("layers/" + layer.name, layer, dumps[i].data());
      else
        file.write("layers/" + layer.name, layer.output_shape,
                   reinterpret_cast<const float*>(dumps[i].data()));
    }
  }
  if (!options.stats_path.empty()) write_json(options.stats_path, *stats);
  print_summary(model, logits, *stats);
  return 0;
}

int eval_command(const EvalOptions& options) {
  int rank = 0, world = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &world);
  // Rank 0 plans into a temporary directory that every rank then reads (on a
  // cluster, TMPDIR must be a shared file system).
  std::string plan_dir;
  Model model;
  if (any_rank_failed(attempt([&] {
        if (world != options.nodes + 1)
          throw Error("eval on " + std::to_string(options.nodes) +
                      " node(s) runs with mpirun -np " + std::to_string(options.nodes + 1) +
                      " (a coordinator and the nodes), not -np " + std::to_string(world));
        if (options.limit < 0) throw Error("--limit must not be negative");
        if (rank != 0) return;
        model = read_model(options.model_path);
        PlanOptions plan_options;
        plan_options.nodes = options.nodes;
        plan_options.strategy = parse_strategy(options.strategy);
        plan_options.grid = options.grid;
        if (!options.device.empty()) {  // its RAM and flash are the caps unless --ram says
          plan_options.device = load_device(options.device);
          plan_options.ram_cap_bytes = plan_options.device->ram_bytes;
          plan_options.flash_cap_bytes = plan_options.device->flash_bytes;
        }
        if (!options.ram.empty()) plan_options.ram_cap_bytes = parse_bytes(options.ram);
        std::ifstream file(options.model_path, std::ios::binary);
        std::stringstream content;
        content << file.rdbuf();
        plan_options.model_digest = digest(content.str());
        const Plan plan = make_plan(model, plan_options);
        plan_dir = (std::filesystem::temp_directory_path() /
                    ("splitinfer-eval-" + std::to_string(::getpid())))
                       .string();
        write_plan(plan_dir, model, plan);
      })))
    return 1;
  int length = static_cast<int>(plan_dir.size());
  MPI_Bcast(&length, 1, MPI_INT, 0, MPI_COMM_WORLD);
  plan_dir.resize(length);
  MPI_Bcast(plan_dir.data(), length, MPI_CHAR, 0, MPI_COMM_WORLD);
  struct RemoveAtEnd {
    std::string dir;
    ~RemoveAtEnd() {
      if (!dir.empty()) std::filesystem::remove_all(dir);
    }
  } remove_plan{rank == 0 ? plan_dir : ""};

  RunOptions run;
  run.plan_dir = plan_dir;
  run.ram = options.ram;
  run.requantization = options.requantization;
  ImageDataset dataset;
  std::vector<float> input;
  int64_t correct = 0, done = 0;
  std::unique_ptr<ProgressBar> progress;
  Setup setup;
  const auto open_feed = [&](const Model& planned) {
    dataset =
        read_fashion_mnist("test", options.data_dir.empty() ? kFashionMnistDir : options.data_dir);
    const Shape& out = planned.layers[planned.output].output_shape;
    if (out.rank != 2 || out.c != 10)
      throw Error("model '" + options.model_path + "' outputs " + out.str() +
                  "; Fashion-MNIST needs 10 class scores");
    Feed feed;
    feed.count = static_cast<int>(options.limit > 0 ? std::min(options.limit, dataset.count)
                                                    : dataset.count);
    image_to_input(dataset.image(0), static_cast<int>(dataset.cols), static_cast<int>(dataset.rows),
                   1, planned.meta);  // shape errors here
    progress = std::make_unique<ProgressBar>(feed.count, "eval");
    feed.input = [&](int index) -> const std::vector<float>& {
      input = image_to_input(dataset.image(index), static_cast<int>(dataset.cols),
                             static_cast<int>(dataset.rows), 1, setup.model.meta);
      return input;
    };
    feed.output = [&](int index, const Bytes& result) {
      const std::vector<float> scores = real_values(setup.model.layers[setup.model.output], result);
      const size_t best = std::max_element(scores.begin(), scores.end()) - scores.begin();
      correct += best == dataset.labels[index];
      ++done;
      char note[32];
      std::snprintf(note, sizeof note, "acc %.2f%%", 100.0 * correct / done);
      progress->update(done, note);
    };
    return feed;
  };
  const std::optional<nlohmann::json> stats = run_plan(run, open_feed, setup, nullptr);
  if (!stats) return 1;
  if (rank != 0) return 0;
  progress->finish();
  const double accuracy = static_cast<double>(correct) / static_cast<double>(done);
  std::printf(
      "%s on %s (%lld test images), %d node(s), strategy %s%s%s: top-1 %.2f%% (%lld correct)\n",
      setup.model.name.c_str(), options.dataset.c_str(), static_cast<long long>(done),
      setup.plan.nodes, strategy_name(setup.plan.strategy),
      setup.model.layers[setup.model.output].quantized() ? ", int8 " : "",
      setup.model.layers[setup.model.output].quantized()
          ? requantization_name(setup.model.requantization)
          : "",
      accuracy * 100, static_cast<long long>(correct));
  for (const auto& node : (*stats)["nodes"])
    std::printf("node %d: peak RAM %s (predicted %s), flash %s\n", node["rank"].get<int>(),
                format_bytes(node["peak_ram_bytes"].get<uint64_t>()).c_str(),
                format_bytes(node["predicted_peak_ram_bytes"].get<uint64_t>()).c_str(),
                format_bytes(node["flash_bytes"].get<uint64_t>()).c_str());
  if (setup.plan.device)
    std::printf("emulated time per inference %.3f ms on %s\n",
                setup.plan.emulated.total_seconds * 1e3, setup.plan.device->name.c_str());
  if (!options.json_path.empty()) {
    nlohmann::json result = {{"model", options.model_path},
                             {"name", setup.model.name},
                             {"dataset", options.dataset},
                             {"images", done},
                             {"correct", correct},
                             {"top1", accuracy},
                             {"nodes", setup.plan.nodes},
                             {"strategy", strategy_name(setup.plan.strategy)},
                             {"dtype", dtype_name(setup.model.layers[setup.model.output].dtype)},
                             {"emulated_seconds", (*stats)["emulated_seconds"]},
                             {"node_stats", (*stats)["nodes"]}};
    if (setup.model.layers[setup.model.output].quantized())
      result["requantization"] = requantization_name(setup.model.requantization);
    write_json(options.json_path, result);
  }
  return 0;
}

}  // namespace splitinfer
