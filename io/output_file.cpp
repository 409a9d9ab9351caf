#include "output_file.hpp"

#include <fstream>

#include "../src/error.hpp"

namespace splitinfer {

OutputFile::OutputFile(const std::string& path) : root_(h5::create_file(path)) {}

void OutputFile::write(const std::string& dataset_path, const Shape& shape, const float* values) {
  const size_t slash = dataset_path.rfind('/');
  if (slash == std::string::npos || slash == 0)
    return root_.write_floats(dataset_path, shape.dims(), values);
  const std::string group_name = dataset_path.substr(0, slash);
  const h5::Group group =
      root_.has(group_name) ? root_.open_group(group_name) : root_.create_group(group_name);
  group.write_floats(dataset_path.substr(slash + 1), shape.dims(), values);
}

void write_json(const std::string& path, const nlohmann::json& stats) {
  std::ofstream file(path);
  file << stats.dump(2) << "\n";
  if (!file) throw Error("cannot write '" + path + "'");
}

}  // namespace splitinfer
