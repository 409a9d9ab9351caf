#pragma once
// Receptive fields: for every layer, how many input rows and columns one
// output element depends on, and the distance (in input pixels) between
// neighbouring output elements (the jump).
#include <vector>

#include "../src/graph.hpp"

namespace splitinfer {

struct ReceptiveField {
  int64_t rows = 1, cols = 1;  // input pixels one output element sees (not clipped to the image)
  double jump_rows = 1, jump_cols = 1;  // input pixels between neighbouring outputs
};

// One per layer. Windowed layers grow the field by (kernel-1)*dilation*jump;
// global pooling and flattening a map take the whole map as their window;
// layers with several inputs take the largest field.
std::vector<ReceptiveField> receptive_fields(const Model& model);

}  // namespace splitinfer
