#include "mpi_exchange.hpp"

#include <algorithm>
#include <chrono>
#include <memory>
#include <string>
#include <thread>

#if defined(__linux__)
#include <sys/prctl.h>
#endif

namespace splitinfer {

MPI_Datatype element_mpi_type(size_t element_bytes) {
  return element_bytes == 1 ? MPI_UINT8_T : MPI_FLOAT;
}

MPI_Datatype element_mpi_type(const Tensor& tensor) {
  return element_mpi_type(dtype_bytes(tensor.dtype));
}

PieceType::PieceType(const Region& holder, const Region& piece, size_t element_bytes) {
  if (piece.one_run_in(holder)) {
    type_ = element_mpi_type(element_bytes);
    count_ = static_cast<int>(piece.elements());
    displacement_ =
        static_cast<MPI_Aint>(piece.offset_in(holder) * static_cast<int64_t>(element_bytes));
    return;
  }
  const int64_t height = holder.y1 - holder.y0, width = holder.x1 - holder.x0;
  const int sizes[3] = {static_cast<int>(holder.c1 - holder.c0), static_cast<int>(height),
                        static_cast<int>(width)};
  const int subsizes[3] = {static_cast<int>(piece.c1 - piece.c0),
                           static_cast<int>(piece.y1 - piece.y0),
                           static_cast<int>(piece.x1 - piece.x0)};
  const int starts[3] = {static_cast<int>(piece.c0 - holder.c0),
                         static_cast<int>(piece.y0 - holder.y0),
                         static_cast<int>(piece.x0 - holder.x0)};
  MPI_Type_create_subarray(3, sizes, subsizes, starts, MPI_ORDER_C, element_mpi_type(element_bytes),
                           &type_);
  MPI_Type_commit(&type_);
  derived_ = true;
}

void wait_without_spinning(std::vector<MPI_Request>& requests, const ExpectedEnd& expected) {
  if (requests.empty()) return;
#if defined(__linux__)
  // Sleeps as short as asked (Linux rounds them up by 50 µs otherwise): a
  // transfer needs both sides to poll, so a late wake-up delays the sender.
  static const bool precise_sleeps = prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0) == 0;
  (void)precise_sleeps;
#endif
  const auto start = std::chrono::steady_clock::now();
  for (;;) {
    int done = 0;
    MPI_Testall(static_cast<int>(requests.size()), requests.data(), &done, MPI_STATUSES_IGNORE);
    if (done) break;
    // The first 50 µs poll (a neighbour's halo often arrives by then);
    // afterwards sleep between polls, each time 1/64 of the wait so far (at
    // least 2 µs, at most 1 ms): a wait ends at most 1/64 late, and a long
    // one (the coordinator's, while the nodes compute) wakes its core only
    // some hundred times. (A rank that yields instead stays runnable and
    // keeps taking turns on a core a computing rank shares.)
    const auto now = std::chrono::steady_clock::now();
    const auto waited = now - start;
    if (waited < std::chrono::microseconds(50)) continue;
    if (expected.typical.count() > 0) {
      const auto typical = std::chrono::duration_cast<std::chrono::nanoseconds>(expected.typical);
      const auto early = expected.at - typical / 8 - now;
      if (early.count() > 0) {
        std::this_thread::sleep_for(std::min<std::chrono::nanoseconds>(early, typical / 16));
      } else {  // near the end, or later than expected: as without, from typical/512
        std::this_thread::sleep_for(std::clamp<std::chrono::nanoseconds>(
            std::max<std::chrono::nanoseconds>(typical / 512, (now - expected.at) / 64),
            std::chrono::microseconds(2), std::chrono::milliseconds(1)));
      }
      continue;
    }
    std::this_thread::sleep_for(std::clamp<std::chrono::nanoseconds>(
        waited / 64, std::chrono::microseconds(2), std::chrono::milliseconds(1)));
  }
  requests.clear();
}

void receive_without_spinning(void* buffer, int count, MPI_Datatype type, int source, int tag,
                              MPI_Comm comm, const ExpectedEnd& expected) {
  std::vector<MPI_Request> request(1);
  MPI_Irecv(buffer, count, type, source, tag, comm, &request[0]);
  wait_without_spinning(request, expected);
}

MpiExchange::MpiExchange(MPI_Comm node_comm, const std::vector<int>& neighbours)
    : neighbours_(neighbours) {
  std::vector<int> ranks;
  for (int node : neighbours) ranks.push_back(node - 1);
  const int degree = static_cast<int>(ranks.size());
  MPI_Dist_graph_create_adjacent(node_comm, degree, ranks.data(), MPI_UNWEIGHTED, degree,
                                 ranks.data(), MPI_UNWEIGHTED, MPI_INFO_NULL, 0, &graph_);
}

