// The input reader (io/input_file.hpp) on arbitrary bytes, for the seed
// model's input: bytes that begin with the HDF5 signature go in as input.h5,
// any others as an image (stb_image tells PNG, JPEG, BMP, GIF, ... by their
// content, not the name). It either returns the model's input or throws
// splitinfer::Error. Anything else is a finding.
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "error.hpp"
#include "fuzz_files.hpp"
#include "input_file.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const splitinfer::ModelMeta meta = splitinfer::fuzz::seed_model().meta;
  static const char kHdf5Signature[] = "\x89HDF\r\n\x1a\n";
  const bool hdf5 = size >= 8 && std::memcmp(data, kHdf5Signature, 8) == 0;
  const std::filesystem::path path =
      splitinfer::fuzz::scratch_dir() / (hdf5 ? "input.h5" : "input.png");
  splitinfer::fuzz::write_bytes(path, data, size);
  try {
    splitinfer::read_input(path.string(), meta);
  } catch (const splitinfer::Error&) {
  }
  return 0;
}
