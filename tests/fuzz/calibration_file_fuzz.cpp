// The calibration file reader (io/calibration_file.hpp) on arbitrary bytes,
// for the seed model's input shape: it either returns the inputs or throws
// splitinfer::Error. Anything else is a finding.
#include <cstddef>
#include <cstdint>

#include "calibration_file.hpp"
#include "error.hpp"
#include "fuzz_files.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const splitinfer::Shape input_shape = splitinfer::fuzz::seed_model().meta.input_shape;
  const std::filesystem::path path = splitinfer::fuzz::scratch_dir() / "calibration.h5";
  splitinfer::fuzz::write_bytes(path, data, size);
  try {
    splitinfer::read_calibration(path.string(), input_shape);
  } catch (const splitinfer::Error&) {
  }
  return 0;
}
