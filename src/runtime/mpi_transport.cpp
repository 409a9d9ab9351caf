#include "mpi_transport.hpp"

#include <algorithm>
#include <climits>

#include "mpi_exchange.hpp"

namespace splitinfer {
namespace {

// What a rank waits for when it receives a message of `tag`, or sends one.
const char* what(Tag tag) {
  switch (tag) {
    case Tag::input:
      return "input pieces";
    case Tag::output:
      return "the output";
    case Tag::dump:
      return "a layer's dump";
    case Tag::stats:
      return "the statistics";
    case Tag::relay:
      return "a relayed map";
    case Tag::query:
      return "a question";
    case Tag::state:
      return "an answer";
    case Tag::request:
      return "a request for work";
    case Tag::resume:
      return "what its NVM holds";
    case Tag::task:
      return "a task";
    case Tag::timing:
      return "a node's time";
  }
  return "a message";
}

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
    std::vector<MPI_Request> request(1);
    MPI_Iallreduce(&own, &first, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD, &request[0]);
    wait_without_spinning(request, {"the outcome of the checks"});
    if (first == INT_MAX) return std::nullopt;
    std::string message = first == rank_ ? *mine : std::string();
    broadcast_from(first, message);
    return message;
  }
  void broadcast(std::string& text) override { broadcast_from(0, text); }
  void barrier() override {
    std::vector<MPI_Request> request(1);
    MPI_Ibarrier(MPI_COMM_WORLD, &request[0]);
    wait_without_spinning(request, {"the start of the traced inference"});
  }
  void set_deadline(double seconds, std::vector<std::string> layer_labels) override {
    set_wait_deadline(seconds, std::move(layer_labels));
  }

  std::unique_ptr<NodeExchange> node_exchange(const std::vector<int>& neighbours) override {
    return std::make_unique<MpiExchange>(node_comm_, neighbours);
  }

  void send(int to, Tag tag, const void* data, int64_t count, size_t element_bytes) override {
    std::vector<MPI_Request> request(1);
    MPI_Isend(data, static_cast<int>(count), element_mpi_type(element_bytes), to, mpi_tag(tag),
              MPI_COMM_WORLD, &request[0]);
    wait_without_spinning(request, {what(tag), -1, to, nullptr, "to be taken by"});
  }
  void post_send(int to, Tag tag, const void* data, int64_t count, size_t element_bytes) override {
    sends_.emplace_back();
    send_peers_.push_back(to);
    MPI_Isend(data, static_cast<int>(count), element_mpi_type(element_bytes), to, mpi_tag(tag),
              MPI_COMM_WORLD, &sends_.back());
  }
  void wait_sends() override {
    std::sort(send_peers_.begin(), send_peers_.end());
    send_peers_.erase(std::unique(send_peers_.begin(), send_peers_.end()), send_peers_.end());
    wait_without_spinning(sends_, {"input pieces", -1, -1, &send_peers_, "to be taken by"});
    send_peers_.clear();
  }
  void receive(int from, Tag tag, int layer, void* map, const Region& holder, const Region& piece,
               size_t element_bytes, const ExpectedEnd& expected) override {
    const PieceType type(holder, piece, element_bytes);
    receive_without_spinning(type.at(map), type.count(), type.type(), from, mpi_tag(tag),
                             MPI_COMM_WORLD, {what(tag), layer, from}, expected);
  }
  void send_text(int to, Tag tag, const std::string& text) override {
    std::vector<MPI_Request> request(1);
    MPI_Isend(text.data(), static_cast<int>(text.size()), MPI_CHAR, to, mpi_tag(tag),
              MPI_COMM_WORLD, &request[0]);
    wait_without_spinning(request, {what(tag), -1, to, nullptr, "to be taken by"});
  }
  std::string receive_text(int from, Tag tag) override {
    return receive_probed(from, tag, {what(tag), -1, from}).second;
  }
  std::pair<int, std::string> receive_text_from_any(Tag tag) override {
    return receive_probed(MPI_ANY_SOURCE, tag, {what(tag), -1, -1, nullptr, "from any of"});
  }

 private:
  std::pair<int, std::string> receive_probed(int from, Tag tag, const WaitFor& wait_for) {
    MPI_Status status;
    wait_until(
        [&] {
          int arrived = 0;
          MPI_Iprobe(from, mpi_tag(tag), MPI_COMM_WORLD, &arrived, &status);
          return arrived != 0;
        },
        wait_for);
    int length = 0;
    MPI_Get_count(&status, MPI_CHAR, &length);
    std::string text(length, '\0');
    MPI_Recv(text.data(), length, MPI_CHAR, status.MPI_SOURCE, mpi_tag(tag), MPI_COMM_WORLD,
             MPI_STATUS_IGNORE);
    return {status.MPI_SOURCE, std::move(text)};
  }
  void broadcast_from(int root, std::string& text) {
    int length = static_cast<int>(text.size());
    const WaitFor wait_for{"a broadcast", -1, root == rank_ ? -1 : root};
    std::vector<MPI_Request> request(1);
    MPI_Ibcast(&length, 1, MPI_INT, root, MPI_COMM_WORLD, &request[0]);
    wait_without_spinning(request, wait_for);
    text.resize(length);
    request.resize(1);
    MPI_Ibcast(text.data(), length, MPI_CHAR, root, MPI_COMM_WORLD, &request[0]);
    wait_without_spinning(request, wait_for);
  }

  int rank_ = 0, ranks_ = 1;
  MPI_Comm node_comm_ = MPI_COMM_NULL;  // ranks 1..N
  std::vector<MPI_Request> sends_;
  std::vector<int> send_peers_;  // the ranks of sends_
};

}  // namespace

std::unique_ptr<Transport> make_mpi_transport() { return std::make_unique<MpiTransport>(); }

}  // namespace splitinfer
