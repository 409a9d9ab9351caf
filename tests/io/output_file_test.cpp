// Outputs are written under a temporary name and renamed: a failed write
// leaves the file that was there; outputs may not be inputs or each other.
#include "output_file.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "error.hpp"

namespace splitinfer {
namespace {

namespace fs = std::filesystem;

class AtomicWrite : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ =
        fs::temp_directory_path() / ("splitinfer_output_file_test_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
    path_ = (dir_ / "stats.json").string();
  }
  void TearDown() override { fs::remove_all(dir_); }
  static std::string content(const std::string& path) {
    std::ifstream file(path, std::ios::binary);
    std::stringstream text;
    text << file.rdbuf();
    return text.str();
  }
  // Files in the directory other than `path_`: temporary files left behind.
  int others() const {
    int count = 0;
    for (const auto& entry : fs::directory_iterator(dir_)) count += entry.path() != path_;
    return count;
  }
  fs::path dir_;
  std::string path_;
};

TEST_F(AtomicWrite, ReplacesTheFileWhole) {
  write_file_atomically(path_, "old\n");
  write_file_atomically(path_, "new\n");
  EXPECT_EQ(content(path_), "new\n");
  EXPECT_EQ(others(), 0);
}

TEST_F(AtomicWrite, AFailingWriteLeavesTheOldFile) {
  write_file_atomically(path_, "old\n");
  EXPECT_THROW(write_atomically_with(path_,
                                     [](const std::string& temporary) {
                                       std::ofstream(temporary) << "half of the new";
                                       throw Error("the disk is full");
                                     }),
               Error);
  EXPECT_EQ(content(path_), "old\n");
  EXPECT_EQ(others(), 0);  // the temporary file is gone
}

TEST_F(AtomicWrite, AFailingRenameLeavesTheOldFileAndNoTemporary) {
  // `path_` a directory: the rename fails after the bytes are written.
  fs::create_directories(dir_ / "taken");
  const std::string taken = (dir_ / "taken").string();
  std::ofstream(dir_ / "taken" / "keep") << "kept";
  EXPECT_THROW(write_file_atomically(taken, "new\n"), Error);
  EXPECT_EQ(content((dir_ / "taken" / "keep").string()), "kept");
  EXPECT_FALSE(fs::exists(temporary_path_for(taken)));
}

TEST_F(AtomicWrite, AnUncommittedOutputFileLeavesTheOldFile) {
  const std::string h5_path = (dir_ / "out.h5").string();
  write_file_atomically(h5_path, "old\n");
  {
    OutputFile file(h5_path);
    const float values[4] = {1, 2, 3, 4};
    file.write("output", Shape{1, 4, 1, 1, 2}, values);
  }  // destroyed without commit(): the run failed
  EXPECT_EQ(content(h5_path), "old\n");
  EXPECT_FALSE(fs::exists(temporary_path_for(h5_path)));
  {
    OutputFile file(h5_path);
    const float values[4] = {1, 2, 3, 4};
    file.write("output", Shape{1, 4, 1, 1, 2}, values);
    file.commit();
  }
  EXPECT_NE(content(h5_path), "old\n");
  EXPECT_FALSE(fs::exists(temporary_path_for(h5_path)));
}

TEST_F(AtomicWrite, RefusesAnOutputThatIsAnInputOrAnotherOutput) {
  write_file_atomically(path_, "input\n");
  const std::string same = (dir_ / "." / "stats.json").string();
  EXPECT_THROW(check_output_paths({{"--output", same}}, {{"--input", path_}}), Error);
  EXPECT_THROW(check_output_paths({{"--output", path_}, {"--stats", same}}, {}), Error);
  fs::create_symlink(path_, dir_ / "link.json");
  EXPECT_THROW(
      check_output_paths({{"--trace", (dir_ / "link.json").string()}}, {{"--input", path_}}),
      Error);
  try {
    check_output_paths({{"--output", path_}, {"--stats", same}}, {});
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("--stats"), std::string::npos) << error.what();
  }
  EXPECT_NO_THROW(check_output_paths(
      {{"--output", (dir_ / "a.h5").string()}, {"--stats", (dir_ / "b.json").string()}, {"", ""}},
      {{"--input", path_}}));
}

}  // namespace
}  // namespace splitinfer
