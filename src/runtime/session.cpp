#include "session.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <optional>

#include "../../io/model_file.hpp"
#include "../../io/plan_file.hpp"
#include "../format.hpp"
#include "node_runner.hpp"
#include "rebalance.hpp"
#include "run_statistics.hpp"

namespace splitinfer {
namespace {

using Clock = std::chrono::steady_clock;

// Rank 0: `feed.count` inferences, each coordinated, timed and fed back;
// then the statistics, the nodes' gathered.
void coordinate_run(Transport& transport, const RunSettings& settings, const Feed& feed,
                    const std::vector<double>& slowdowns, RunResult& result) {
  const Model& model = result.model;
  const bool tasks = !result.plan.tasks.empty();
  std::optional<Coordinator> coordinator;
  std::optional<TaskCoordinator> task_coordinator;
  if (tasks)
    task_coordinator.emplace(transport, model, result.plan.tasks, settings.schedule == "steal");
  else
    coordinator.emplace(transport, model, node_programs(model, result.plan));
  std::vector<double> times;
  Trace trace;
  for (int run = 0; run < feed.count; ++run) {
    const bool last = run == feed.count - 1;
    if (last && settings.trace) {
      transport.barrier();
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
    std::vector<Bytes>* dumps = settings.dump_layers && last ? &result.dumps : nullptr;
    if (tasks)
      task_coordinator->infer(input, result.output, dumps);
    else
      coordinator->infer(input, result.output, dumps, expected);
    times.push_back(std::chrono::duration<double>(Clock::now() - start).count());
    if (last) trace.add("inference (input out, output in)", "coordinator", traced_start);
    feed.output(run, result.output);
    if (settings.rebalance && !last) {  // the rows follow the nodes' times
      std::vector<double> seconds;
      for (int node = 1; node <= result.plan.nodes; ++node)
        seconds.push_back(
            nlohmann::json::parse(transport.receive_text(node, Tag::timing)).get<double>());
      if (agree_row_shares(transport, model, result.plan, seconds, {}))
        coordinator.emplace(transport, model, node_programs(model, result.plan));
    }
  }
  std::vector<nlohmann::json> nodes;
  for (int node = 1; node <= result.plan.nodes; ++node)
    nodes.push_back(nlohmann::json::parse(transport.receive_text(node, Tag::stats)));
  if (settings.trace) result.trace_events = trace_events(trace, 0);
  nlohmann::json* trace_events = settings.trace ? &result.trace_events : nullptr;
  if (!tasks) {
    const std::vector<double> each = times;
    result.stats = run_statistics(model, result.plan, settings.plan_dir, settings.repeat,
                                  std::move(times), coordinator->programs(), std::move(nodes),
                                  trace_events);
    if (settings.rebalance) {  // where the rows ended, and every inference's time
      result.stats["row_shares"] = row_shares(model, result.plan);
      result.stats["inference_seconds"] = each;
    }
    return;
  }
  // The emulated time of this run's schedule, its slowdowns included.
  std::optional<TimeEstimate> emulated;
  if (!result.plan.devices.empty())
    emulated = estimate_task_time(model, result.plan.tasks, task_coordinator->programs(),
                                  result.plan.devices, settings.schedule == "steal", slowdowns);
  const TaskRun task_run{settings.schedule, emulated ? &*emulated : nullptr};
  result.stats = run_statistics(model, result.plan, settings.plan_dir, settings.repeat,
                                std::move(times), task_coordinator->programs(), std::move(nodes),
                                trace_events, &task_run);
}

bool valid_timeout(double seconds) {
  return std::isfinite(seconds) && seconds >= 0 && seconds <= kMaxTimeoutSeconds;
}

// "layer 14 'features.3.conv.0' (conv2d)", for the watchdog's report.
std::vector<std::string> layer_labels(const Model& model) {
  std::vector<std::string> labels;
  for (size_t i = 0; i < model.layers.size(); ++i)
    labels.push_back("layer " + std::to_string(i) + " '" + printable(model.layers[i].name) + "' (" +
                     op_name(model.layers[i].op) + ")");
  return labels;
}

}  // namespace

double default_timeout(const Model& model) {
  uint64_t macs = 0;
  for (const Layer& layer : model.layers) macs += layer_macs(model, layer);
  const double one_core_seconds = static_cast<double>(macs) / kSlowestMacsPerSecond;
  return std::max(kTimeoutFloorSeconds, 10 * one_core_seconds);
}

std::vector<double> parse_slowdowns(const std::string& text, int nodes) {
  std::vector<double> slowdowns(static_cast<size_t>(std::max(nodes, 0)), 1.0);
  std::vector<bool> named(slowdowns.size(), false);
  size_t start = 0;
  while (!text.empty() && start <= text.size()) {
    const size_t end = std::min(text.find(',', start), text.size());
    const std::string item = text.substr(start, end - start);
    start = end + 1;
    const size_t colon = item.find(':');
    const std::string node_text = item.substr(0, colon);
    const std::string factor_text = colon == std::string::npos ? "" : item.substr(colon + 1);
    const auto bad = [&](const std::string& why) {
      return Error("--slow '" + printable(item) + "': " + why);
    };
    if (colon == std::string::npos || node_text.empty() || node_text.size() > 6 ||
        node_text.find_first_not_of("0123456789") != std::string::npos || factor_text.empty() ||
        factor_text.size() > 16 ||
        factor_text.find_first_not_of("0123456789.") != std::string::npos)
      throw bad("expected NODE:FACTOR, as in 2:3 (node 2 three times as slow)");
    const int node = std::stoi(node_text);
    char* parsed_end = nullptr;
    const double factor = std::strtod(factor_text.c_str(), &parsed_end);
    if (*parsed_end != '\0') throw bad("'" + factor_text + "' is not a number");
    if (node < 1 || node > nodes)
      throw bad("the plan has node" + std::string(nodes == 1 ? " 1" : "s 1 to " +
                                                                       std::to_string(nodes)) +
                ", no node " + std::to_string(node));
    if (!(factor >= 1 && factor <= 1000))
      throw bad("the factor must be between 1 and 1000 (a node can be slowed, not sped up)");
    if (named[node - 1]) throw bad("node " + std::to_string(node) + " is named twice");
    named[node - 1] = true;
    slowdowns[node - 1] = factor;
  }
  return slowdowns;
}

RunResult run_session(Transport& transport, const RunSettings& settings,
                      const std::function<Feed(const Model&)>& open_feed) {
  const int rank = transport.rank();
  RunResult result;
  NodeSetup setup;
  Feed feed;
  double slowest = 1;  // the largest --slow factor: the derived deadline grows with it
  std::vector<double> slowdowns;

  // Until the plan is read, waits (reading files) may take a minute.
  transport.set_deadline(valid_timeout(settings.timeout) && settings.timeout > 0
                             ? settings.timeout
                             : kSetupTimeoutSeconds,
                         {});

  // Step 1, every rank: read the plan; check the rank count.
  agreed_step(transport, [&] {
    if (!valid_timeout(settings.timeout))
      throw Error("--timeout must be between 0 (derived from the plan) and " +
                  std::to_string(static_cast<int>(kMaxTimeoutSeconds)) + " seconds");
    if (settings.repeat < 0 || settings.repeat > 1000000)
      throw Error("--repeat must be between 0 and 1000000");
    read_plan(settings.plan_dir, setup.model, setup.plan);
    if (!settings.requantization.empty())
      setup.model.requantization = requantization_from_name(settings.requantization);
    if (transport.ranks() != setup.plan.nodes + 1)
      throw Error("the plan '" + settings.plan_dir + "' is for " +
                  std::to_string(setup.plan.nodes) + " node(s), so it runs with mpirun -np " +
                  std::to_string(setup.plan.nodes + 1) + ", not -np " +
                  std::to_string(transport.ranks()));
    // Each node its own cap (a mixed cluster's differ), unless --ram says.
    setup.ram_cap = settings.ram.empty()
                        ? (rank > 0 ? setup.plan.node_plans[rank - 1].ram_cap_bytes
                                    : setup.plan.ram_cap_bytes)
                        : parse_bytes(settings.ram, "--ram");
    slowdowns = parse_slowdowns(settings.slow, setup.plan.nodes);
    if (rank > 0) setup.slowdown = slowdowns[rank - 1];
    slowest = *std::max_element(slowdowns.begin(), slowdowns.end());
    if (settings.schedule != "static" && settings.schedule != "steal")
      throw Error("--schedule '" + printable(settings.schedule) + "' is not static or steal");
    if (settings.rebalance && !rebalance_refusal(setup.plan).empty())
      throw Error(rebalance_refusal(setup.plan));
    if (!settings.keeps_nvm() && (settings.reconfigure != "static" || !settings.job_ms.empty() ||
                                  !settings.job_order.empty()))
      throw Error("--reconfigure, --job-ms and --job-order size the jobs of --power (or --nvm) runs");
    if (settings.keeps_nvm()) {
      const std::string flag = !settings.power.empty()         ? "--power"
                               : !settings.power_trace.empty() ? "--power-trace"
                               : settings.resume               ? "--resume"
                                                               : "--nvm";
      PowerSettings checked = parse_power(settings.power, static_cast<uint64_t>(settings.seed));
      parse_reconfiguration(settings.reconfigure, settings.job_ms, settings.job_order, checked);
      if (!settings.power_trace.empty()) {
        if (!settings.power.empty())
          throw Error("--power and --power-trace do not go together (random failures, or a "
                      "recorded supply)");
        read_power_trace(settings.power_trace);
      }
      if (!setup.plan.streams.empty() || !setup.plan.tasks.empty() || settings.rebalance)
        throw Error(flag + " runs plans without --stream and --tasks, and not with --rebalance");
      if (setup.plan.devices.empty())
        throw Error(flag + " needs a plan made for a device with an NVM in its profile (plan "
                    "--device msp432, teensy41 or esp32s3): failures strike at instants of the device's time");
      if (settings.resume && settings.repeat > 0)
        throw Error("--resume continues one inference: leave --repeat out");
    }
    if (settings.schedule == "steal" && setup.plan.tasks.empty())
      throw Error("--schedule steal needs a plan cut into tasks, and '" + settings.plan_dir +
                  "' has none (make one with plan --strategy spatial|fused --tasks T, T at least "
                  "the node count)");
  });
  // Step 2: rank 0 opens the feed (reads the input); each node its own
  // weights, and checks that its memory fits its cap before computing anything.
  agreed_step(transport, [&] {
    if (rank == 0) {
      feed = open_feed(setup.model);
      return;
    }
    read_node_weights(settings.plan_dir, rank, setup.plan, setup.model);
    const std::string label = "node " + std::to_string(rank);
    if (!setup.plan.tasks.empty()) {  // every task it may take must fit
      setup.task_programs = task_programs(setup.model, setup.plan.tasks);
      setup.task_peaks.assign(setup.task_programs.size(), 0);
      for (size_t task = 0; task < setup.task_programs.size(); ++task) {
        if (!setup.plan.tasks.may_take[rank - 1][task]) continue;
        const Task& t = setup.plan.tasks.list[task];
        const std::string task_label = label + ", task " + std::to_string(task) + " (stage " +
                                       std::to_string(t.stage) + ", tile " +
                                       std::to_string(t.tile) + ")";
        ArenaLayout unlimited;
        setup.task_peaks[task] =
            replay_memory(setup.model, setup.task_programs[task], unlimited, task_label);
        if (setup.task_peaks[task] <= setup.ram_cap) continue;
        try {
          ArenaLayout capped(setup.ram_cap);
          replay_memory(setup.model, setup.task_programs[task], capped, task_label);
        } catch (const Error& too_small) {
          throw Error(std::string(too_small.what()) + "; this task needs --ram " +
                      std::to_string(setup.task_peaks[task]) + " at least");
        }
      }
      return;
    }
    setup.program = node_program(setup.model, setup.plan, rank);
    if (settings.keeps_nvm()) {
      const std::string nvm_dir = settings.nvm_dir.empty()
                                      ? "splitinfer-nvm/" + setup.plan.plan_id
                                      : settings.nvm_dir;
      std::error_code failure;
      std::filesystem::create_directories(nvm_dir, failure);
      if (!std::filesystem::is_directory(nvm_dir))
        throw Error("--nvm '" + nvm_dir + "' is not a directory that can be made" +
                    (failure ? ": " + failure.message() : ""));
      setup.power = std::make_shared<PowerEmulation>(
          setup.model, setup.program, setup.plan.devices[rank - 1],
          [&] {
            PowerSettings power = parse_power(settings.power, static_cast<uint64_t>(settings.seed));
            parse_reconfiguration(settings.reconfigure, settings.job_ms, settings.job_order, power);
            if (!settings.power_trace.empty()) power.trace = read_power_trace(settings.power_trace);
            power.candidates = setup.plan.job_seconds_candidates;
            return power;
          }(),
          rank,
          (std::filesystem::path(nvm_dir) / ("node_" + std::to_string(rank) + ".nvm"))
              .string(),
          setup.plan.plan_id, settings.resume);
      if (settings.resume) setup.resume = setup.power->resume_point();
    }
    ArenaLayout layout(setup.ram_cap);
    try {
      replay_memory(setup.model, setup.program, layout, label);
    } catch (const Error& too_small) {
      ArenaLayout unlimited;
      throw Error(std::string(too_small.what()) + "; this node needs --ram " +
                  std::to_string(replay_memory(setup.model, setup.program, unlimited, label)) +
                  " at least");
    }
  });

  // Step 2b, with NVM: every progress record names the input's digest; under
  // --resume the latest inference any node's NVM holds is the one resumed,
  // and each node holding it must hold it for this input.
  if (settings.keeps_nvm()) {
    if (settings.resume && rank != 0)
      transport.send_text(0, Tag::resume,
                          std::to_string(setup.resume ? setup.resume->inference : -1));
    std::string agreed;
    if (rank == 0) {
      const std::vector<float>& input = feed.input(0);
      int latest = -1;
      if (settings.resume)
        for (int node = 1; node <= setup.plan.nodes; ++node)
          latest = std::max(latest, std::stoi(transport.receive_text(node, Tag::resume)));
      agreed = digest(std::string(reinterpret_cast<const char*>(input.data()),
                                  input.size() * sizeof(float))) +
               " " + std::to_string(latest);
    }
    transport.broadcast(agreed);
    const std::string input_digest = agreed.substr(0, agreed.find(' '));
    const int resumed = std::stoi(agreed.substr(agreed.find(' ') + 1));
    agreed_step(transport, [&] {
      if (!settings.resume) return;
      if (resumed < 1)
        throw Error("--resume: no node's NVM holds a job of an inference to resume (" +
                    (settings.nvm_dir.empty() ? "splitinfer-nvm/" + setup.plan.plan_id
                                              : settings.nvm_dir) +
                    ")");
      if (rank > 0 && setup.resume && setup.resume->inference == resumed &&
          setup.resume->input_digest != input_digest)
        throw Error("--resume: node " + std::to_string(rank) + "'s NVM holds inference " +
                    std::to_string(resumed) + " of another input (digest " +
                    setup.resume->input_digest + "; this input's is " + input_digest + ")");
    });
    if (rank > 0) {
      setup.input_digest = input_digest;
      if (settings.resume) {
        setup.first_inference = resumed;
        if (setup.resume && setup.resume->inference != resumed) setup.resume.reset();  // from the start
      }
    }
  }

  // Step 3: compute, every wait bounded.
  transport.set_deadline(
      settings.timeout > 0 ? settings.timeout : slowest * default_timeout(setup.model),
      layer_labels(setup.model));
  std::string count = std::to_string(feed.count);
  transport.broadcast(count);
  const int inferences = std::stoi(count);
  if (rank != 0) {
    if (setup.plan.tasks.empty())
      run_node(transport, settings, setup, inferences);
    else
      run_task_node(transport, settings, setup, inferences);
    return result;
  }
  result.model = std::move(setup.model);
  result.plan = std::move(setup.plan);
  feed.count = inferences;
  coordinate_run(transport, settings, feed, slowdowns, result);
  return result;
}

}  // namespace splitinfer