MpiExchange::~MpiExchange() {
  if (graph_ != MPI_COMM_NULL) MPI_Comm_free(&graph_);
}

void MpiExchange::exchange(int layer_index, int slot, const InputSlot& input, const void* stored,
                           const Region& stored_region, void* tile) {
  const double start = trace_ ? trace_->now_us() : 0;
  const uint64_t sent_before = bytes_sent, received_before = bytes_received;
  exchange_pieces(input, stored, stored_region, tile);
  if (trace_)
    started_.push_back(
        {"exchange for layer " + std::to_string(layer_index) + ", input " + std::to_string(slot),
         start, bytes_sent - sent_before, bytes_received - received_before});
}

void MpiExchange::finish() {
  wait_without_spinning(pending_);
  pending_types_.clear();
  pending_arrays_.clear();
  // A slice per exchange, from its start to the end of the wait.
  for (const Started& exchange : started_)
    trace_->add(exchange.label, "exchange", exchange.start_us, exchange.sent, exchange.received);
  started_.clear();
}

void MpiExchange::exchange_pieces(const InputSlot& input, const void* stored,
                                  const Region& stored_region, void* tile) {
  for (const Transfer& piece : input.receives)
    if (piece.peer == 0) {
      pending_types_.push_back(
          std::make_unique<PieceType>(input.needed, piece.region, input.element_bytes));
      pending_.emplace_back();
      const PieceType& type = *pending_types_.back();
      MPI_Irecv(type.at(tile), type.count(), type.type(), 0, mpi_tag(Tag::input), MPI_COMM_WORLD,
                &pending_.back());
      bytes_received += piece.region.bytes(input.element_bytes);
    }
  if (!input.exchange) return;
  // One neighbourhood collective per input slot: a piece (or nothing) to and
  // from every neighbour.
  // Its argument arrays must outlive the call until it completes.
  const size_t degree = neighbours_.size();
  pending_arrays_.push_back(std::make_unique<CollectiveArrays>());
  CollectiveArrays& arrays = *pending_arrays_.back();
  std::vector<int>&send_counts = arrays.send_counts, &receive_counts = arrays.receive_counts;
  std::vector<MPI_Datatype>&send_types = arrays.send_types, &receive_types = arrays.receive_types;
  std::vector<MPI_Aint>&send_displacements = arrays.send_displacements,
  &receive_displacements = arrays.receive_displacements;
  send_counts.assign(degree, 0);
  receive_counts.assign(degree, 0);
  send_displacements.assign(degree, 0);
  receive_displacements.assign(degree, 0);
  send_types.assign(degree, MPI_FLOAT);
  receive_types.assign(degree, MPI_FLOAT);
  const auto slot_of = [&](int node) {
    return std::find(neighbours_.begin(), neighbours_.end(), node) - neighbours_.begin();
  };
  for (const Transfer& piece : input.sends) {
    pending_types_.push_back(
        std::make_unique<PieceType>(stored_region, piece.region, input.element_bytes));
    const PieceType& type = *pending_types_.back();
    send_types[slot_of(piece.peer)] = type.type();
    send_counts[slot_of(piece.peer)] = type.count();
    send_displacements[slot_of(piece.peer)] = type.displacement();
    bytes_sent += piece.region.bytes(input.element_bytes);
  }
  for (const Transfer& piece : input.receives) {
    if (piece.peer == 0) continue;
    pending_types_.push_back(
        std::make_unique<PieceType>(input.needed, piece.region, input.element_bytes));
    const PieceType& type = *pending_types_.back();
    receive_types[slot_of(piece.peer)] = type.type();
    receive_counts[slot_of(piece.peer)] = type.count();
    receive_displacements[slot_of(piece.peer)] = type.displacement();
    bytes_received += piece.region.bytes(input.element_bytes);
  }
  static char nothing = 0;  // a valid address for a side that moves nothing
  pending_.emplace_back();
  MPI_Ineighbor_alltoallw(stored ? stored : &nothing, send_counts.data(), send_displacements.data(),
                          send_types.data(), tile ? tile : &nothing, receive_counts.data(),
                          receive_displacements.data(), receive_types.data(), graph_,
                          &pending_.back());
}

void MpiExchange::to_coordinator(int layer_index, const Tensor& out) {
  const double start = trace_ ? trace_->now_us() : 0;
  MPI_Send(out.data, static_cast<int>(out.shape.elements()), element_mpi_type(out), 0,
           mpi_tag(Tag::relay), MPI_COMM_WORLD);
  bytes_sent += out.bytes();
  if (trace_)
    trace_->add("relay of layer " + std::to_string(layer_index), "relay", start, out.bytes(), 0);
}

}  // namespace splitinfer
