// read_idx_dataset on IDX files this test writes with zlib, good and broken,
// and read_fashion_mnist on Debian's dataset-fashion-mnist when installed.
#include "dataset.hpp"

#include <gtest/gtest.h>
#include <zlib.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "error.hpp"
#include "test_util.hpp"

namespace splitinfer {
namespace {

using testing::error_of;

constexpr uint32_t kImagesMagic = 0x00000803, kLabelsMagic = 0x00000801;

// An IDX file: the magic, each dim as a big-endian uint32, then `data`.
std::vector<uint8_t> idx_bytes(uint32_t magic, const std::vector<uint32_t>& dims,
                               const std::vector<uint8_t>& data) {
  std::vector<uint8_t> bytes;
  std::vector<uint32_t> words{magic};
  words.insert(words.end(), dims.begin(), dims.end());
  for (uint32_t word : words)
    for (int shift : {24, 16, 8, 0}) bytes.push_back(static_cast<uint8_t>(word >> shift));
  bytes.insert(bytes.end(), data.begin(), data.end());
  return bytes;
}

void write_gzip(const std::string& path, const std::vector<uint8_t>& bytes) {
  gzFile file = gzopen(path.c_str(), "wb");
  ASSERT_NE(file, nullptr) << path;
  ASSERT_EQ(gzwrite(file, bytes.data(), static_cast<unsigned>(bytes.size())),
            static_cast<int>(bytes.size()));
  ASSERT_EQ(gzclose(file), Z_OK);
}

std::vector<uint8_t> read_raw(const std::string& path) {
  std::ifstream stream(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(stream), std::istreambuf_iterator<char>()};
}

void write_raw(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream stream(path, std::ios::binary | std::ios::trunc);
  stream.write(reinterpret_cast<const char*>(bytes.data()),
               static_cast<std::streamsize>(bytes.size()));
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// Three 2x4 images (pixel i of image n is 16n + i) and their labels.
class IdxDataset : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::path(::testing::TempDir()) /
           ("splitinfer_dataset_test_" +
            std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    images_path_ = (dir_ / "images-idx3-ubyte.gz").string();
    labels_path_ = (dir_ / "labels-idx1-ubyte.gz").string();
    for (uint8_t n = 0; n < 3; ++n)
      for (uint8_t i = 0; i < 8; ++i) pixels_.push_back(static_cast<uint8_t>(16 * n + i));
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  void write_good_files() {
    write_gzip(images_path_, idx_bytes(kImagesMagic, {3, 2, 4}, pixels_));
    write_gzip(labels_path_, idx_bytes(kLabelsMagic, {3}, labels_));
  }
  std::string read_error() {
    return error_of([&] { read_idx_dataset(images_path_, labels_path_); });
  }

  std::filesystem::path dir_;
  std::string images_path_, labels_path_;
  std::vector<uint8_t> pixels_, labels_{7, 0, 9};
};

TEST_F(IdxDataset, ReadsImagesAndLabels) {
  write_good_files();
  const ImageDataset dataset = read_idx_dataset(images_path_, labels_path_);
  EXPECT_EQ(dataset.count, 3);
  EXPECT_EQ(dataset.rows, 2);
  EXPECT_EQ(dataset.cols, 4);
  EXPECT_EQ(dataset.pixels, pixels_);
  EXPECT_EQ(dataset.labels, labels_);
  EXPECT_EQ(dataset.image(2)[0], 32);  // image 2, pixel 0
  EXPECT_EQ(dataset.image(2)[7], 39);
}

TEST_F(IdxDataset, ReadsUncompressedFilesToo) {
  write_raw(images_path_, idx_bytes(kImagesMagic, {3, 2, 4}, pixels_));
  write_raw(labels_path_, idx_bytes(kLabelsMagic, {3}, labels_));
  const ImageDataset dataset = read_idx_dataset(images_path_, labels_path_);
  EXPECT_EQ(dataset.pixels, pixels_);
  EXPECT_EQ(dataset.labels, labels_);
}

TEST_F(IdxDataset, RejectsWrongMagic) {
  // Labels where the images belong: the images file carries 0x00000801.
  write_gzip(images_path_, idx_bytes(kLabelsMagic, {3}, labels_));
  write_gzip(labels_path_, idx_bytes(kLabelsMagic, {3}, labels_));
  std::string message = read_error();
  EXPECT_TRUE(contains(message, "'" + images_path_ + "'")) << message;
  EXPECT_TRUE(contains(message, "magic number 0x00000801")) << message;
  EXPECT_TRUE(contains(message, "expected 0x00000803")) << message;

  write_good_files();
  write_gzip(labels_path_, idx_bytes(0x12345678, {3}, labels_));
  message = read_error();
  EXPECT_TRUE(contains(message, "'" + labels_path_ + "'")) << message;
  EXPECT_TRUE(contains(message, "magic number 0x12345678")) << message;
}

TEST_F(IdxDataset, RejectsTruncatedGzip) {
  write_good_files();
  std::vector<uint8_t> compressed = read_raw(images_path_);
  compressed.resize(compressed.size() / 2);
  write_raw(images_path_, compressed);
  const std::string message = read_error();
  EXPECT_TRUE(contains(message, "'" + images_path_ + "'")) << message;
  EXPECT_TRUE(contains(message, "truncated")) << message;
}

TEST_F(IdxDataset, RejectsCorruptGzip) {
  write_good_files();
  std::vector<uint8_t> compressed = read_raw(labels_path_);
  compressed[compressed.size() - 6] ^= 0xff;  // inside the CRC-32 of the 8-byte gzip trailer
  write_raw(labels_path_, compressed);
  const std::string message = read_error();
  EXPECT_TRUE(contains(message, "cannot read '" + labels_path_ + "'")) << message;
}

TEST_F(IdxDataset, RejectsFewerOrMoreBytesThanTheHeaderSays) {
  std::vector<uint8_t> short_pixels(pixels_.begin(), pixels_.end() - 1);
  write_good_files();
  write_gzip(images_path_, idx_bytes(kImagesMagic, {3, 2, 4}, short_pixels));
  std::string message = read_error();
  EXPECT_TRUE(contains(message, "'" + images_path_ + "' holds 23 bytes after its header"))
      << message;
  EXPECT_TRUE(contains(message, "3x2x4 need 24")) << message;
  EXPECT_TRUE(contains(message, "truncated")) << message;

  std::vector<uint8_t> long_pixels = pixels_;
  long_pixels.push_back(0);
  write_gzip(images_path_, idx_bytes(kImagesMagic, {3, 2, 4}, long_pixels));
  message = read_error();
  EXPECT_TRUE(contains(message, "holds more bytes after its header than its dims 3x2x4 need (24)"))
      << message;

  // A header that declares more than splitinfer reads is refused before the data is inflated.
  write_gzip(images_path_, idx_bytes(kImagesMagic, {1u << 20, 1u << 10, 1u << 10}, pixels_));
  message = read_error();
  EXPECT_TRUE(contains(message, "more than splitinfer reads")) << message;

  write_gzip(images_path_, idx_bytes(kImagesMagic, {3}, {}));  // a header cut after one dim
  message = read_error();
  EXPECT_TRUE(contains(message, "'" + images_path_ + "' is truncated")) << message;

  // Dims whose product overflows 64 bits.
  write_gzip(images_path_, idx_bytes(kImagesMagic, {0xffffffff, 0xffffffff, 0xffffffff}, {}));
  message = read_error();
  EXPECT_TRUE(contains(message, "79228162458924105385300197375 bytes, more than"))
      << message;  // (2^32-1)^3
}

TEST_F(IdxDataset, RejectsCountMismatch) {
  write_good_files();
  write_gzip(labels_path_, idx_bytes(kLabelsMagic, {2}, {7, 0}));
  const std::string message = read_error();
  EXPECT_TRUE(contains(
      message, "'" + images_path_ + "' holds 3 images but '" + labels_path_ + "' holds 2 labels"))
      << message;
}

TEST_F(IdxDataset, RejectsEmptyDims) {
  write_good_files();
  write_gzip(images_path_, idx_bytes(kImagesMagic, {3, 0, 4}, {}));
  const std::string message = read_error();
  EXPECT_TRUE(contains(message, "'" + images_path_ + "' has an empty dimension: 3x0x4")) << message;
}

TEST_F(IdxDataset, RejectsMissingFile) {
  write_good_files();
  std::filesystem::remove(labels_path_);
  const std::string message = read_error();
  EXPECT_TRUE(contains(message, "'" + labels_path_ + "' does not exist")) << message;
}

TEST(FashionMnist, MissingDirectoryNamesThePackage) {
  const std::string message =
      error_of([] { read_fashion_mnist("test", "/nonexistent/splitinfer/fashion-mnist"); });
  EXPECT_TRUE(contains(message, "'/nonexistent/splitinfer/fashion-mnist' does not exist"))
      << message;
  EXPECT_TRUE(contains(message, "dataset-fashion-mnist")) << message;
}

TEST(FashionMnist, RejectsUnknownSplit) {
  const std::string message = error_of([] { read_fashion_mnist("validation"); });
  EXPECT_TRUE(contains(message, "no split 'validation'")) << message;
}

// Counts and values below were computed with Python's gzip module from
// Debian's dataset-fashion-mnist files; the test split has 1,000 images of
// each of the 10 classes (Xiao et al. 2017).
TEST(FashionMnist, ReadsTheTestSplit) {
  if (!std::filesystem::is_directory(kFashionMnistDir))
    GTEST_SKIP() << kFashionMnistDir << " is absent: apt-get install dataset-fashion-mnist";
  const ImageDataset dataset = read_fashion_mnist("test");
  ASSERT_EQ(dataset.count, 10000);
  EXPECT_EQ(dataset.rows, 28);
  EXPECT_EQ(dataset.cols, 28);
  ASSERT_EQ(dataset.pixels.size(), 10000u * 28 * 28);
  ASSERT_EQ(dataset.labels.size(), 10000u);

  std::vector<int> per_class(10, 0);
  for (uint8_t label : dataset.labels) {
    ASSERT_LE(label, 9);
    ++per_class[label];
  }
  EXPECT_EQ(per_class, std::vector<int>(10, 1000));
  EXPECT_EQ(std::vector<uint8_t>(dataset.labels.begin(), dataset.labels.begin() + 10),
            (std::vector<uint8_t>{9, 2, 1, 1, 6, 1, 4, 6, 5, 7}));

  uint64_t pixel_sum = 0;
  for (uint8_t pixel : dataset.pixels) pixel_sum += pixel;
  EXPECT_EQ(pixel_sum, 573469082u);
  const uint8_t* row_14 = dataset.image(0) + 14 * 28;  // an ankle boot
  EXPECT_EQ(
      std::vector<uint8_t>(row_14, row_14 + 28),
      (std::vector<uint8_t>{0,   0,   0,   0,   0,   0,   2,   4,   1,   0,   0,   0,   98,  136,
                            110, 109, 110, 162, 135, 144, 149, 159, 167, 144, 158, 169, 119, 0}));
}

}  // namespace
}  // namespace splitinfer
