#include "dataset.hpp"

#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>

#include "../src/error.hpp"

namespace splitinfer {
namespace {

// IDX magic numbers: two zero bytes, the element type (0x08: unsigned byte),
// the number of dims.
constexpr uint32_t kImagesMagic = 0x00000803;
constexpr uint32_t kLabelsMagic = 0x00000801;

// Fashion-MNIST's image size and class count (Xiao et al. 2017,
// https://github.com/zalandoresearch/fashion-mnist).
constexpr int64_t kFashionMnistSide = 28;
constexpr int kFashionMnistClasses = 10;

std::string hex32(uint32_t value) {
  char text[11];
  std::snprintf(text, sizeof text, "0x%08x", value);
  return text;
}

std::string to_string_u128(unsigned __int128 value) {
  std::string digits;
  do {
    digits.insert(digits.begin(), static_cast<char>('0' + static_cast<int>(value % 10)));
    value /= 10;
  } while (value != 0);
  return digits;
}

// The largest IDX file splitinfer decompresses: 256 MiB (Fashion-MNIST's
// training images are 47 MB). Checked against the header's dims before the
// data is read, so a small gzip file cannot make splitinfer inflate gigabytes.
constexpr uint64_t kMaxIdxBytes = uint64_t{256} << 20;

// The decompressed content of `path` (zlib reads a file that is not gzip as
// it is), up to `max_bytes` + 1 bytes: reading stops there, so a caller
// that gets more than `max_bytes` knows the file holds more than it allows.
// Throws Error on a truncated or corrupt stream.
std::vector<uint8_t> read_gzip_file(const std::string& path, uint64_t max_bytes) {
  if (!std::filesystem::exists(path)) throw Error("data set file '" + path + "' does not exist");
  std::unique_ptr<gzFile_s, int (*)(gzFile)> file(gzopen(path.c_str(), "rb"), gzclose);
  if (!file) throw Error("cannot open '" + path + "': " + std::strerror(errno));
  gzbuffer(file.get(), 1 << 17);  // 128 KiB of compressed input per read; zlib's default is 8 KiB

  const auto fail = [&]() {
    int errnum = Z_OK;
    std::string reason = gzerror(file.get(), &errnum);
    // zlib prefixes its message with the path; the message below names it once.
    if (reason.rfind(path + ": ", 0) == 0) reason.erase(0, path.size() + 2);
    if (errnum == Z_BUF_ERROR) reason += " (the file is truncated)";
    if (errnum == Z_DATA_ERROR) reason = std::string("corrupt gzip data: ") + reason;
    throw Error("cannot read '" + path + "': " + reason);
  };

  std::vector<uint8_t> bytes;
  constexpr uint64_t kChunkBytes = 1 << 20;
  for (;;) {
    const size_t size = bytes.size();
    if (size > max_bytes) return bytes;  // more than allowed: the caller says so
    const auto chunk = static_cast<unsigned>(std::min(kChunkBytes, max_bytes + 1 - size));
    bytes.resize(size + chunk);
    const int read = gzread(file.get(), bytes.data() + size, chunk);
    if (read < 0) fail();
    bytes.resize(size + static_cast<size_t>(read));
    if (read == 0) break;
  }
  // A stream that ends early reads as end of file; zlib remembers the error.
  int errnum = Z_OK;
  gzerror(file.get(), &errnum);
  if (errnum != Z_OK) fail();
  const int closed = gzclose(file.release());
  if (closed != Z_OK) {
    throw Error("cannot read '" + path + "': " +
                (closed == Z_BUF_ERROR ? "the gzip stream ends early (the file is truncated)"
                                       : "zlib error " + std::to_string(closed)));
  }
  return bytes;
}

struct IdxArray {
  std::vector<int64_t> dims;
  std::vector<uint8_t> data;  // the elements after the header
};

// Reads an IDX file of unsigned bytes with `magic` (whose low byte is the
// number of dims), checking that every dim is positive and that exactly
// their product of bytes follows the header.
IdxArray read_idx_file(const std::string& path, uint32_t magic, const char* what) {
  const size_t rank = magic & 0xff;
  // The header alone first; the data only once its size is known to be sane.
  std::vector<uint8_t> bytes = read_gzip_file(path, 4 + 4 * rank);
  const size_t header_bytes = 4 + 4 * rank;  // magic, then one uint32 per dim
  const auto big_endian_u32 = [&](size_t offset) {
    return static_cast<uint32_t>(bytes[offset]) << 24 |
           static_cast<uint32_t>(bytes[offset + 1]) << 16 |
           static_cast<uint32_t>(bytes[offset + 2]) << 8 | static_cast<uint32_t>(bytes[offset + 3]);
  };
  if (bytes.size() < 4)
    throw Error("'" + path + "' is not an IDX " + what + " file: it holds only " +
                std::to_string(bytes.size()) + " bytes");
  const uint32_t found_magic = big_endian_u32(0);
  if (found_magic != magic) {
    const char* hint = found_magic == kImagesMagic   ? " (an images file)"
                       : found_magic == kLabelsMagic ? " (a labels file)"
                                                     : "";
    throw Error("'" + path + "' is not an IDX " + what + " file: magic number " +
                hex32(found_magic) + hint + ", expected " + hex32(magic));
  }
  if (bytes.size() < header_bytes)
    throw Error("'" + path + "' is truncated: its header needs " + std::to_string(header_bytes) +
                " bytes, the file holds " + std::to_string(bytes.size()));

  IdxArray array;
  std::string dims_text;
  unsigned __int128 element_count = 1;  // at most (2^32)^3: no overflow
  for (size_t axis = 0; axis < rank; ++axis) {
    const uint32_t extent = big_endian_u32(4 + 4 * axis);
    array.dims.push_back(extent);
    element_count *= extent;
    if (axis > 0) dims_text += 'x';
    dims_text += std::to_string(extent);
  }
  if (element_count == 0) throw Error("'" + path + "' has an empty dimension: " + dims_text);
  if (element_count > kMaxIdxBytes)
    throw Error("'" + path + "' declares dims " + dims_text + ", " + to_string_u128(element_count) +
                " bytes, more than splitinfer reads (" + std::to_string(kMaxIdxBytes) + ")");
  bytes = read_gzip_file(path, header_bytes + static_cast<uint64_t>(element_count));
  const size_t data_bytes = bytes.size() - header_bytes;
  if (element_count < data_bytes)
    throw Error("'" + path + "' holds more bytes after its header than its dims " + dims_text +
                " need (" + to_string_u128(element_count) + ")");
  if (element_count > data_bytes)
    throw Error("'" + path + "' holds " + std::to_string(data_bytes) +
                " bytes after its header, but its dims " + dims_text + " need " +
                to_string_u128(element_count) + " (the file is truncated)");
  bytes.erase(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(header_bytes));
  array.data = std::move(bytes);
  return array;
}

}  // namespace

ImageDataset read_idx_dataset(const std::string& images_path, const std::string& labels_path) {
  IdxArray images = read_idx_file(images_path, kImagesMagic, "images");
  IdxArray labels = read_idx_file(labels_path, kLabelsMagic, "labels");
  if (images.dims[0] != labels.dims[0]) {
    throw Error("'" + images_path + "' holds " + std::to_string(images.dims[0]) + " images but '" +
                labels_path + "' holds " + std::to_string(labels.dims[0]) + " labels");
  }
  ImageDataset dataset;
  dataset.count = images.dims[0];
  dataset.rows = images.dims[1];
  dataset.cols = images.dims[2];
  dataset.pixels = std::move(images.data);
  dataset.labels = std::move(labels.data);
  return dataset;
}

ImageDataset read_fashion_mnist(const std::string& split, const std::string& dir) {
  if (split != "test" && split != "train")
    throw Error("Fashion-MNIST has no split '" + split + "': use test or train");
  if (!std::filesystem::is_directory(dir)) {
    throw Error("Fashion-MNIST directory '" + dir + "' does not exist: " +
                (dir == kFashionMnistDir
                     ? "install Debian's dataset-fashion-mnist package (apt-get install "
                       "dataset-fashion-mnist)"
                     : std::string("Debian's dataset-fashion-mnist package installs it in ") +
                           kFashionMnistDir));
  }
  // The file names of the original distribution, kept by the Debian package.
  const std::string prefix = split == "test" ? "t10k" : "train";
  const std::string images_path =
      (std::filesystem::path(dir) / (prefix + "-images-idx3-ubyte.gz")).string();
  const std::string labels_path =
      (std::filesystem::path(dir) / (prefix + "-labels-idx1-ubyte.gz")).string();
  ImageDataset dataset = read_idx_dataset(images_path, labels_path);
  if (dataset.rows != kFashionMnistSide || dataset.cols != kFashionMnistSide) {
    throw Error("'" + images_path + "' holds " + std::to_string(dataset.rows) + "x" +
                std::to_string(dataset.cols) + " images; Fashion-MNIST's are 28x28");
  }
  for (size_t index = 0; index < dataset.labels.size(); ++index) {
    if (dataset.labels[index] >= kFashionMnistClasses) {
      throw Error("'" + labels_path + "' holds label " + std::to_string(dataset.labels[index]) +
                  " at index " + std::to_string(index) + "; Fashion-MNIST's are 0..9");
    }
  }
  return dataset;
}

}  // namespace splitinfer
