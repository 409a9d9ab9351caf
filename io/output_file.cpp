#include "output_file.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "../src/error.hpp"
#include "../src/format.hpp"

namespace splitinfer {

std::string temporary_path_for(const std::string& path) {
  return path + ".tmp-" + std::to_string(::getpid());
}

namespace {

void rename_into_place(const std::string& temporary, const std::string& path) {
  if (std::rename(temporary.c_str(), path.c_str()) != 0) {
    const std::string reason = std::strerror(errno);
    std::remove(temporary.c_str());
    throw Error("cannot write '" + printable(path) + "': " + reason);
  }
}

}  // namespace

OutputFile::OutputFile(const std::string& path)
    : path_(path), temporary_path_(temporary_path_for(path)) {
  root_.emplace(h5::create_file(temporary_path_));
}

OutputFile::~OutputFile() {
  if (!root_) return;
  root_.reset();  // closes the file
  std::remove(temporary_path_.c_str());
}

void OutputFile::commit() {
  root_.reset();
  rename_into_place(temporary_path_, path_);
}

std::pair<h5::Group, std::string> OutputFile::place(const std::string& dataset_path) {
  const size_t slash = dataset_path.rfind('/');
  if (slash == std::string::npos || slash == 0) return {root_->open_group("/"), dataset_path};
  const std::string group_name = dataset_path.substr(0, slash);
  return {root_->has(group_name) ? root_->open_group(group_name) : root_->create_group(group_name),
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

void write_file_atomically(const std::string& path, const std::string& bytes) {
  const std::string temporary = temporary_path_for(path);
  {
    std::ofstream file(temporary, std::ios::binary | std::ios::trunc);
    file.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    file.close();
    if (!file) {
      std::remove(temporary.c_str());
      throw Error("cannot write '" + printable(path) + "'");
    }
  }
  rename_into_place(temporary, path);
}

void check_output_paths(const std::vector<NamedPath>& outputs,
                        const std::vector<NamedPath>& inputs) {
  const auto canonical = [](const std::string& path) {
    std::error_code error;
    const std::filesystem::path resolved = std::filesystem::weakly_canonical(path, error);
    return error ? std::filesystem::absolute(path).lexically_normal() : resolved;
  };
  for (size_t i = 0; i < outputs.size(); ++i) {
    if (outputs[i].path.empty()) continue;
    const std::filesystem::path output = canonical(outputs[i].path);
    const auto refuse = [&](const NamedPath& other, const char* kind) {
      throw Error(outputs[i].option + " '" + printable(outputs[i].path) + "' is the same file as " +
                  kind + other.option + " '" + printable(other.path) + "'; write it elsewhere");
    };
    for (const NamedPath& input : inputs)
      if (!input.path.empty() && canonical(input.path) == output) refuse(input, "");
    for (size_t j = 0; j < i; ++j)
      if (!outputs[j].path.empty() && canonical(outputs[j].path) == output)
        refuse(outputs[j], "the output of ");
  }
}

void write_atomically_with(const std::string& path,
                           const std::function<void(const std::string&)>& write) {
  const std::string temporary = temporary_path_for(path);
  try {
    write(temporary);
  } catch (...) {
    std::remove(temporary.c_str());
    throw;
  }
  rename_into_place(temporary, path);
}

void write_json(const std::string& path, const nlohmann::json& stats) {
  write_file_atomically(path, stats.dump(2) + "\n");
}

}  // namespace splitinfer
