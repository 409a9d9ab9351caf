#pragma once
// OUT.h5 (io/FORMAT.md) and STATS.json writers.
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "../src/shape.hpp"
#include "hdf5.hpp"

namespace splitinfer {

// Writes tensors to an HDF5 file: `/output`, and `/layers/<name>` for dumps.
class OutputFile {
 public:
  explicit OutputFile(const std::string& path);
  void write(const std::string& dataset_path, const Shape& shape, const float* values);

 private:
  h5::Group root_;
};

// Writes `stats` as indented JSON; throws Error when the file cannot be written.
void write_json(const std::string& path, const nlohmann::json& stats);

}  // namespace splitinfer
