#include "mpi_transport.hpp"

#include <climits>

#include "mpi_exchange.hpp"

namespace splitinfer {
namespace {

class MpiTransport : public Transport {
 public:
  MpiTransport() {
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &ranks_);
    MPI_Comm_split(MPI_COMM_WORLD, rank_ == 0 ? MPI_UNDEFINED : 1, rank_, &node_comm_);
  }
  ~MpiTransport() override {
    if (node_comm_ != MPI_COMM_NULL) MPI_Comm_free(&node_comm_);
  }

  int rank() const override { return rank_; }
  int ranks() const override { return ranks_; }

  std::optional<std::string> first_failure(const std::optional<std::string>& mine) override {
    const int own = mine ? rank_ : INT_MAX;
    int first = INT_MAX;
    MPI_Allreduce(&own, &first, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    if (first == INT_MAX) return std::nullopt;
    std::string message = first == rank_ ? *mine : std::string();
    broadcast_from(first, message);
    return message;
  }
  void broadcast(std::string& text) override { broadcast_from(0, text); }
  void barrier() override { MPI_Barrier(MPI_COMM_WORLD); }

  std::unique_ptr<NodeExchange> node_exchange(const std::vector<int>& neighbours) override {
    return std::make_unique<MpiExchange>(node_comm_, neighbours);
  }

  void send(int to, Tag tag, const void* data, int64_t count, size_t element_bytes) override {
    MPI_Send(data, static_cast<int>(count), element_mpi_type(element_bytes), to, mpi_tag(tag),
             MPI_COMM_WORLD);
  }
  void post_send(int to, Tag tag, const void* data, int64_t count, size_t element_bytes) override {
    sends_.emplace_back();
    MPI_Isend(data, static_cast<int>(count), element_mpi_type(element_bytes), to, mpi_tag(tag),
              MPI_COMM_WORLD, &sends_.back());
  }
  void wait_sends() override { wait_without_spinning(sends_); }
  void receive(int from, Tag tag, void* map, const Region& holder, const Region& piece,
               size_t element_bytes, const ExpectedEnd& expected) override {
    const PieceType type(holder, piece, element_bytes);
    receive_without_spinning(type.at(map), type.count(), type.type(), from, mpi_tag(tag),
                             MPI_COMM_WORLD, expected);
  }
  void send_text(int to, Tag tag, const std::string& text) override {
    MPI_Send(text.data(), static_cast<int>(text.size()), MPI_CHAR, to, mpi_tag(tag),
             MPI_COMM_WORLD);
  }
  std::string receive_text(int from, Tag tag) override {
    MPI_Status status;
    MPI_Probe(from, mpi_tag(tag), MPI_COMM_WORLD, &status);
    int length = 0;
    MPI_Get_count(&status, MPI_CHAR, &length);
    std::string text(length, '\0');
    MPI_Recv(text.data(), length, MPI_CHAR, from, mpi_tag(tag), MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    return text;
  }

 private:
  void broadcast_from(int root, std::string& text) {
    int length = static_cast<int>(text.size());
    MPI_Bcast(&length, 1, MPI_INT, root, MPI_COMM_WORLD);
    text.resize(length);
    MPI_Bcast(text.data(), length, MPI_CHAR, root, MPI_COMM_WORLD);
  }

  int rank_ = 0, ranks_ = 1;
  MPI_Comm node_comm_ = MPI_COMM_NULL;  // ranks 1..N
  std::vector<MPI_Request> sends_;
};

}  // namespace

std::unique_ptr<Transport> make_mpi_transport() { return std::make_unique<MpiTransport>(); }

}  // namespace splitinfer
