#pragma once
// OUT.h5 (io/FORMAT.md) and STATS.json writers.
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "../src/graph.hpp"
#include "../src/shape.hpp"
#include "hdf5.hpp"

namespace splitinfer {

// Writes tensors to an HDF5 file: `/output`, and `/layers/<name>` for dumps.
// The file is written under a temporary name beside `path` and renamed to
// `path` by commit(), so `path` holds either its old content or the whole new
// file; an OutputFile destroyed without commit() removes its temporary file.
class OutputFile {
 public:
  explicit OutputFile(const std::string& path);
  ~OutputFile();
  OutputFile(const OutputFile&) = delete;
  OutputFile& operator=(const OutputFile&) = delete;
  // Closes the file and renames it to `path`; throws Error when it cannot.
  void commit();
  void write(const std::string& dataset_path, const Shape& shape, const float* values);
  // A quint8 layer's map: uint8 with attributes scale and zero_point.
  void write_quantized(const std::string& dataset_path, const Layer& layer, const uint8_t* values);

 private:
  // The group holding `dataset_path` (created when missing) and the dataset's name in it.
  std::pair<h5::Group, std::string> place(const std::string& dataset_path);
  std::string path_, temporary_path_;
  std::optional<h5::Group> root_;
};

// Writes `bytes` to a temporary file in `path`'s directory and renames it to
// `path`: a failed write leaves whatever `path` held before. Throws Error.
void write_file_atomically(const std::string& path, const std::string& bytes);

// A file a command reads or writes, named for messages: {"--output", path}.
struct NamedPath {
  std::string option, path;
};
// Throws Error when an output is the same file as an input or as another
// output (compared as std::filesystem::weakly_canonical paths, so "./a" and
// "a" are one file, as are a symbolic link and its target). Empty paths
// (options not given) are skipped.
void check_output_paths(const std::vector<NamedPath>& outputs,
                        const std::vector<NamedPath>& inputs);

// Calls `write(temporary)` for a temporary path beside `path`, then renames
// it to `path`; when `write` throws, removes the temporary file and rethrows.
void write_atomically_with(const std::string& path,
                           const std::function<void(const std::string&)>& write);

// A temporary name for `path` in the same directory (so that a rename is
// atomic): "<path>.tmp-<pid>".
std::string temporary_path_for(const std::string& path);

// Writes `stats` as indented JSON (atomically, as write_file_atomically);
// throws Error when the file cannot be written.
void write_json(const std::string& path, const nlohmann::json& stats);

}  // namespace splitinfer
