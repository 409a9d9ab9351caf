#pragma once
// What the reader harnesses share. The readers take paths (the plan reader a
// directory holding plan.h5 and node_K.h5), so a harness writes its input to a
// file in a directory of its own under /dev/shm, memory-backed where that
// exists, and hands the reader the path; and the model and plan the seeds and
// the node harness are built from.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>

#include "graph.hpp"
#include "hdf5.hpp"
#include "model_builder.hpp"
#include "plan.hpp"

namespace splitinfer::fuzz {

// A directory for this process's input files, made on first use and removed
// at exit (left behind only by a crash).
class ScratchDir {
 public:
  ScratchDir() {
    const std::filesystem::path shm = "/dev/shm";
    const std::filesystem::path base =
        std::filesystem::is_directory(shm) ? shm : std::filesystem::temp_directory_path();
    path_ = base / ("splitinfer-fuzz-" + std::to_string(getpid()));
    std::filesystem::create_directories(path_);
  }
  ~ScratchDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

#ifdef SPLITINFER_VET_PROGRAM
// The readers open files as splitinfer does, vetted first (io/hdf5.hpp).
inline const bool kVetting = [] {
  h5::set_vet_program(SPLITINFER_VET_PROGRAM);
  return true;
}();
#endif

inline const std::filesystem::path& scratch_dir() {
  static const ScratchDir dir;
  return dir.path();
}

inline void write_bytes(const std::filesystem::path& path, const uint8_t* data, size_t size) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
}

// The model of the seeds: a seeded random stack of convolutions, pools, relus
// and residual adds, with the input metadata a model file holds.
inline Model seed_model() {
  Model model = testing::random_stack(3);
  const int64_t channels = model.meta.input_shape.c;
  model.meta.mean.assign(channels, 0.5);
  model.meta.std.assign(channels, 0.25);
  return model;
}

// Its plan on two nodes, spatial (the node harness reads node 1's file of it).
inline Plan seed_plan(const Model& model) {
  PlanOptions options;
  options.nodes = 2;
  options.model_digest = "splitinfer-fuzz-seed";
  return make_plan(model, options);
}

}  // namespace splitinfer::fuzz
