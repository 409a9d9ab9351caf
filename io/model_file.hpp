#pragma once
// The HDF5 model file (io/FORMAT.md): read, validated, with its weights; and
// the graph and weight parts written separately, as plans need them.
#include <string>

#include "../src/graph.hpp"
#include "hdf5.hpp"

namespace splitinfer {

constexpr int64_t kFormatVersion = 1;

// Checks `format` and `format_version` on a file's root; names both when
// wrong; then the file's content digest (check_content_digest).
void check_format(const h5::Group& root, const std::string& expected_format);

// The root attribute of model, plan and node files holding the digest of
// their canonical content (h5::canonical_content: every attribute, every
// dataset's path, type, extents and checksum flag). Dataset bytes are
// covered by fletcher32 instead (io/FORMAT.md, "Integrity").
inline constexpr const char* kContentDigest = "content_digest";
std::string content_digest(const h5::Group& root);
// Stores content_digest(root) on `root`: the last step of writing a file.
void seal(const h5::Group& root);
// Throws Error naming the file when `root` carries a content digest that
// its content does not match (files written without one pass unchecked).
void check_content_digest(const h5::Group& root, const std::string& what);

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
