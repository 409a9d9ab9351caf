#include "mpi_watchdog.hpp"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <thread>

#include "exit_status.hpp"

#if defined(__linux__)
#include <sys/prctl.h>
#endif

namespace splitinfer {
namespace {

using Clock = std::chrono::steady_clock;

constexpr int kQueryTag = static_cast<int>(Tag::query);
constexpr int kStateTag = static_cast<int>(Tag::state);

// How long the coordinator waits for the nodes' answers, and how much later
// than the coordinator a node gives up on it (2 s more per node number, so
// that the lowest live node speaks and ends the others first).
constexpr auto kGrace = std::chrono::milliseconds(1000);
constexpr auto kCoordinatorGrace = std::chrono::milliseconds(2500);

struct Watchdog {
  Clock::duration deadline{};  // zero: none
  int rank = 0;                // this process's world rank
  std::vector<std::string> layer_labels;
  bool asked = false;  // a node: the coordinator's question is answered
};

Watchdog& watchdog() {
  static Watchdog instance;
  return instance;
}

int world_rank() {
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  return rank;
}

int world_size() {
  int size = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  return size;
}

std::string rank_name(int rank) {
  return rank == 0 ? "the coordinator" : "node " + std::to_string(rank);
}

std::vector<int> waited_ranks(const WaitFor& wait_for) {
  if (wait_for.peer >= 0) return {wait_for.peer};
  if (wait_for.peers) return *wait_for.peers;
  std::vector<int> every;
  for (int rank = 0; rank < world_size(); ++rank)
    if (rank != world_rank()) every.push_back(rank);
  return every;
}

std::string layer_label(int layer) {
  const std::vector<std::string>& labels = watchdog().layer_labels;
  if (layer >= 0 && layer < static_cast<int>(labels.size())) return labels[layer];
  return "layer " + std::to_string(layer);
}

// "waited 3.0 s for the pieces of layer 14 'x' from node 2"
std::string describe(const WaitFor& wait_for, Clock::duration waited) {
  char seconds[32];
  std::snprintf(seconds, sizeof seconds, "%.1f", std::chrono::duration<double>(waited).count());
  std::string text = std::string("waited ") + seconds + " s for " + wait_for.what;
  if (wait_for.layer >= 0) text += " of " + layer_label(wait_for.layer);
  const std::vector<int> ranks = waited_ranks(wait_for);
  if (!ranks.empty()) {
    text += std::string(" ") + wait_for.with + " ";
    for (size_t i = 0; i < ranks.size(); ++i)
      text += (i == 0 ? "" : i + 1 == ranks.size() ? " and " : ", ") + rank_name(ranks[i]);
  }
  return text;
}

[[noreturn]] void end_run(const std::string& message) {
  std::fprintf(stderr, "splitinfer: error: %s\n", message.c_str());
  std::fflush(stderr);
  record_exit_status(1);
  MPI_Abort(MPI_COMM_WORLD, 1);
  std::_Exit(1);
}

// A node: answers the coordinator's question, if it asked, with what this
// wait is for.
void answer_question(const WaitFor& wait_for, Clock::duration waited) {
  Watchdog& dog = watchdog();
  if (dog.asked) return;
  int asked = 0;
  MPI_Iprobe(0, kQueryTag, MPI_COMM_WORLD, &asked, MPI_STATUS_IGNORE);
  if (!asked) return;
  char nothing = 0;
  MPI_Recv(&nothing, 0, MPI_CHAR, 0, kQueryTag, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
  const std::string state = nlohmann::json{{"layer", wait_for.layer},
                                           {"waits_for", waited_ranks(wait_for)},
                                           {"text", describe(wait_for, waited)}}
                                .dump();
  MPI_Send(state.data(), static_cast<int>(state.size()), MPI_CHAR, 0, kStateTag, MPI_COMM_WORLD);
  dog.asked = true;
}

// The coordinator, past the deadline: asks every node what it waits for,
// names the silent node the others wait for, and ends the run.
[[noreturn]] void name_the_stalled_node(const WaitFor& wait_for, Clock::duration waited) {
  const int ranks = world_size();
  std::vector<MPI_Request> answers(ranks, MPI_REQUEST_NULL), questions(ranks, MPI_REQUEST_NULL);
  std::vector<std::vector<char>> buffers(ranks, std::vector<char>(4096));
  char nothing = 0;
  for (int node = 1; node < ranks; ++node) {
    MPI_Irecv(buffers[node].data(), static_cast<int>(buffers[node].size()), MPI_CHAR, node,
              kStateTag, MPI_COMM_WORLD, &answers[node]);
    MPI_Isend(&nothing, 0, MPI_CHAR, node, kQueryTag, MPI_COMM_WORLD, &questions[node]);
  }
  std::vector<nlohmann::json> states(ranks);
  std::vector<bool> answered(ranks, false);
  answered[0] = true;
  const auto until = Clock::now() + kGrace;
  while (Clock::now() < until &&
         std::count(answered.begin(), answered.end(), true) < static_cast<long>(ranks)) {
    for (int node = 1; node < ranks; ++node) {
      if (answered[node]) continue;
      int done = 0;
      MPI_Status status;
      MPI_Test(&answers[node], &done, &status);
      if (!done) continue;
      int length = 0;
      MPI_Get_count(&status, MPI_CHAR, &length);
      answered[node] = true;
      states[node] = nlohmann::json::parse(std::string(buffers[node].data(), length), nullptr,
                                           /*allow_exceptions=*/false);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  // The silent node the others wait for: first one the coordinator waits
  // for, then one a node waits for, then any.
  const auto silent = [&](int rank) { return rank > 0 && rank < ranks && !answered[rank]; };
  int culprit = -1;
  for (int rank : waited_ranks(wait_for))
    if (culprit < 0 && silent(rank)) culprit = rank;
  for (int node = 1; node < ranks && culprit < 0; ++node)
    if (answered[node] && states[node].contains("waits_for"))
      for (int rank : states[node]["waits_for"])
        if (culprit < 0 && silent(rank)) culprit = rank;
  for (int node = 1; node < ranks && culprit < 0; ++node)
    if (silent(node)) culprit = node;

  std::string waiters = "the coordinator " + describe(wait_for, waited);
  int layer = wait_for.layer;
  for (int node = 1; node < ranks; ++node) {
    if (!answered[node] || !states[node].contains("text")) continue;
    const std::vector<int> waits_for = states[node]["waits_for"].get<std::vector<int>>();
    if (culprit >= 0 && std::find(waits_for.begin(), waits_for.end(), culprit) == waits_for.end())
      continue;
    waiters += "; node " + std::to_string(node) + " " + states[node]["text"].get<std::string>();
    const int at = states[node]["layer"].get<int>();
    if (at >= 0 && (layer < 0 || at < layer)) layer = at;
  }
  if (culprit < 0)
    end_run(
        "every node answers but the run made no progress (a deadlock in the plan's "
        "messages): " +
        waiters);
  end_run(rank_name(culprit) + " (rank " + std::to_string(culprit) +
          ") stopped responding (stalled or dead)" +
          (layer >= 0 ? " at " + layer_label(layer) : std::string()) + ": " + waiters);
}

}  // namespace

void set_wait_deadline(double seconds, std::vector<std::string> layer_labels) {
  Watchdog& dog = watchdog();
  dog.deadline =
      std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  dog.layer_labels = std::move(layer_labels);
  dog.rank = world_rank();
}

void wait_until(const std::function<bool()>& done, const WaitFor& wait_for,
                const ExpectedEnd& expected) {
#if defined(__linux__)
  // Sleeps as short as asked (Linux rounds them up by 50 µs otherwise): a
  // transfer needs both sides to poll, so a late wake-up delays the sender.
  static const bool precise_sleeps = prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0) == 0;
  (void)precise_sleeps;
#endif
  const Watchdog& dog = watchdog();
  const bool deadline = dog.deadline.count() > 0;
  const bool node = deadline && dog.rank != 0;
  const auto start = Clock::now();
  if (node) answer_question(wait_for, Clock::duration::zero());
  for (;;) {
    if (done()) return;
    // The first 50 µs poll (a neighbour's halo often arrives by then);
    // afterwards sleep between polls, each time 1/64 of the wait so far (at
    // least 2 µs, at most 1 ms): a wait ends at most 1/64 late, and a long
    // one (the coordinator's, while the nodes compute) wakes its core only
    // some hundred times. (A rank that yields instead stays runnable and
    // keeps taking turns on a core a computing rank shares.)
    const auto now = Clock::now();
    const auto waited = now - start;
    if (waited < std::chrono::microseconds(50)) continue;
    if (deadline && waited > std::chrono::milliseconds(1)) {
      if (node) {
        answer_question(wait_for, waited);
        if (waited > dog.deadline + kCoordinatorGrace + (dog.rank - 1) * 2 * kGrace)
          end_run("the coordinator (rank 0) stopped responding (stalled or dead): node " +
                  std::to_string(dog.rank) + " " + describe(wait_for, waited));
      } else if (waited > dog.deadline) {
        name_the_stalled_node(wait_for, waited);
      }
    }
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
}

}  // namespace splitinfer
