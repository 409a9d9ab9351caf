#include "in_process_transport.hpp"

#include <algorithm>
#include <climits>
#include <cstring>
#include <thread>

#include "../error.hpp"

namespace splitinfer {
namespace {

constexpr int kHaloTag = 100;  // node to node pieces (above every Tag)

std::vector<char> packed_piece(const void* tile, const Region& holder, const Region& piece,
                               size_t element_bytes) {
  std::vector<char> bytes(piece.bytes(element_bytes));
  copy_region(tile, holder, bytes.data(), piece, piece, element_bytes);
  return bytes;
}

class InProcessExchange : public NodeExchange {
 public:
  InProcessExchange(InProcessCluster& cluster, int node) : cluster_(cluster), node_(node) {}

  void exchange(int layer_index, int slot, const InputSlot& input, const void* stored,
                const Region& stored_region, void* tile) override {
    const double start = trace_ ? trace_->now_us() : 0;
    const uint64_t sent_before = bytes_sent, received_before = bytes_received;
    for (const Transfer& piece : input.receives) {
      // Delivered by finish(); until then the piece's place in the tile
      // holds 0xff bytes.
      const std::vector<char> poison(piece.region.bytes(input.element_bytes),
                                     static_cast<char>(0xff));
      copy_region(poison.data(), piece.region, tile, input.needed, piece.region,
                  input.element_bytes);
      pending_.push_back(
          {piece.peer, layer_index, slot, tile, input.needed, piece.region, input.element_bytes});
      bytes_received += piece.region.bytes(input.element_bytes);
    }
    for (const Transfer& piece : input.sends) {
      if (!stored_region.contains(piece.region))
        throw Error("internal: node " + std::to_string(node_) + " sends " + piece.region.str() +
                    " of its region " + stored_region.str() + " for layer " +
                    std::to_string(layer_index));
      InProcessCluster::Mail mail{
          node_, kHaloTag, layer_index, slot,
          packed_piece(stored, stored_region, piece.region, input.element_bytes)};
      sent_.push_back(
          {layer_index, stored, stored_region, piece.region, input.element_bytes, mail.bytes});
      cluster_.post(piece.peer, std::move(mail));
      bytes_sent += piece.region.bytes(input.element_bytes);
    }
    if (trace_)
      started_.push_back(
          {"exchange for layer " + std::to_string(layer_index) + ", input " + std::to_string(slot),
           start, bytes_sent - sent_before, bytes_received - received_before});
  }

  void finish() override {
    for (const Pending& pending : pending_) {
      const int tag = pending.from == 0 ? static_cast<int>(Tag::input) : kHaloTag;
      const InProcessCluster::Mail mail = cluster_.take(node_, pending.from, tag);
      if (pending.from != 0 && (mail.layer != pending.layer || mail.slot != pending.slot))
        throw Error("internal: node " + std::to_string(node_) + " expected from node " +
                    std::to_string(pending.from) + " a piece for layer " +
                    std::to_string(pending.layer) + ", input " + std::to_string(pending.slot) +
                    ", and received one for layer " + std::to_string(mail.layer) + ", input " +
                    std::to_string(mail.slot));
      if (mail.bytes.size() != pending.region.bytes(pending.element_bytes))
        throw Error("internal: node " + std::to_string(node_) + " received " +
                    std::to_string(mail.bytes.size()) + " bytes for " + pending.region.str());
      copy_region(mail.bytes.data(), pending.region, pending.tile, pending.needed, pending.region,
                  pending.element_bytes);
    }
    pending_.clear();
    for (const Sent& sent : sent_)
      if (packed_piece(sent.stored, sent.stored_region, sent.region, sent.element_bytes) !=
          sent.piece)
        throw Error("internal: node " + std::to_string(node_) + ", layer " +
                    std::to_string(sent.layer_index) +
                    ": a piece being sent changed before its exchange finished");
    sent_.clear();
    for (const Started& exchange : started_)
      trace_->add(exchange.label, "exchange", exchange.start_us, exchange.sent, exchange.received);
    started_.clear();
  }

  void to_coordinator(int layer_index, const Tensor& out) override {
    const double start = trace_ ? trace_->now_us() : 0;
    const char* first = static_cast<const char*>(out.data);
    cluster_.post(0, {node_, static_cast<int>(Tag::relay), layer_index, -1,
                      std::vector<char>(first, first + out.bytes())});
    bytes_sent += out.bytes();
    if (trace_)
      trace_->add("relay of layer " + std::to_string(layer_index), "relay", start, out.bytes(), 0);
  }

 private:
  struct Pending {  // a piece to receive by finish()
    int from, layer, slot;
    void* tile;
    Region needed, region;
    size_t element_bytes;
  };
  struct Sent {  // a piece sent, as it was when its exchange started
    int layer_index;
    const void* stored;
    Region stored_region, region;
    size_t element_bytes;
    std::vector<char> piece;
  };
  struct Started {
    std::string label;
    double start_us;
    uint64_t sent, received;
  };
  InProcessCluster& cluster_;
  int node_;
  std::vector<Pending> pending_;
  std::vector<Sent> sent_;
  std::vector<Started> started_;
};

class InProcessTransport : public Transport {
 public:
  InProcessTransport(InProcessCluster& cluster, int rank) : cluster_(cluster), rank_(rank) {}

