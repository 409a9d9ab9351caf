#pragma once
// The HDF5 model file (io/FORMAT.md): read, validated, with its weights; and
// the graph and weight parts written separately, as plans need them.
#include <string>

#include "../src/graph.hpp"
#include "hdf5.hpp"

namespace splitinfer {

constexpr int64_t kFormatVersion = 1;

// Checks `format` and `format_version` on a file's root; names both when wrong.
void check_format(const h5::Group& root, const std::string& expected_format);

// Reads and validates a model file with its weights. Throws Error on any fault.
Model read_model(const std::string& path);

// Writes a model file (format attributes, graph and weights), replacing any
// file at `path`. Throws Error when it cannot.
void write_model(const std::string& path, const Model& model);

// The graph (root attrs name/source/output, requantization for a model with
// quint8 layers, /meta, /layers without weights) from or to `root`.
Model read_graph(const h5::Group& root);
void write_graph(const h5::Group& root, const Model& model);

// One group per layer with weights, one dataset per blob.
void read_weights(const h5::Group& weights_group, Model& model);
void write_weights(const h5::Group& weights_group, const Model& model);

}  // namespace splitinfer
