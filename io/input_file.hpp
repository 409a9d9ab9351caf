#pragma once
// The model's input from a file: an HDF5 file with /input (float32 NCHW), or
// a PNG/JPEG image decoded, resized and normalised as the model's /meta says.
#include <cstdint>
#include <string>
#include <vector>

#include "../src/graph.hpp"

namespace splitinfer {

// Returns input_shape.elements() floats in NCHW order; throws Error when the
// file is unreadable or its shape differs from the model's input shape.
std::vector<float> read_input(const std::string& path, const ModelMeta& meta);

// The model's input from an 8-bit image of width x height pixels with
// `channels` (1 or the model's count) interleaved per pixel, row-major (HWC):
// resized to the input shape (bilinear), scaled by pixel_scale, normalised by
// mean/std and reordered to CHW in the model's channel order; a gray image
// feeds every channel. Returns input_shape.elements() floats. `meta` is
// trusted to be as read_model validates it (one mean and std per channel).
std::vector<float> image_to_input(const uint8_t* pixels, int width, int height, int channels,
                                  const ModelMeta& meta);

}  // namespace splitinfer
