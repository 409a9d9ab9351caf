// The emulated NVM (src/runtime/nvm_store.hpp): what is written and committed
// survives a reopen (a reboot); a file of another plan, size or version, or
// with a corrupt header, is refused and left as it was; and a power failure
// at every byte of one job's writes (its output and its commit record), or
// at seeded random instants across a whole run, never changes the answer.
#include "nvm_store.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "error.hpp"
#include "test_util.hpp"

namespace splitinfer {
namespace {

namespace fs = std::filesystem;

fs::path temp_path(const std::string& name) {
  return fs::path(::testing::TempDir()) /
         ("splitinfer_nvm_" +
          std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()) + "_" +
          name);
}

std::string file_bytes(const fs::path& path) {
  std::ifstream file(path, std::ios::binary);
  std::stringstream content;
  content << file.rdbuf();
  return content.str();
}

using testing::error_of;

TEST(NvmStore, WritesAndCommitsSurviveAReboot) {
  const fs::path path = temp_path("nvm");
  fs::remove(path);
  {
    NvmStore store(path.string(), "plan abc node 2", 1000);
    EXPECT_FALSE(store.progress().has_value());
    const char text[] = "kept through power failures";
    store.write(100, text, sizeof text);
    store.commit("run 1 layer 3");
    store.commit("run 1 layer 4");
    EXPECT_EQ(store.bytes_written(), sizeof text + 2 * (16 + 13 + 4));
  }
  NvmStore store(path.string(), "plan abc node 2", 1000);
  EXPECT_EQ(store.progress(), "run 1 layer 4");
  char back[sizeof "kept through power failures"];
  store.read(100, back, sizeof back);
  EXPECT_STREQ(back, "kept through power failures");
  EXPECT_NE(error_of([&] { store.write(990, back, sizeof back); }), "");
  fs::remove(path);
}

TEST(NvmStore, ForeignCorruptOrResizedFilesAreRefusedAndLeftAlone) {
  const fs::path path = temp_path("nvm");
  fs::remove(path);
  {
    NvmStore store(path.string(), "plan abc node 2", 64);
    store.commit("run 1 layer 1");
  }
  const std::string before = file_bytes(path);
  EXPECT_NE(error_of([&] { NvmStore other(path.string(), "plan xyz node 2", 64); })
                .find("belongs to plan abc node 2, not to plan xyz node 2"),
            std::string::npos);
  EXPECT_NE(error_of([&] { NvmStore other(path.string(), "plan abc node 2", 128); })
                .find("holds 64 bytes of data, not the 128 expected"),
            std::string::npos);
  EXPECT_EQ(file_bytes(path), before);
  std::string corrupt = before;
  corrupt[30] ^= 0x40;  // inside the identity: the header's checksum fails
  std::ofstream(path, std::ios::binary) << corrupt;
  EXPECT_NE(error_of([&] { NvmStore other(path.string(), "plan abc node 2", 64); })
                .find("is corrupt (its header's checksum does not match)"),
            std::string::npos);
  EXPECT_EQ(file_bytes(path), corrupt);
  std::ofstream(path, std::ios::binary) << "not an NVM file";
  EXPECT_NE(error_of([&] { NvmStore other(path.string(), "plan abc node 2", 64); }).find("truncated"),
            std::string::npos);
  fs::remove(path);
}

// A small network as jobs: job 0 the seeded input (inference `input`'s),
// job j (1..5) a dense layer with ReLU over job j - 1's output, each 64
// float32 values in its own place of the NVM; the answer is the last job's
// output.
constexpr int kValues = 64, kJobs = 6;

std::vector<NvmJob> network(int input = 1) {
  std::vector<NvmJob> jobs;
  for (int j = 0; j < kJobs; ++j) {
    NvmJob job;
    job.offset = static_cast<uint64_t>(j) * kValues * sizeof(float);
    job.bytes = kValues * sizeof(float);
    job.compute = [j, input](NvmStore& store, char* out) {
      float* y = reinterpret_cast<float*>(out);
      std::mt19937 weights(j == 0 ? input : 1000 + j);
      std::uniform_real_distribution<float> uniform(-0.5f, 0.5f);
      if (j == 0) {
        for (int i = 0; i < kValues; ++i) y[i] = uniform(weights);
        return;
      }
      float x[kValues];
      store.read(static_cast<uint64_t>(j - 1) * kValues * sizeof(float), x, sizeof x);
      for (int i = 0; i < kValues; ++i) {
        float sum = uniform(weights);
        for (int k = 0; k < kValues; ++k) sum += uniform(weights) * x[k];
        y[i] = sum > 0 ? sum : 0;
      }
    };
    jobs.push_back(std::move(job));
  }
  return jobs;
}

std::vector<char> answer(NvmStore& store) {
  std::vector<char> last(kValues * sizeof(float));
  store.read(static_cast<uint64_t>(kJobs - 1) * last.size(), last.data(), last.size());
  return last;
}

constexpr uint64_t kDataBytes = kJobs * kValues * sizeof(float);

// Runs to the end, "rebooting" (a new store on the file, RAM lost) after
// every power failure; returns the answer and counts the failures.
std::vector<char> run_to_the_end(const fs::path& path, const std::vector<NvmJob>& jobs,
                                 int& failures, const std::function<void(NvmStore&)>& arm = {},
                                 const std::string& run = "inference 1") {
  for (;;) {
    NvmStore store(path.string(), "test network", kDataBytes);
    if (arm) arm(store);
    try {
      run_resumable(store, run, jobs);
      return answer(store);
    } catch (const PowerLoss&) {
      ++failures;
    }
  }
}

// The NVM holds a whole earlier inference (its commit records "inference 1
// 4" and "inference 1 5"); the second inference, of another input, loses
// power at every byte of job 1's writes: its output, then its commit record,
// which overwrites "inference 1 5" (a torn record that mixed the two would
// skip to the end with the first inference's answer).
TEST(NvmStore, APowerFailureAtEveryByteOfOneJobNeverChangesTheAnswer) {
  const std::vector<NvmJob> first = network(1), second = network(2);
  const fs::path clean = temp_path("clean"), before = temp_path("before"), torn = temp_path("torn");
  fs::remove(clean);
  std::vector<char> expected, earlier;
  {
    NvmStore store(clean.string(), "test network", kDataBytes);
    EXPECT_EQ(run_resumable(store, "inference 1", first), kJobs);
    earlier = answer(store);
    EXPECT_EQ(run_resumable(store, "inference 2", second), kJobs);
    expected = answer(store);
  }
  ASSERT_NE(expected, earlier);
  // The state before job 1 of the second inference.
  fs::remove(before);
  {
    NvmStore store(before.string(), "test network", kDataBytes);
    run_resumable(store, "inference 1", first);
    run_resumable(store, "inference 2", std::vector<NvmJob>(second.begin(), second.begin() + 1));
    EXPECT_EQ(store.progress(), "inference 2 0");
  }
  const std::string progress = "inference 2 1";
  const uint64_t job_writes = kValues * sizeof(float) + 16 + progress.size() + 4;
  int torn_runs = 0;
  for (uint64_t offset = 0; offset <= job_writes; ++offset) {
    SCOPED_TRACE("power lost after " + std::to_string(offset) + " bytes of job 1's writes");
    fs::copy_file(before, torn, fs::copy_options::overwrite_existing);
    int failures = 0;
    bool armed = false;
    const std::vector<char> got = run_to_the_end(
        torn, second, failures,
        [&](NvmStore& store) {
          if (!armed) store.fail_after(static_cast<int64_t>(offset));
          armed = true;
        },
        "inference 2");
    EXPECT_EQ(got, expected);
    // Every byte written up to job_writes: the failure strikes job 2's first write.
    EXPECT_EQ(failures, 1);
    torn_runs += failures;
    NvmStore after(torn.string(), "test network", kDataBytes);
    EXPECT_EQ(after.progress(), "inference 2 5");
  }
  EXPECT_EQ(torn_runs, static_cast<int>(job_writes) + 1);
  fs::remove(clean);
  fs::remove(before);
  fs::remove(torn);
}

TEST(NvmStore, SeededRandomPowerFailuresThroughAWholeRunNeverChangeTheAnswer) {
  const std::vector<NvmJob> jobs = network();
  const fs::path path = temp_path("nvm");
  fs::remove(path);
  std::vector<char> expected;
  {
    NvmStore store(path.string(), "test network", kDataBytes);
    run_resumable(store, "inference 1", jobs);
    expected = answer(store);
  }
  for (int seed = 0; seed < 50; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    fs::remove(path);
    std::mt19937 random(seed);
    // A failure after a random count of bytes written, every boot, until
    // one boot is allowed to finish.
    std::uniform_int_distribution<int64_t> bytes(0, 700);
    int failures = 0, boots = 0;
    const std::vector<char> got = run_to_the_end(path, jobs, failures, [&](NvmStore& store) {
      if (++boots < 12) store.fail_after(bytes(random));
    });
    EXPECT_EQ(got, expected);
    EXPECT_GT(failures, 0);
  }
  fs::remove(path);
}

}  // namespace
}  // namespace splitinfer
