#include "calibration_file.hpp"

#include <cmath>

#include "../src/error.hpp"
#include "hdf5.hpp"

namespace splitinfer {
namespace {

std::string shape_text(const std::vector<int64_t>& dims) {
  if (dims.empty()) return "(scalar)";
  std::string text;
  for (int64_t extent : dims) {
    if (!text.empty()) text += "x";
    text += std::to_string(extent);
  }
  return text;
}

}  // namespace

CalibrationInputs read_calibration(const std::string& path, const Shape& input_shape) {
  const h5::Group root = h5::open_file(path);
  if (!root.has("input"))
    throw Error("calibration file '" + path +
                "' has no /input dataset (float32 [K, C, H, W], see models/make_calib.py)");
  std::vector<int64_t> dims;
  CalibrationInputs inputs;
  std::vector<float>& values = inputs.values;
  values = root.read_floats("input", dims);
  const std::vector<int64_t> wanted = {input_shape.c, input_shape.h, input_shape.w};
  if (dims.size() != 4 || std::vector<int64_t>(dims.begin() + 1, dims.end()) != wanted)
    throw Error("calibration file '" + path + "': /input has shape " + shape_text(dims) +
                " but the model takes " + input_shape.str() + " (so /input needs Kx" +
                shape_text(wanted) + ")");
  if (dims[0] == 0) throw Error("calibration file '" + path + "': /input holds no inputs (K = 0)");
  for (size_t i = 0; i < values.size(); ++i)
    if (!std::isfinite(values[i]))
      throw Error("calibration file '" + path + "': input " +
                  std::to_string(i / (values.size() / dims[0])) + " holds a non-finite value");
  inputs.count = dims[0];
  if (root.has_attr("source")) inputs.source = root.read_string("source");
  return inputs;
}

}  // namespace splitinfer
