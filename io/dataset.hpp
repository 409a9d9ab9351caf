#pragma once
// Labelled image data sets in the IDX format of MNIST and Fashion-MNIST
// (http://yann.lecun.com/exdb/mnist/): a gzip-compressed images file
// (magic 0x00000803, dims count x rows x cols, 8-bit pixels) and a labels
// file (magic 0x00000801, dim count, 8-bit labels), all integers big-endian.
#include <cstdint>
#include <string>
#include <vector>

namespace splitinfer {

struct ImageDataset {
  int64_t count = 0, rows = 0, cols = 0;
  std::vector<uint8_t> pixels;  // [count, rows, cols], 8-bit grayscale, row-major
  std::vector<uint8_t> labels;  // [count]

  // The rows*cols pixels of image `index`.
  const uint8_t* image(int64_t index) const { return pixels.data() + index * rows * cols; }
};

// Reads an images file and its labels file (gzip-compressed or plain). Throws
// Error naming the file when one is missing, is not valid gzip, has the wrong
// magic number or zero dims, holds more or fewer bytes than its header says,
// or when the two files hold different counts.
ImageDataset read_idx_dataset(const std::string& images_path, const std::string& labels_path);

// Debian's dataset-fashion-mnist package installs the files here.
inline constexpr const char* kFashionMnistDir = "/usr/share/datasets/fashion-mnist";

// Fashion-MNIST's "test" (10,000 images, t10k-*) or "train" (60,000 images)
// split from `dir`: 28x28 images, labels 0..9. Throws Error when the split is
// neither, when `dir` is missing (saying which package installs it) or when
// the files are not Fashion-MNIST's shape.
ImageDataset read_fashion_mnist(const std::string& split,
                                const std::string& dir = kFashionMnistDir);

}  // namespace splitinfer
