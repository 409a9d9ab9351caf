// The model file reader (io/model_file.hpp) on arbitrary bytes: it either
// returns a validated model or throws splitinfer::Error. Anything else (a
// crash, a sanitizer report, another exception, a hang) is a finding.
#include <cstddef>
#include <cstdint>

#include "error.hpp"
#include "fuzz_files.hpp"
#include "model_file.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::filesystem::path path = splitinfer::fuzz::scratch_dir() / "model.h5";
  splitinfer::fuzz::write_bytes(path, data, size);
  try {
    splitinfer::read_model(path.string());
  } catch (const splitinfer::Error&) {
  }
  return 0;
}
