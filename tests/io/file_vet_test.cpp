// Vetting (io/hdf5.hpp, io/file_vet.hpp): open_file runs the vetting program
// on a file first and turns how it ended into an Error naming the file: its
// one line when it refused the file, "corrupt" when it was killed by a
// signal; a file it passes opens. Stand-in programs (shell scripts) play a
// vetting program that refuses, crashes or passes; vet_file itself reads a
// file splitinfer wrote.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <string>

#include "error.hpp"
#include "hdf5.hpp"

namespace splitinfer {
namespace {

std::string temporary(const std::string& name) {
  return (std::filesystem::path(::testing::TempDir()) / name).string();
}

// A stand-in vetting program: a shell script running `body`.
std::string script(const std::string& name, const std::string& body) {
  const std::string path = temporary(name);
  std::ofstream(path) << "#!/bin/sh\n" << body << "\n";
  ::chmod(path.c_str(), 0755);
  return path;
}

// A small file of this test's own (ctest runs the tests in parallel).
std::string small_file() {
  const std::string path = temporary(std::string("splitinfer_vet_") +
                                     ::testing::UnitTest::GetInstance()->current_test_info()->name() +
                                     ".h5");
  static std::set<std::string> written;  // by this process
  if (!written.insert(path).second) return path;
  const h5::Group root = h5::create_file(path);
  root.write_string("format", "splitinfer-test");
  root.write_floats("values", {2, 3}, std::vector<float>{1, 2, 3, 4, 5, 6}.data());
  return path;
}

// open_file's Error with `program` as the vetting program ("" when it passed).
std::string open_with(const std::string& program, const std::string& path) {
  h5::set_vet_program(program);
  std::string message;
  try {
    h5::open_file(path);
  } catch (const Error& failure) {
    message = failure.what();
  }
  h5::set_vet_program("");
  return message;
}

TEST(FileVet, APassingProgramOpensTheFile) {
  EXPECT_EQ(open_with(script("vet_pass.sh", "exit 0"), small_file()), "");
}

TEST(FileVet, ARefusalIsItsOneLine) {
  EXPECT_EQ(open_with(script("vet_refuse.sh", "echo \"'$1': dataset '/x' is bad\"; exit 1"),
                      small_file()),
            std::string("'").append(small_file()).append("': dataset '/x' is bad"));
}

TEST(FileVet, ACrashNamesTheFileAsCorrupt) {
  const std::string message = open_with(script("vet_crash.sh", "kill -SEGV $$"), small_file());
  EXPECT_NE(message.find(std::string("'").append(small_file()).append("' is corrupt")),
            std::string::npos)
      << message;
  EXPECT_NE(message.find("killed by signal 11"), std::string::npos) << message;
}

TEST(FileVet, AMissingProgramIsAnError) {
  const std::string message = open_with(temporary("no_such_vet_program"), small_file());
  EXPECT_NE(message.find("cannot start"), std::string::npos) << message;
}

TEST(FileVet, VetFileReadsAFileSplitinferWrote) {
  EXPECT_NO_THROW(h5::vet_file(small_file()));
  const std::string garbage = temporary("splitinfer_vet_garbage_file.h5");
  std::ofstream(garbage) << "not HDF5";
  EXPECT_THROW(h5::vet_file(garbage), Error);
}

}  // namespace
}  // namespace splitinfer
