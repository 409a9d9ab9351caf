#pragma once
// Liveness over MPI: every wait of a rank has a deadline, and a run whose
// wait misses it ends on every rank with one line naming the node at fault.
//
// A node's wait that misses the deadline does nothing by itself: the node
// it waits for may be waiting too. The coordinator decides. When one of its
// own waits misses the deadline it asks every node what it waits for
// (Tag::query); a node answers from inside any wait (Tag::state), so only
// a node that is stopped, stuck or dead stays silent. After a grace period
// the coordinator names the silent node that the others wait for, with the
// layer they wait at, prints one line and ends the job (MPI_Abort). A node
// whose wait outlasts the deadline by much more (the coordinator itself is
// silent) names the coordinator and ends the job the same way.
//
// A node killed outright ends the job through the launcher unless the
// launcher lets the others run on (OpenMPI: `mpirun --mca
// orte_abort_on_non_zero_status 0`, as jobs/lib/common.sh starts runs), so
// that this watchdog can name it.
#include <mpi.h>

#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include "transport.hpp"

namespace splitinfer {

// What a rank waits for: "<what> [of layer L] <with> <peer or peers>".
struct WaitFor {
  const char* what = "a message";
  int layer = -1;                           // the layer it concerns; -1: none
  int peer = -1;                            // the rank that must act; -1: see peers
  const std::vector<int>* peers = nullptr;  // ranks, when several must act; null: every rank
  const char* with = "from";                // "from" the peers, "by" them, "with" them
};

// From now on every wait of this rank ends the run after `seconds` (0: no
// deadline). `layer_labels[i]` names layer i in the report.
void set_wait_deadline(double seconds, std::vector<std::string> layer_labels);

// Calls `done` until it returns true, without spinning a core away from the
// ranks that compute (often more ranks than cores): polls for 50 µs, then
// sleeps between polls, each time 1/64 of the wait so far (2 µs to 1 ms).
// With an expected end, it sleeps through all but the last eighth of the
// expected wait in sleeps of typical/16, then polls every typical/512:
// some 80 wake-ups instead of hundreds, and at most typical/512 late.
// Meanwhile a node answers the coordinator's question, and a wait past the
// deadline ends the run as the header says.
void wait_until(const std::function<bool()>& done, const WaitFor& wait_for,
                const ExpectedEnd& expected = {});

}  // namespace splitinfer
