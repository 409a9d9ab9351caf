// plan_load_bench PLAN_DIR [REPEATS [VET_PROGRAM]]: the time to load a plan
// the way `run` does (plan.h5 on the coordinator, every node_K.h5 on its
// node), all in one process, as the median of REPEATS loads (default 20);
// with VET_PROGRAM (splitinfer-vet), every file vetted first as splitinfer
// does (io/hdf5.hpp). Run on a plan as written (checksums and digests
// verified), with and without vetting, and on the same plan rewritten without
// them (tests/io/plan_load_bench.sh) to measure what verification costs;
// io/FORMAT.md ("Integrity") quotes the figures.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "../../io/hdf5.hpp"
#include "../../io/plan_file.hpp"
#include "../../src/error.hpp"

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: plan_load_bench PLAN_DIR [REPEATS]\n");
    return 2;
  }
  const std::string plan_dir = argv[1];
  const int repeats = argc > 2 ? std::max(1, std::stoi(argv[2])) : 20;
  if (argc > 3) splitinfer::h5::set_vet_program(argv[3]);
  try {
    std::vector<double> plan_seconds, node_seconds;
    for (int r = 0; r < repeats; ++r) {
      const auto start = std::chrono::steady_clock::now();
      splitinfer::Model graph;
      splitinfer::Plan plan;
      splitinfer::read_plan(plan_dir, graph, plan);
      const auto planned = std::chrono::steady_clock::now();
      for (int node = 1; node <= plan.nodes; ++node) {
        splitinfer::Model model = graph;
        splitinfer::read_node_weights(plan_dir, node, plan, model);
      }
      const auto end = std::chrono::steady_clock::now();
      plan_seconds.push_back(std::chrono::duration<double>(planned - start).count());
      node_seconds.push_back(std::chrono::duration<double>(end - planned).count());
    }
    const auto median = [](std::vector<double> values) {
      std::sort(values.begin(), values.end());
      return values[values.size() / 2];
    };
    std::printf("%s%s: plan.h5 %.2f ms, node files %.2f ms (median of %d)\n", plan_dir.c_str(),
                argc > 3 ? ", vetted" : "", 1e3 * median(plan_seconds), 1e3 * median(node_seconds),
                repeats);
  } catch (const splitinfer::Error& error) {
    std::fprintf(stderr, "plan_load_bench: error: %s\n", error.what());
    return 1;
  }
  return 0;
}
