// The runtime over MPI (run with `mpirun -np 3`: a coordinator and two
// nodes): the protocol's agreements, pieces received into a map by region,
// and a whole session of several inferences whose outputs equal, bit for
// bit, the same plan run on one node over the in-process transport (which
// rank 0 runs on its own threads). Every rank runs every test; a failure on
// any rank fails the job.
#include <gtest/gtest.h>
#include <mpi.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>

#include "../../io/plan_file.hpp"
#include "in_process_transport.hpp"
#include "mpi_transport.hpp"
#include "runtime_test_util.hpp"
#include "session.hpp"

namespace splitinfer {
namespace {

TEST(MpiProtocol, EveryRankAgreesOnRankZerosSettingsAndFailures) {
  const std::unique_ptr<Transport> transport = make_mpi_transport();
  ASSERT_EQ(transport->ranks(), 3) << "run with mpirun -np 3";
  RunSettings mine;
  mine.plan_dir = "plan_of_rank_" + std::to_string(transport->rank());
  mine.repeat = 5 + transport->rank();
  mine.trace = transport->rank() == 1;
  const RunSettings agreed = agree_settings(*transport, mine);
  EXPECT_EQ(agreed.plan_dir, "plan_of_rank_0");
  EXPECT_EQ(agreed.repeat, 5);
  EXPECT_FALSE(agreed.trace);

  std::string message;
  try {
    agreed_step(*transport, [&] {
      if (transport->rank() >= 1)
        throw Error("node " + std::to_string(transport->rank()) + " broke");
    });
  } catch (const AgreedFailure& failure) {
    message = failure.what();
  }
  EXPECT_EQ(message, "node 1 broke");
  EXPECT_NO_THROW(agreed_step(*transport, [] {}));
}

// Each node sends a piece of a map; rank 0 receives both into one map, each
// at its place (one strided, one a run of memory).
TEST(MpiTransport, PiecesLandAtTheirRegionOfTheMap) {
  const std::unique_ptr<Transport> transport = make_mpi_transport();
  const Region whole{0, 3, 0, 4, 0, 5};
  const Region pieces[] = {{0, 2, 1, 3, 2, 4}, {2, 3, 0, 4, 0, 5}};  // strided; one channel
  if (transport->rank() != 0) {
    const Region& piece = pieces[transport->rank() - 1];
    std::vector<float> values(piece.elements());
    for (size_t i = 0; i < values.size(); ++i) values[i] = 100.0f * transport->rank() + i;
    transport->send(0, Tag::output, values.data(), piece.elements(), sizeof(float));
    return;
  }
  std::vector<float> map(whole.elements(), -1.0f);
  for (int node = 1; node <= 2; ++node)
    transport->receive(node, Tag::output, -1, map.data(), whole, pieces[node - 1], sizeof(float));
  for (int node = 1; node <= 2; ++node) {
    const Region& piece = pieces[node - 1];
    std::vector<float> got(piece.elements());
    copy_region(map.data(), whole, got.data(), piece, piece, sizeof(float));
    for (size_t i = 0; i < got.size(); ++i) EXPECT_EQ(got[i], 100.0f * node + i) << node;
  }
  EXPECT_EQ(map[0], -1.0f);  // outside both pieces
}

// Runs `plan_dir` with `settings` on `transport`, feeding `inputs`; rank 0
// returns every inference's output and the statistics. `slow`: run --slow.
std::pair<std::vector<std::vector<float>>, nlohmann::json> session(
    Transport& transport, const std::string& plan_dir,
    const std::vector<std::vector<float>>& inputs, int repeat, const std::string& slow = "") {
  RunSettings settings;
  settings.plan_dir = plan_dir;
  settings.repeat = repeat;
  settings.slow = slow;
  std::vector<std::vector<float>> outputs;
  const RunResult result =
      run_session(transport, agree_settings(transport, settings), [&](const Model&) {
        Feed feed;
        feed.count = static_cast<int>(inputs.size());
        feed.input = [&](int index) -> const std::vector<float>& { return inputs[index]; };
        feed.output = [&](int, const Bytes& output) {
          outputs.push_back(testing::as_floats(output));
        };
        return feed;
      });
  return {outputs, result.stats};
}

TEST(MpiSession, SeveralInferencesEqualOneNodeInProcessBitForBit) {
  const std::unique_ptr<Transport> transport = make_mpi_transport();
  const Model model = testing::runtime_classifier();
  std::string dir;
  if (transport->rank() == 0) {
    dir = (std::filesystem::temp_directory_path() /
           ("splitinfer-mpi-test-" + std::to_string(::getpid())))
              .string();
    PlanOptions two;
    two.nodes = 2;
    write_plan(dir + "/two", model, make_plan(model, two));
    write_plan(dir + "/one", model, make_plan(model, {}));
  }
  transport->broadcast(dir);
  const std::vector<std::vector<float>> inputs = testing::seeded_inputs(model, 3);

  const auto [outputs, stats] = session(*transport, dir + "/two", inputs, 2);
  // Node 2 three times as slow (run --slow 2:3): the same bits.
  const auto [slow_outputs, slow_stats] = session(*transport, dir + "/two", inputs, 2, "2:3");
  if (transport->rank() == 0) {
    std::vector<std::vector<float>> one_outputs;
    InProcessCluster one(2);
    const std::vector<std::string> errors = one.run([&](Transport& in_process) {
      std::vector<std::vector<float>> mine = session(in_process, dir + "/one", inputs, 2).first;
      if (in_process.rank() == 0) one_outputs = mine;
    });
    for (const std::string& error : errors) EXPECT_EQ(error, "");
    ASSERT_EQ(outputs.size(), 3u);
    ASSERT_EQ(one_outputs.size(), 3u);
    for (size_t run = 0; run < 3; ++run) {
      EXPECT_TRUE(testing::bitwise_equal(one_outputs[run], outputs[run])) << "inference " << run;
      EXPECT_TRUE(testing::bitwise_equal(one_outputs[run], slow_outputs[run])) << "inference " << run;
    }
    // Busy and idle split each node's host time; the slowdown is reported.
    for (const nlohmann::json& node : slow_stats["nodes"]) {
      EXPECT_EQ(node["slowdown"].get<double>(), node["rank"] == 2 ? 3.0 : 1.0);
      EXPECT_GE(node["busy_seconds"].get<double>(), 0.0);
      EXPECT_GE(node["idle_seconds"].get<double>(), 0.0);
      EXPECT_DOUBLE_EQ(node["busy_seconds"].get<double>() + node["idle_seconds"].get<double>(),
                       node["host_seconds"].get<double>());
    }
    for (const nlohmann::json& node : stats["nodes"]) {
      EXPECT_EQ(node["peak_ram_bytes"], node["predicted_peak_ram_bytes"]);
      EXPECT_EQ(node["bytes_sent"], node["predicted_bytes_sent"]);
      EXPECT_EQ(node["bytes_received"], node["predicted_bytes_received"]);
    }
    std::filesystem::remove_all(dir);
  }
}

}  // namespace
}  // namespace splitinfer

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  ::testing::InitGoogleTest(&argc, argv);
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  if (rank != 0) {  // one rank's report is enough; the exit status says if any failed
    ::testing::TestEventListeners& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
  }
  const int status = RUN_ALL_TESTS();
  int worst = 0;
  MPI_Allreduce(&status, &worst, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  MPI_Finalize();
  return worst;
}
