// The node file reader (io/plan_file.hpp, node_K.h5: a node's weight slices)
// on arbitrary bytes, as node 1 of the seed plan (fuzz_files.hpp), which is
// written once and read back as a node reads it: it either fills in node 1's
// weights or throws splitinfer::Error. Anything else is a finding.
#include <cstddef>
#include <cstdint>

#include "error.hpp"
#include "fuzz_files.hpp"
#include "plan_file.hpp"

namespace {

struct SeedPlan {
  std::string dir;
  splitinfer::Model model;  // the graph, no weights
  splitinfer::Plan plan;
};

const SeedPlan& seed_plan() {
  static const SeedPlan seed = [] {
    SeedPlan made;
    made.dir = (splitinfer::fuzz::scratch_dir() / "seed_plan").string();
    const splitinfer::Model model = splitinfer::fuzz::seed_model();
    splitinfer::write_plan(made.dir, model, splitinfer::fuzz::seed_plan(model));
    splitinfer::read_plan(made.dir, made.model, made.plan);
    return made;
  }();
  return seed;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const SeedPlan& seed = seed_plan();
  splitinfer::fuzz::write_bytes(splitinfer::node_path(seed.dir, 1), data, size);
  try {
    splitinfer::Model model = seed.model;
    splitinfer::read_node_weights(seed.dir, 1, seed.plan, model);
  } catch (const splitinfer::Error&) {
  }
  return 0;
}
