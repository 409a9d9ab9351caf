#pragma once
// How the ranks of a run talk: rank 0 the coordinator, ranks 1..N the nodes.
// The runtime (session, coordinator, node runner) speaks only through this
// interface; a transport decides how bytes move. Two are built in:
// MPI (mpi_transport.hpp: one rank per process, on one machine or many) and
// in-process (in_process_transport.hpp: every rank a thread of one process,
// pieces copied through shared memory), which the runtime's tests use and
// which runs a whole cluster without mpirun.
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "../executor.hpp"
#include "../trace.hpp"

namespace splitinfer {

// What a point-to-point message between the coordinator and a node carries.
// Messages of one tag between two ranks arrive in the order they were sent.
// query and state: the watchdog's question to a node and its answer (mpi_watchdog.hpp).
// request and task: a node asking the coordinator for work, and the task it
// gets (plans with tasks, coordinator.hpp's TaskCoordinator).
// timing: a node's compute seconds of an inference (run --rebalance, rebalance.hpp).
enum class Tag : int {
  input = 1, output, dump, stats, relay, query, state, request, task, timing, resume
};

// When a wait is expected to end: `at`, judged from a wait that took
// `typical` (the coordinator's wait for an output, from the inference
// before). No `typical`: not known.
struct ExpectedEnd {
  std::chrono::steady_clock::time_point at{};
  std::chrono::steady_clock::duration typical{};
};

// A node's side of the pieces that move while its program runs: the
// executor's Exchange (node to node, coordinator to node, relays), counting
// the bytes it moves and, with a trace, recording a slice per exchange.
class NodeExchange : public Exchange {
 public:
  uint64_t bytes_sent = 0, bytes_received = 0;
  // From now on, record a slice per exchange with its bytes into `trace`.
  void set_trace(Trace* trace) { trace_ = trace; }

 protected:
  Trace* trace_ = nullptr;
};

class Transport {
 public:
  virtual ~Transport() = default;

  virtual int rank() const = 0;
  int nodes() const { return ranks() - 1; }
  virtual int ranks() const = 0;

  // ---- every rank, together ----
  // Each rank says whether it failed; every rank gets the failure of the
  // lowest failing rank (its message), or nullopt when none failed.
  virtual std::optional<std::string> first_failure(const std::optional<std::string>& mine) = 0;
  // Rank 0's `text` on every rank.
  virtual void broadcast(std::string& text) = 0;
  virtual void barrier() = 0;
  // From now on a wait longer than `seconds` (0: none) ends the run on every
  // rank with one line naming the node that stopped responding
  // (`layer_labels[i]` names layer i in it). In-process ranks are threads
  // that cannot stall apart from the process: that transport keeps no deadline.
  virtual void set_deadline(double seconds, std::vector<std::string> layer_labels) {
    (void)seconds;
    (void)layer_labels;
  }

  // ---- a node ----
  // Its exchange with `neighbours` (node numbers, sorted: the nodes it sends
  // pieces to or receives them from) and with the coordinator. Every node
  // makes one, at the same point of the run (MPI builds a topology of them).
  virtual std::unique_ptr<NodeExchange> node_exchange(const std::vector<int>& neighbours) = 0;

  // ---- point to point, between the coordinator and a node ----
  // Sends `count` elements of `element_bytes` bytes; returns when `data` may change.
  virtual void send(int to, Tag tag, const void* data, int64_t count, size_t element_bytes) = 0;
  // Starts sending; `data` must not change until wait_sends().
  virtual void post_send(int to, Tag tag, const void* data, int64_t count,
                         size_t element_bytes) = 0;
  virtual void wait_sends() = 0;
  // Receives a piece `piece` of layer `layer`'s map into a map holding
  // `holder` at `map` (as copy_region() lays it out), sent as
  // piece.elements() elements.
  // Waits without spinning a core away from ranks that compute.
  virtual void receive(int from, Tag tag, int layer, void* map, const Region& holder,
                       const Region& piece, size_t element_bytes,
                       const ExpectedEnd& expected = {}) = 0;
  virtual void send_text(int to, Tag tag, const std::string& text) = 0;
  virtual std::string receive_text(int from, Tag tag) = 0;
  // The first text of `tag` to arrive from any rank: {sender, text}.
  virtual std::pair<int, std::string> receive_text_from_any(Tag tag) = 0;
};

}  // namespace splitinfer
