// The plan file reader (io/plan_file.hpp, plan.h5 of a plan directory) on
// arbitrary bytes: it either returns the model's graph and the plan or throws
// splitinfer::Error. Anything else is a finding.
#include <cstddef>
#include <cstdint>

#include "error.hpp"
#include "fuzz_files.hpp"
#include "plan_file.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::filesystem::path dir = splitinfer::fuzz::scratch_dir() / "plan";
  std::filesystem::create_directories(dir);
  splitinfer::fuzz::write_bytes(splitinfer::plan_path(dir.string()), data, size);
  try {
    splitinfer::Model model;
    splitinfer::Plan plan;
    splitinfer::read_plan(dir.string(), model, plan);
  } catch (const splitinfer::Error&) {
  }
  return 0;
}
