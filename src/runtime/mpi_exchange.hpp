#pragma once
// Moving pieces of activation maps with MPI (the MPI transport's insides):
// between neighbouring nodes with a neighbourhood collective on a
// distributed-graph topology of the node communicator (never through rank
// 0), and from the coordinator point to point.
#include <mpi.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "mpi_watchdog.hpp"
#include "transport.hpp"

namespace splitinfer {

// The MPI tag of a message between the coordinator and a node.
inline int mpi_tag(Tag tag) { return static_cast<int>(tag); }

// The MPI type of one element: MPI_FLOAT (4 bytes) or MPI_UINT8_T (quint8).
MPI_Datatype element_mpi_type(size_t element_bytes);
MPI_Datatype element_mpi_type(const Tensor& tensor);

// How a piece inside a tile holding `holder` moves: `count()` of `type()` at
// `at(tile)`, straight from a node's stored region into another's tile, with
// no packing buffers. A piece that is one run of memory (whole rows of one
// channel, or whole planes) moves as that many elements from its first:
// MPI can then copy it once, as soon as the receiver asks, even while the
// sender computes; other pieces use a subarray type, whose fragments move
// only while the sender polls. Frees its type on destruction.
class PieceType {
 public:
  PieceType(const Region& holder, const Region& piece, size_t element_bytes);
  ~PieceType() {
    if (derived_) MPI_Type_free(&type_);
  }
  PieceType(const PieceType&) = delete;
  PieceType& operator=(const PieceType&) = delete;
  MPI_Datatype type() const { return type_; }
  int count() const { return count_; }
  MPI_Aint displacement() const { return displacement_; }  // in bytes, from the tile's start
  void* at(void* tile) const { return static_cast<char*>(tile) + displacement_; }
  const void* at(const void* tile) const { return static_cast<const char*>(tile) + displacement_; }

 private:
  MPI_Datatype type_;
  int count_ = 1;
  MPI_Aint displacement_ = 0;
  bool derived_ = false;  // a subarray type of ours, not MPI's element type
};

// Waits for `requests` to complete as wait_until() does.
void wait_without_spinning(std::vector<MPI_Request>& requests, const WaitFor& wait_for,
                           const ExpectedEnd& expected = {});
// MPI_Recv, waiting as wait_until() does.
void receive_without_spinning(void* buffer, int count, MPI_Datatype type, int source, int tag,
                              MPI_Comm comm, const WaitFor& wait_for,
                              const ExpectedEnd& expected = {});

class MpiExchange : public NodeExchange {
 public:
  // `node_comm`: ranks 1..N of the world as ranks 0..N-1; `neighbours`: the
  // node numbers this node exchanges with.
  MpiExchange(MPI_Comm node_comm, const std::vector<int>& neighbours);
  ~MpiExchange() override;

  // Starts the exchange (nonblocking receives and neighbourhood collective);
  // finish() waits for every one started, so a node computes what needs no
  // halo while its pieces travel.
  void exchange(int layer_index, int slot, const InputSlot& input, const void* stored,
                const Region& stored_region, void* tile) override;
  void finish() override;
  void to_coordinator(int layer_index, const Tensor& out) override;

 private:
  void exchange_pieces(const InputSlot& input, const void* stored, const Region& stored_region,
                       void* tile);

  MPI_Comm graph_ = MPI_COMM_NULL;
  // The exchanges started and not finished: their requests, the datatypes
  // they use and their trace labels and bytes.
  std::vector<MPI_Request> pending_;
  std::vector<std::unique_ptr<PieceType>> pending_types_;
  struct CollectiveArrays {
    std::vector<int> send_counts, receive_counts;
    std::vector<MPI_Aint> send_displacements, receive_displacements;
    std::vector<MPI_Datatype> send_types, receive_types;
  };
  std::vector<std::unique_ptr<CollectiveArrays>> pending_arrays_;
  struct Started {
    std::string label;
    double start_us;
    uint64_t sent, received;
  };
  std::vector<Started> started_;
  std::vector<int> neighbours_;  // node numbers, in the topology's order
  // The layer of the exchanges started and the ranks they move pieces with.
  int pending_layer_ = -1;
  std::vector<int> pending_peers_;
};

}  // namespace splitinfer
