#include "output_file.hpp"

#include <fstream>

#include "../src/error.hpp"

namespace splitinfer {

OutputFile::OutputFile(const std::string& path) : root_(h5::create_file(path)) {}

std::pair<h5::Group, std::string> OutputFile::place(const std::string& dataset_path) {
  const size_t slash = dataset_path.rfind('/');
  if (slash == std::string::npos || slash == 0) return {root_.open_group("/"), dataset_path};
  const std::string group_name = dataset_path.substr(0, slash);
  return {root_.has(group_name) ? root_.open_group(group_name) : root_.create_group(group_name),
          dataset_path.substr(slash + 1)};
}

void OutputFile::write(const std::string& dataset_path, const Shape& shape, const float* values) {
  const auto [group, name] = place(dataset_path);
  group.write_floats(name, shape.dims(), values);
}

void OutputFile::write_quantized(const std::string& dataset_path, const Layer& layer,
                                 const uint8_t* values) {
  const auto [group, name] = place(dataset_path);
  group.write_raw(name, layer.output_shape.dims(), DType::u8, values);
  const h5::Group attributes = group.dataset_attributes(name);
  attributes.write_double("scale", layer.quant.scale);
  attributes.write_int("zero_point", layer.quant.zero_point);
}

void write_json(const std::string& path, const nlohmann::json& stats) {
  std::ofstream file(path);
  file << stats.dump(2) << "\n";
  if (!file) throw Error("cannot write '" + path + "'");
}

}  // namespace splitinfer
