#pragma once
// The calibration inputs of `splitinfer quantize` (models/make_calib.py
// writes them): an HDF5 file with /input, float32 [K, C, H, W], K inputs of
// the model, used one at a time in file order.
#include <string>
#include <vector>

#include "../src/shape.hpp"

namespace splitinfer {

struct CalibrationInputs {
  std::vector<float> values;  // the K inputs one after another, K * C * H * W floats
  int64_t count = 0;          // K
  std::string source;         // the root attribute `source` (what the inputs are), or ""
};

// Throws Error when /input is missing, K is 0, [C, H, W] differs from
// `input_shape`'s, or a value is not finite.
CalibrationInputs read_calibration(const std::string& path, const Shape& input_shape);

}  // namespace splitinfer
