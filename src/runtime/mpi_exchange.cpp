#include "mpi_exchange.hpp"

#include <algorithm>
#include <chrono>
#include <memory>
#include <string>

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

void wait_without_spinning(std::vector<MPI_Request>& requests, const WaitFor& wait_for,
                           const ExpectedEnd& expected) {
  if (requests.empty()) return;
  wait_until(
      [&] {
        int done = 0;
        MPI_Testall(static_cast<int>(requests.size()), requests.data(), &done, MPI_STATUSES_IGNORE);
        return done != 0;
      },
      wait_for, expected);
  requests.clear();
}

void receive_without_spinning(void* buffer, int count, MPI_Datatype type, int source, int tag,
                              MPI_Comm comm, const WaitFor& wait_for, const ExpectedEnd& expected) {
  std::vector<MPI_Request> request(1);
  MPI_Irecv(buffer, count, type, source, tag, comm, &request[0]);
  wait_without_spinning(request, wait_for, expected);
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
  pending_layer_ = layer_index;
  for (const Transfer& piece : input.receives) pending_peers_.push_back(piece.peer);
  for (const Transfer& piece : input.sends) pending_peers_.push_back(piece.peer);
  exchange_pieces(input, stored, stored_region, tile);
  if (trace_)
    started_.push_back(
        {"exchange for layer " + std::to_string(layer_index) + ", input " + std::to_string(slot),
         start, bytes_sent - sent_before, bytes_received - received_before});
}

void MpiExchange::finish() {
  std::sort(pending_peers_.begin(), pending_peers_.end());
  pending_peers_.erase(std::unique(pending_peers_.begin(), pending_peers_.end()),
                       pending_peers_.end());
  wait_without_spinning(
      pending_, {"the pieces of the input", pending_layer_, -1, &pending_peers_, "exchanged with"});
  pending_peers_.clear();
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
  std::vector<MPI_Request> send(1);
  MPI_Isend(out.data, static_cast<int>(out.shape.elements()), element_mpi_type(out), 0,
            mpi_tag(Tag::relay), MPI_COMM_WORLD, &send[0]);
  wait_without_spinning(send, {"the relayed map", layer_index, 0, nullptr, "to be taken by"});
  bytes_sent += out.bytes();
  if (trace_)
    trace_->add("relay of layer " + std::to_string(layer_index), "relay", start, out.bytes(), 0);
}

}  // namespace splitinfer
