#pragma once
// The in-process transport: every rank of a run is a thread of one process
// and a message is a copy handed over through shared memory. It runs a whole
// cluster (coordinator and nodes) without mpirun: the runtime's tests use it,
// and a run on one machine could.
//
// It is stricter than MPI where a bug would otherwise hide:
// - a piece received into a tile is written there only by finish(); until
//   then its place holds 0xff bytes (NaN, or 255), so a layer computed early
//   from it differs;
// - a piece being sent must not change before finish() (MPI may read it at
//   any time until then): finish() compares it with its copy and throws;
// - each halo carries its layer and input slot, and a node receiving another
//   than it expects throws (the nodes disagree on the exchange order).
// When a rank fails (its body throws), every wait of the others ends with an
// Error, so a run never hangs.
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>

#include "transport.hpp"

namespace splitinfer {

class InProcessCluster {
 public:
  explicit InProcessCluster(int ranks);
  int ranks() const { return ranks_; }

  // Runs `body` on every rank, each on a thread of its own with its own
  // transport, and returns when every one has returned: per rank, the
  // message of what it threw ("" when it returned). A rank whose wait ended
  // because another failed says so.
  std::vector<std::string> run(const std::function<void(Transport&)>& body);

  // ---- for the transports ----
  struct Mail {
    int from = 0, tag = 0;
    int layer = -1, slot = -1;  // halos: what they feed
    std::vector<char> bytes;
  };
  void post(int to, Mail mail);
  // The first mail to `rank` from `from` (kAnyRank: any) with `tag`, waiting for it.
  static constexpr int kAnyRank = -1;
  Mail take(int rank, int from, int tag);
  // Every rank calls it; returns when all have (throws Error when a rank failed).
  void meet();
  void fail();  // wakes every wait, which then throws
  // What collectives share: one slot per rank, and rank 0's text.
  std::vector<std::optional<std::string>> failures;
  std::string broadcast_text;

 private:
  void throw_if_failed() const;

  int ranks_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<std::deque<Mail>> mailboxes_;  // per receiving rank
  bool failed_ = false;
  int arrived_ = 0;
  uint64_t generation_ = 0;  // of meet(): how many times every rank met
};

}  // namespace splitinfer
