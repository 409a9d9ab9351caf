#pragma once
// OUT.h5 (io/FORMAT.md) and STATS.json writers.
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "../src/graph.hpp"
#include "../src/shape.hpp"
#include "hdf5.hpp"

namespace splitinfer {

// Writes tensors to an HDF5 file: `/output`, and `/layers/<name>` for dumps.
class OutputFile {
 public:
  explicit OutputFile(const std::string& path);
  void write(const std::string& dataset_path, const Shape& shape, const float* values);
  // A quint8 layer's map: uint8 with attributes scale and zero_point.
  void write_quantized(const std::string& dataset_path, const Layer& layer, const uint8_t* values);

 private:
  // The group holding `dataset_path` (created when missing) and the dataset's name in it.
  std::pair<h5::Group, std::string> place(const std::string& dataset_path);
  h5::Group root_;
};

// Writes `stats` as indented JSON; throws Error when the file cannot be written.
void write_json(const std::string& path, const nlohmann::json& stats);

}  // namespace splitinfer
