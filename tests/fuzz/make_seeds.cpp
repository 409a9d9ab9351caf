// make_seeds DIR: writes a seed corpus for each harness, DIR/<reader>/: the
// seed model's file, its plan file and node 1's file (the plan the node
// harness reads against), a calibration file, and inputs (HDF5, PNG gray and
// RGB, JPEG, BMP) for the seed model.
#include <stb_image_write.h>

#include <cstdio>
#include <filesystem>
#include <vector>

#include "fuzz_files.hpp"
#include "hdf5.hpp"
#include "model_file.hpp"
#include "plan_file.hpp"

namespace fs = std::filesystem;
using namespace splitinfer;

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_seeds DIR\n");
    return 2;
  }
  const fs::path out = argv[1];
  for (const char* reader : {"model_file", "plan_file", "node_file", "calibration_file",
                             "input_file"})
    fs::create_directories(out / reader);

  const Model model = fuzz::seed_model();
  write_model((out / "model_file" / "model.h5").string(), model);
  const fs::path plan_dir = fuzz::scratch_dir() / "seed_plan";
  write_plan(plan_dir.string(), model, fuzz::seed_plan(model));
  fs::copy_file(plan_path(plan_dir.string()), out / "plan_file" / "plan.h5",
                fs::copy_options::overwrite_existing);
  fs::copy_file(node_path(plan_dir.string(), 1), out / "node_file" / "node_1.h5",
                fs::copy_options::overwrite_existing);

  const Shape& shape = model.meta.input_shape;
  const int64_t count = 2;  // calibration inputs
  std::vector<float> values(count * shape.c * shape.h * shape.w);
  for (size_t i = 0; i < values.size(); ++i) values[i] = static_cast<float>(i % 7) / 7.0f;
  h5::create_file((out / "calibration_file" / "calibration.h5").string())
      .write_floats("input", {count, shape.c, shape.h, shape.w}, values.data());
  values.resize(shape.c * shape.h * shape.w);
  h5::create_file((out / "input_file" / "input.h5").string())
      .write_floats("input", {1, shape.c, shape.h, shape.w}, values.data());

  // Images a little larger than the input, so they are resized.
  const int width = static_cast<int>(shape.w) + 3, height = static_cast<int>(shape.h) + 2;
  std::vector<uint8_t> pixels(width * height * 3);
  for (size_t i = 0; i < pixels.size(); ++i) pixels[i] = static_cast<uint8_t>(i * 37);
  const std::string images = (out / "input_file").string();
  const bool written =
      stbi_write_png((images + "/gray.png").c_str(), width, height, 1, pixels.data(), width) &&
      stbi_write_png((images + "/rgb.png").c_str(), width, height, 3, pixels.data(), width * 3) &&
      stbi_write_jpg((images + "/rgb.jpg").c_str(), width, height, 3, pixels.data(), 90) &&
      stbi_write_bmp((images + "/rgb.bmp").c_str(), width, height, 3, pixels.data());
  if (!written) {
    std::fprintf(stderr, "make_seeds: cannot write the images in %s\n", images.c_str());
    return 1;
  }
  return 0;
}
