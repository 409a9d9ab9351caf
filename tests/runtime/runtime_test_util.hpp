#pragma once
// What the runtime's tests share: a small model as a model file holds it,
// seeded inputs, and whole maps as floats.
#include <cstring>
#include <vector>

#include "../model_builder.hpp"
#include "coordinator.hpp"

namespace splitinfer::testing {

// A small classifier: convolutions (one strided), a pool, a residual add,
// global pooling and a linear layer, with the input metadata a model file
// holds (so plans of it can be written and read).
inline Model runtime_classifier() {
  ModelBuilder b(nchw(1, 3, 13, 11), 7);
  b.conv("conv1", "input", 8, conv_params(3, 1, 1));
  b.unary("relu1", Op::relu, "conv1");
  b.conv("conv2", "relu1", 8, conv_params(3, 2, 1));
  b.pool("pool", Op::maxpool, "conv2", pool_params(3, 1, 1));
  b.conv("body", "pool", 8, conv_params(3, 1, 1));
  b.binary("residual", Op::add, "body", "pool");
  b.global_avgpool("gap", "residual");
  b.flatten("flat", "gap");
  b.linear("fc", "flat", 5);
  Model model = b.finish("fc");
  model.meta.mean = {0.5, 0.5, 0.5};
  model.meta.std = {0.25, 0.25, 0.25};
  return model;
}

// `count` seeded inputs of the model, each different.
inline std::vector<std::vector<float>> seeded_inputs(const Model& model, int count) {
  std::vector<std::vector<float>> inputs;
  for (int seed = 1; seed <= count; ++seed)
    inputs.push_back(random_values(static_cast<size_t>(model.layers[0].output_shape.elements()),
                                   static_cast<uint32_t>(seed), -2.0f, 2.0f));
  return inputs;
}

// A float32 map's values.
inline std::vector<float> as_floats(const Bytes& map) {
  std::vector<float> values(map.size() / sizeof(float));
  std::memcpy(values.data(), map.data(), map.size());
  return values;
}

}  // namespace splitinfer::testing