  int rank() const override { return rank_; }
  int ranks() const override { return cluster_.ranks(); }

  std::optional<std::string> first_failure(const std::optional<std::string>& mine) override {
    cluster_.failures[rank_] = mine;
    cluster_.meet();
    std::optional<std::string> first;
    for (const std::optional<std::string>& failure : cluster_.failures)
      if (failure) {
        first = failure;
        break;
      }
    cluster_.meet();  // everyone has read the slots before they are written again
    return first;
  }
  void broadcast(std::string& text) override {
    if (rank_ == 0) cluster_.broadcast_text = text;
    cluster_.meet();
    if (rank_ != 0) text = cluster_.broadcast_text;
    cluster_.meet();
  }
  void barrier() override { cluster_.meet(); }

  std::unique_ptr<NodeExchange> node_exchange(const std::vector<int>&) override {
    return std::make_unique<InProcessExchange>(cluster_, rank_);
  }

  void send(int to, Tag tag, const void* data, int64_t count, size_t element_bytes) override {
    const char* first = static_cast<const char*>(data);
    cluster_.post(to, {rank_, static_cast<int>(tag), -1, -1,
                       std::vector<char>(first, first + count * element_bytes)});
  }
  void post_send(int to, Tag tag, const void* data, int64_t count, size_t element_bytes) override {
    send(to, tag, data, count, element_bytes);  // copied at once: nothing to wait for
  }
  void wait_sends() override {}
  void receive(int from, Tag tag, int /*layer*/, void* map, const Region& holder,
               const Region& piece, size_t element_bytes, const ExpectedEnd&) override {
    const InProcessCluster::Mail mail = cluster_.take(rank_, from, static_cast<int>(tag));
    if (mail.bytes.size() != piece.bytes(element_bytes))
      throw Error("internal: rank " + std::to_string(rank_) + " received " +
                  std::to_string(mail.bytes.size()) + " bytes from rank " + std::to_string(from) +
                  " for " + piece.str());
    copy_region(mail.bytes.data(), piece, map, holder, piece, element_bytes);
  }
  void send_text(int to, Tag tag, const std::string& text) override {
    send(to, tag, text.data(), static_cast<int64_t>(text.size()), 1);
  }
  std::string receive_text(int from, Tag tag) override {
    const InProcessCluster::Mail mail = cluster_.take(rank_, from, static_cast<int>(tag));
    return std::string(mail.bytes.begin(), mail.bytes.end());
  }
  std::pair<int, std::string> receive_text_from_any(Tag tag) override {
    const InProcessCluster::Mail mail =
        cluster_.take(rank_, InProcessCluster::kAnyRank, static_cast<int>(tag));
    return {mail.from, std::string(mail.bytes.begin(), mail.bytes.end())};
  }

 private:
  InProcessCluster& cluster_;
  int rank_;
};

}  // namespace

InProcessCluster::InProcessCluster(int ranks) : failures(ranks), ranks_(ranks), mailboxes_(ranks) {
  if (ranks < 1) throw Error("an in-process cluster needs at least one rank");
}

std::vector<std::string> InProcessCluster::run(const std::function<void(Transport&)>& body) {
  std::vector<std::string> errors(ranks_);
  std::vector<std::thread> threads;
  for (int rank = 0; rank < ranks_; ++rank)
    threads.emplace_back([&, rank] {
      InProcessTransport transport(*this, rank);
      try {
        body(transport);
      } catch (const std::exception& failure) {
        errors[rank] = failure.what();
        if (errors[rank].empty()) errors[rank] = "failed";
        fail();
      }
    });
  for (std::thread& thread : threads) thread.join();
  return errors;
}

void InProcessCluster::post(int to, Mail mail) {
  if (to < 0 || to >= ranks_)
    throw Error("internal: a message to rank " + std::to_string(to) + " of " +
                std::to_string(ranks_));
  {
    std::lock_guard lock(mutex_);
    mailboxes_[to].push_back(std::move(mail));
  }
  changed_.notify_all();
}

InProcessCluster::Mail InProcessCluster::take(int rank, int from, int tag) {
  std::unique_lock lock(mutex_);
  std::deque<Mail>& mailbox = mailboxes_[rank];
  for (;;) {
    throw_if_failed();
    const auto found = std::find_if(mailbox.begin(), mailbox.end(), [&](const Mail& mail) {
      return (mail.from == from || from == kAnyRank) && mail.tag == tag;
    });
    if (found != mailbox.end()) {
      Mail mail = std::move(*found);
      mailbox.erase(found);
      return mail;
    }
    changed_.wait(lock);
  }
}

void InProcessCluster::meet() {
  std::unique_lock lock(mutex_);
  throw_if_failed();
  const uint64_t generation = generation_;
  if (++arrived_ == ranks_) {
    arrived_ = 0;
    ++generation_;
    changed_.notify_all();
    return;
  }
  changed_.wait(lock, [&] { return generation_ != generation || failed_; });
  if (generation_ == generation) throw_if_failed();  // a meeting that ended stands
}

void InProcessCluster::fail() {
  {
    std::lock_guard lock(mutex_);
    failed_ = true;
  }
  changed_.notify_all();
}

void InProcessCluster::throw_if_failed() const {
  if (failed_) throw Error("stopped: another rank failed");
}

}  // namespace splitinfer
