#pragma once
// The model's input from a file: an HDF5 file with /input (float32 NCHW), or
// a PNG/JPEG image decoded, resized and normalised as the model's /meta says.
#include <string>
#include <vector>

#include "../src/graph.hpp"

namespace splitinfer {

// Returns input_shape.elements() floats in NCHW order; throws Error when the
// file is unreadable or its shape differs from the model's input shape.
std::vector<float> read_input(const std::string& path, const ModelMeta& meta);

}  // namespace splitinfer
