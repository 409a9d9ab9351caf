#include "node_runner.hpp"

#include <chrono>
#include <set>

#include "../error.hpp"

#include "../executor.hpp"
#include "rebalance.hpp"
#include "run_statistics.hpp"

namespace splitinfer {

void run_node(Transport& transport, const RunSettings& settings, NodeSetup& setup, int inferences) {
  const int node = transport.rank();
  std::unique_ptr<NodeExchange> exchange;
  std::unique_ptr<Executor> program_executor;
  std::unique_ptr<Arena> program_arena;
  // The node's program, its exchange and arena; again when --rebalance
  // moves the rows (every node at the same point: the exchange's topology
  // is built by all of them together).
  const auto start_program = [&] {
    exchange = transport.node_exchange(setup.program.neighbours);
    program_executor =
        std::make_unique<Executor>(setup.model, setup.program, "node " + std::to_string(node),
                                   settings.reference_kernels ? Kernels::reference : Kernels::fast);
    // Dumps show every layer's own values, so a convolution keeps its own then.
    program_executor->set_fuse_activations(!settings.dump_layers);
    program_executor->set_slowdown(setup.slowdown);
    if (setup.power) {  // jobs kept in NVM; an activation is a job of its own
      program_executor->set_power(setup.power.get());
      program_executor->set_fuse_activations(false);
    }
    program_arena = std::make_unique<Arena>(setup.ram_cap);
  };
  start_program();
  NodeMeasurement measured;
  Trace trace;
  for (int run = 0; run < inferences; ++run) {
    Executor& executor = *program_executor;
    Arena& arena = *program_arena;
    const bool last = run == inferences - 1;
    if (last && settings.trace) {  // the traced inference starts together on every rank
      transport.barrier();
      trace.set_origin();
      executor.set_trace(&trace);
      exchange->set_trace(&trace);
    }
    exchange->bytes_sent = exchange->bytes_received = 0;  // per inference
    uint64_t output_bytes = 0;
    executor.reset_busy_seconds();
    if (setup.power) setup.power->start_inference(setup.first_inference + run, setup.input_digest);
    if (run == 0 && setup.resume) executor.set_resume(setup.resume->layer, setup.resume->tile, setup.resume->jobs_done);
    const auto start = std::chrono::steady_clock::now();
    executor.run(
        arena, *exchange,
        [&](int, const Tensor& tensor) {
          // Dumps are a debugging aid outside the plan's traffic: not counted.
          if (settings.dump_layers && last)
            transport.send(0, Tag::dump, tensor.data, tensor.shape.elements(),
                           dtype_bytes(tensor.dtype));
        },
        [&](const Tensor& output) {
          transport.send(0, Tag::output, output.data, output.shape.elements(),
                         dtype_bytes(output.dtype));
          output_bytes = output.bytes();
        });
    measured.host_seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    measured.bytes_sent = exchange->bytes_sent + output_bytes;
    measured.bytes_received = exchange->bytes_received;
    measured.busy_seconds = std::min(executor.busy_seconds(), measured.host_seconds);
    if (setup.power) {
      measured.power = setup.power->stats();
      measured.power_device_seconds_each.push_back(measured.power->device_seconds);
    }
    if (settings.rebalance && !last) {
      transport.send_text(0, Tag::timing, nlohmann::json(executor.busy_seconds()).dump());
      const bool moved = agree_row_shares(transport, setup.model, setup.plan, {}, [&](const Plan& next) {
        ArenaLayout layout(setup.ram_cap);
        replay_memory(setup.model, node_program(setup.model, next, node), layout,
                      "node " + std::to_string(node));
      });
      if (moved) {
        // The predictions follow the new program (the arena starts afresh).
        setup.program = node_program(setup.model, setup.plan, node);
        NodePlan& predicted = setup.plan.node_plans[node - 1];
        ArenaLayout unlimited;
        predicted.predicted_peak_ram_bytes =
            replay_memory(setup.model, setup.program, unlimited, "node " + std::to_string(node));
        predicted.predicted_bytes_sent = setup.program.bytes_sent;
        predicted.predicted_bytes_received = setup.program.bytes_received;
        start_program();
      }
    }
  }
  measured.peak_ram_bytes = program_arena->layout().peak_bytes();
  nlohmann::json stats = node_statistics(node, setup, measured);
  if (settings.trace) stats["trace"] = trace_events(trace, node);
  transport.send_text(0, Tag::stats, stats.dump());
}

void run_task_node(Transport& transport, const RunSettings& settings, NodeSetup& setup,
                   int inferences) {
  using Clock = std::chrono::steady_clock;
  const int node = transport.rank();
  const TaskTable& table = setup.plan.tasks;
  const std::unique_ptr<NodeExchange> exchange = transport.node_exchange({});
  std::vector<std::unique_ptr<Executor>> executors(setup.task_programs.size());
  for (size_t task = 0; task < executors.size(); ++task) {
    if (!table.may_take[node - 1][task]) continue;
    executors[task] = std::make_unique<Executor>(
        setup.model, setup.task_programs[task], "node " + std::to_string(node),
        settings.reference_kernels ? Kernels::reference : Kernels::fast);
    executors[task]->set_fuse_activations(!settings.dump_layers);
    executors[task]->set_slowdown(setup.slowdown);
  }
  Arena arena(setup.ram_cap);
  NodeMeasurement measured;
  measured.task_run = true;
  std::set<int> ever_run;
  Trace trace;
  const auto seconds_since = [](Clock::time_point start) {
    return std::chrono::duration<double>(Clock::now() - start).count();
  };
  for (int run = 0; run < inferences; ++run) {
    const bool last = run == inferences - 1;
    const bool dump = settings.dump_layers && last;
    if (last && settings.trace) {
      transport.barrier();
      trace.set_origin();
      for (const auto& executor : executors)
        if (executor) executor->set_trace(&trace);
      exchange->set_trace(&trace);
    }
    exchange->bytes_sent = exchange->bytes_received = 0;
    NodeMeasurement now;
    now.task_run = true;
    uint64_t result_bytes = 0;
    const auto start = Clock::now();
    transport.send_text(0, Tag::request, R"({"done":-1})");
    for (;;) {
      const auto asked = Clock::now();
      const nlohmann::json reply =
          nlohmann::json::parse(transport.receive_text(0, Tag::task), nullptr, false);
      now.idle_seconds += seconds_since(asked);
      const int task = reply.is_object() && reply.contains("task") &&
                               reply["task"].is_number_integer()
                           ? reply["task"].get<int>()
                           : -2;
      if (task == -1) break;
      if (task < 0 || task >= static_cast<int>(executors.size()) || !executors[task])
        throw Error("internal: node " + std::to_string(node) +
                    " was given a task it may not take (" + reply.dump() + ")");
      Executor& executor = *executors[task];
      executor.reset_busy_seconds();
      bool announced = false;
      const auto announce = [&] {
        if (announced) return;
        transport.send_text(
            0, Tag::request,
            nlohmann::json{{"done", task}, {"seconds", executor.busy_seconds()}}.dump());
        announced = true;
      };
      std::vector<Tensor> dumped;  // shapes and dtypes; the bytes in dump_bytes
      std::vector<std::vector<char>> dump_bytes;
      executor.run(
          arena, *exchange,
          [&](int, const Tensor& tensor) {
            if (!dump) return;
            const char* first = static_cast<const char*>(tensor.data);
            dump_bytes.emplace_back(first, first + tensor.bytes());
            dumped.push_back(tensor);
          },
          [&](const Tensor& result) {
            announce();
            transport.send(0, Tag::output, result.data, result.shape.elements(),
                           dtype_bytes(result.dtype));
            result_bytes += result.bytes();
          });
      announce();
      for (size_t d = 0; d < dumped.size(); ++d)
        transport.send(0, Tag::dump, dump_bytes[d].data(), dumped[d].shape.elements(),
                       dtype_bytes(dumped[d].dtype));
      now.busy_seconds += executor.busy_seconds();
      now.tasks += 1;
      now.tasks_stolen += table.list[task].home != node;
      now.predicted_bytes_sent += setup.task_programs[task].bytes_sent;
      now.predicted_bytes_received += setup.task_programs[task].bytes_received;
      ever_run.insert(task);
    }
    now.host_seconds = seconds_since(start);
    now.bytes_sent = exchange->bytes_sent + result_bytes;
    now.bytes_received = exchange->bytes_received;
    measured = now;
  }
  measured.peak_ram_bytes = arena.layout().peak_bytes();
  for (int task : ever_run)
    measured.peak_of_tasks_run = std::max(measured.peak_of_tasks_run, setup.task_peaks[task]);
  nlohmann::json stats = node_statistics(node, setup, measured);
  if (settings.trace) stats["trace"] = trace_events(trace, node);
  transport.send_text(0, Tag::stats, stats.dump());
}

}  // namespace splitinfer
