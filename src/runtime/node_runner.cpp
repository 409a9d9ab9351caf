#include "node_runner.hpp"

#include <chrono>

#include "../executor.hpp"
#include "run_statistics.hpp"

namespace splitinfer {

void run_node(Transport& transport, const RunSettings& settings, NodeSetup& setup, int inferences) {
  const int node = transport.rank();
  const std::unique_ptr<NodeExchange> exchange = transport.node_exchange(setup.program.neighbours);
  Executor executor(setup.model, std::move(setup.program), "node " + std::to_string(node),
                    settings.reference_kernels ? Kernels::reference : Kernels::fast);
  // Dumps show every layer's own values, so a convolution keeps its own then.
  executor.set_fuse_activations(!settings.dump_layers);
  executor.set_slowdown(setup.slowdown);
  Arena arena(setup.ram_cap);
  NodeMeasurement measured;
  Trace trace;
  for (int run = 0; run < inferences; ++run) {
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
  }
  measured.peak_ram_bytes = arena.layout().peak_bytes();
  nlohmann::json stats = node_statistics(node, setup, measured);
  if (settings.trace) stats["trace"] = trace_events(trace, node);
  transport.send_text(0, Tag::stats, stats.dump());
}

}  // namespace splitinfer
