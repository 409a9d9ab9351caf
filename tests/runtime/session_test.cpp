// The runtime on the in-process transport (every rank a thread): whole runs
// of several inferences through the session, coordinator and node runner,
// for every strategy; the protocol's agreements; no hang when a rank fails.
//
// - A run of N nodes gives, inference after inference, the one-node run's
//   output bit for bit (and every layer, dumped), and each node's measured
//   peak RAM and bytes equal the plan's predictions; the coordinator's
//   traffic is the programs' messages.
// - A bad plan, settings or cap ends every rank with the same AgreedFailure
//   (naming the node at fault); a rank failing mid-run ends every other
//   rank's wait.
#include "session.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>

#include "../../io/plan_file.hpp"
#include "../../partition/prediction.hpp"
#include "../../partition/strategies.hpp"
#include "../../partition/strategy_registry.hpp"
#include "in_process_transport.hpp"
#include "power.hpp"
#include "rebalance.hpp"
#include "runtime_test_util.hpp"
#include "test_util.hpp"

namespace splitinfer {
namespace {

// A directory removed at the end of the test.
struct TemporaryDir {
  std::string path;
  explicit TemporaryDir(const std::string& name)
      : path((std::filesystem::temp_directory_path() /
              ("splitinfer-runtime-test-" + name + "-" + std::to_string(::getpid())))
                 .string()) {
    std::filesystem::remove_all(path);
  }
  ~TemporaryDir() { std::filesystem::remove_all(path); }
};

std::string write_test_plan(const Model& model, const PlanOptions& options, const std::string& name,
                            TemporaryDir& dir) {
  const std::string plan_dir = dir.path + "/" + name;
  write_plan(plan_dir, model, make_plan(model, options));
  return plan_dir;
}

// What rank 0 saw of a run.
struct SessionRun {
  std::vector<std::string> errors;          // per rank
  std::vector<std::vector<float>> outputs;  // per inference
  std::vector<std::vector<float>> dumps;    // per layer, of the last inference
  nlohmann::json stats;
  std::vector<Message> messages;  // cluster_messages() of the plan's programs
};

SessionRun run_in_process(const std::string& plan_dir, int nodes,
                          const std::vector<std::vector<float>>& inputs, RunSettings settings) {
  settings.plan_dir = plan_dir;
  InProcessCluster cluster(nodes + 1);
  SessionRun run;
  run.errors = cluster.run([&](Transport& transport) {
    const RunSettings agreed =
        agree_settings(transport, transport.rank() == 0 ? settings : RunSettings{});
    const RunResult result = run_session(transport, agreed, [&](const Model&) {
      Feed feed;
      feed.count = static_cast<int>(inputs.size());
      feed.input = [&](int index) -> const std::vector<float>& { return inputs[index]; };
      feed.output = [&](int, const Bytes& output) {
        run.outputs.push_back(testing::as_floats(output));
      };
      return feed;
    });
    if (transport.rank() != 0) return;
    run.stats = result.stats;
    for (const Bytes& map : result.dumps) run.dumps.push_back(testing::as_floats(map));
    run.messages = cluster_messages(result.model, result.plan.tasks.empty()
                                                      ? node_programs(result.model, result.plan)
                                                      : task_programs(result.model, result.plan.tasks));
  });
  return run;
}

struct StrategyCase {
  const char* name;
  int nodes;
  const char* strategy;
  const char* grid;
  const char* stream;
};

void PrintTo(const StrategyCase& s, std::ostream* os) { *os << s.name; }

class SessionOnStrategy : public ::testing::TestWithParam<StrategyCase> {};

TEST_P(SessionOnStrategy, SeveralInferencesEqualOneNodeBitForBitAsPredicted) {
  const StrategyCase& strategy = GetParam();
  const Model model = testing::runtime_classifier();
  TemporaryDir dir(strategy.name);
  const std::string one_plan = write_test_plan(model, {}, "one", dir);
  PlanOptions options;
  options.nodes = strategy.nodes;
  options.strategy = parse_strategy(strategy.strategy);
  options.grid = strategy.grid;
  options.stream = strategy.stream;
  const std::string plan_dir = write_test_plan(model, options, strategy.name, dir);
  const std::vector<std::vector<float>> inputs = testing::seeded_inputs(model, 3);
  RunSettings settings;
  settings.dump_layers = true;
  const SessionRun one = run_in_process(one_plan, 1, inputs, settings);
  settings.repeat = 2;  // the three inputs: a warm-up, then two
  const SessionRun many = run_in_process(plan_dir, strategy.nodes, inputs, settings);
  for (const std::string& error : one.errors) ASSERT_EQ(error, "");
  for (const std::string& error : many.errors) ASSERT_EQ(error, "");

  ASSERT_EQ(one.outputs.size(), 3u);
  ASSERT_EQ(many.outputs.size(), 3u);
  for (size_t run = 0; run < inputs.size(); ++run)
    EXPECT_TRUE(testing::bitwise_equal(one.outputs[run], many.outputs[run])) << "inference " << run;
  EXPECT_FALSE(testing::bitwise_equal(many.outputs[0], many.outputs[1]));  // inputs differ
  ASSERT_EQ(many.dumps.size(), model.layers.size());
  for (size_t i = 0; i < model.layers.size(); ++i)
    EXPECT_TRUE(testing::bitwise_equal(one.dumps[i], many.dumps[i]))
        << "layer '" << model.layers[i].name << "'";

  const nlohmann::json& stats = many.stats;
  EXPECT_EQ(stats["repeat"].get<int>(), 2);
  ASSERT_EQ(stats["nodes"].size(), static_cast<size_t>(strategy.nodes));
  uint64_t moved = 0, coordinator_sent = 0, coordinator_received = 0;
  for (const Message& message : many.messages) {
    moved += message.bytes();
    if (message.from == 0) coordinator_sent += message.bytes();
    if (message.to == 0) coordinator_received += message.bytes();
  }
  for (const nlohmann::json& node : stats["nodes"]) {
    SCOPED_TRACE("node " + std::to_string(node["rank"].get<int>()));
    EXPECT_EQ(node["peak_ram_bytes"], node["predicted_peak_ram_bytes"]);
    EXPECT_EQ(node["bytes_sent"], node["predicted_bytes_sent"]);
    EXPECT_EQ(node["bytes_received"], node["predicted_bytes_received"]);
  }
  EXPECT_EQ(stats["coordinator"]["bytes_sent"].get<uint64_t>(), coordinator_sent);
  EXPECT_EQ(stats["coordinator"]["bytes_received"].get<uint64_t>(), coordinator_received);
  EXPECT_EQ(stats["total_bytes_moved"].get<uint64_t>(), moved);
  EXPECT_GT(coordinator_received, 0u);
}

const StrategyCase kStrategies[] = {
    {"rows2", 2, "spatial", "", ""},      {"grid2x2", 4, "spatial", "2x2", ""},
    {"rows5", 5, "spatial", "", ""},      {"channel3", 3, "channel", "", ""},
    {"relay2", 2, "relay", "", ""},       {"fused4", 4, "fused", "2x2", ""},
    {"streamed3", 3, "spatial", "", "2"},
};

INSTANTIATE_TEST_SUITE_P(Strategies, SessionOnStrategy, ::testing::ValuesIn(kStrategies),
                         [](const ::testing::TestParamInfo<StrategyCase>& info) {
                           return std::string(info.param.name);
                         });

// Plans cut into tasks (work stealing): every schedule, and stragglers of
// every speed, give the one-node output and every layer bit for bit; each
// task runs once; a node's peak is the largest of the tasks it ran, within
// the plan's prediction; its bytes are those its tasks' programs predict;
// under the static schedule nobody steals, and a node 1000 times as slow as
// the other has tasks stolen from it.
struct TaskCase {
  const char* name;
  int nodes;
  const char* strategy;
  const char* grid;
  int tasks, fuse;
};

void PrintTo(const TaskCase& s, std::ostream* os) { *os << s.name; }

class SessionWithTasks : public ::testing::TestWithParam<TaskCase> {};

TEST_P(SessionWithTasks, EveryScheduleEqualsOneNodeBitForBit) {
  const TaskCase& c = GetParam();
  const Model model = testing::runtime_classifier();
  TemporaryDir dir(c.name);
  const std::string one_plan = write_test_plan(model, {}, "one", dir);
  PlanOptions options;
  options.nodes = c.nodes;
  options.strategy = parse_strategy(c.strategy);
  options.grid = c.grid;
  options.tasks = c.tasks;
  options.fuse = c.fuse;
  const Plan plan = make_plan(model, options);
  ASSERT_FALSE(plan.tasks.empty());
  const size_t task_count = plan.tasks.list.size();
  const std::string plan_dir = write_test_plan(model, options, c.name, dir);
  const std::vector<std::vector<float>> inputs = testing::seeded_inputs(model, 3);
  RunSettings settings;
  settings.dump_layers = true;
  const SessionRun one = run_in_process(one_plan, 1, inputs, settings);
  for (const std::string& error : one.errors) ASSERT_EQ(error, "");
  settings.repeat = 2;
  const std::vector<std::pair<const char*, const char*>> schedules = {
      {"static", ""}, {"steal", ""}, {"static", "1:3"}, {"steal", "1:3"},
      {"steal", "2:1000"}, {"steal", "1:1.5,2:7"}};
  for (const auto& [schedule, slow] : schedules) {
    SCOPED_TRACE(std::string(schedule) + " --slow '" + slow + "'");
    settings.schedule = schedule;
    settings.slow = slow;
    const SessionRun many = run_in_process(plan_dir, c.nodes, inputs, settings);
    for (const std::string& error : many.errors) ASSERT_EQ(error, "");
    ASSERT_EQ(many.outputs.size(), inputs.size());
    for (size_t run = 0; run < inputs.size(); ++run)
      EXPECT_TRUE(testing::bitwise_equal(one.outputs[run], many.outputs[run]))
          << "inference " << run;
    ASSERT_EQ(many.dumps.size(), model.layers.size());
    for (size_t i = 0; i < model.layers.size(); ++i)
      EXPECT_TRUE(testing::bitwise_equal(one.dumps[i], many.dumps[i]))
          << "layer '" << model.layers[i].name << "'";
    const nlohmann::json& stats = many.stats;
    EXPECT_EQ(stats["schedule"], schedule);
    EXPECT_EQ(stats["tasks"].get<size_t>(), task_count);
    size_t ran = 0, stolen = 0;
    for (const nlohmann::json& node : stats["nodes"]) {
      SCOPED_TRACE("node " + std::to_string(node["rank"].get<int>()));
      ran += node["tasks"].get<size_t>();
      stolen += node["tasks_stolen"].get<size_t>();
      EXPECT_EQ(node["peak_ram_bytes"], node["peak_of_tasks_run"]);
      EXPECT_LE(node["peak_ram_bytes"].get<uint64_t>(),
                node["predicted_peak_ram_bytes"].get<uint64_t>());
      EXPECT_EQ(node["bytes_sent"], node["predicted_bytes_sent"]);
      EXPECT_EQ(node["bytes_received"], node["predicted_bytes_received"]);
      EXPECT_EQ(node["flash_bytes"], node["predicted_flash_bytes"]);
      EXPECT_GE(node["idle_seconds"].get<double>(), 0.0);
    }
    EXPECT_EQ(ran, task_count);
    if (std::string(schedule) == "static") {
      EXPECT_EQ(stolen, 0u);
    }
    // Others take some of node 2's tasks when it has several in a stage.
    if (std::string(slow) == "2:1000" &&
        std::count_if(plan.tasks.list.begin(), plan.tasks.list.end(),
                      [](const Task& task) { return task.home == 2 && task.stage == 0; }) > 1) {
      EXPECT_GT(stolen, 0u);
    }
    uint64_t coordinator_sent = 0, coordinator_received = 0;
    for (const Message& message : many.messages) {
      if (message.from == 0) coordinator_sent += message.bytes();
      if (message.to == 0) coordinator_received += message.bytes();
    }
    EXPECT_EQ(stats["coordinator"]["bytes_sent"].get<uint64_t>(), coordinator_sent);
    EXPECT_EQ(stats["coordinator"]["bytes_received"].get<uint64_t>(), coordinator_received);
  }
}

const TaskCase kTaskCases[] = {
    {"fused2_tasks8", 2, "fused", "4x2", 8, 3},
    {"fused3_tasks4", 3, "fused", "", 4, 0},
    {"spatial3_tasks7", 3, "spatial", "", 7, 0},
};

INSTANTIATE_TEST_SUITE_P(Tasks, SessionWithTasks, ::testing::ValuesIn(kTaskCases),
                         [](const ::testing::TestParamInfo<TaskCase>& info) {
                           return std::string(info.param.name);
                         });

// Every rank sees rank 0's settings, whatever its own.
TEST(Protocol, EveryRankAgreesOnRankZerosSettings) {
  InProcessCluster cluster(4);
  std::vector<RunSettings> agreed(4);
  const std::vector<std::string> errors = cluster.run([&](Transport& transport) {
    RunSettings mine;
    mine.plan_dir = "plan_of_rank_" + std::to_string(transport.rank());
    mine.repeat = transport.rank() * 10;
    mine.dump_layers = transport.rank() == 0;
    mine.trace = transport.rank() != 0;
    mine.ram = transport.rank() == 0 ? "64KiB" : "";
    mine.requantization = transport.rank() == 0 ? "cmsis" : "pytorch";
    agreed[transport.rank()] = agree_settings(transport, mine);
  });
  for (int rank = 0; rank < 4; ++rank) {
    ASSERT_EQ(errors[rank], "");
    EXPECT_EQ(agreed[rank].plan_dir, "plan_of_rank_0");
    EXPECT_EQ(agreed[rank].repeat, 0);
    EXPECT_TRUE(agreed[rank].dump_layers);
    EXPECT_FALSE(agreed[rank].trace);
    EXPECT_EQ(agreed[rank].ram, "64KiB");
    EXPECT_EQ(agreed[rank].requantization, "cmsis");
  }
}

// A failed step throws the lowest failing rank's message on every rank,
// also on ranks whose step went well.
TEST(Protocol, AFailedStepEndsEveryRankWithTheFirstFailure) {
  InProcessCluster cluster(4);
  const std::vector<std::string> errors = cluster.run([&](Transport& transport) {
    agreed_step(transport, [] {});  // nobody fails: nobody throws
    agreed_step(transport, [&] {
      if (transport.rank() >= 2) throw Error("node " + std::to_string(transport.rank()) + " broke");
    });
  });
  for (const std::string& error : errors) EXPECT_EQ(error, "node 2 broke");
}

std::string only_error(const std::vector<std::string>& errors) {
  for (size_t rank = 1; rank < errors.size(); ++rank) EXPECT_EQ(errors[rank], errors[0]);
  return errors[0];
}

TEST(Session, BadSettingsAndPlansEndEveryRankTogether) {
  const Model model = testing::runtime_classifier();
  TemporaryDir dir("bad");
  PlanOptions options;
  options.nodes = 2;
  const std::string plan_dir = write_test_plan(model, options, "rows2", dir);
  const std::vector<std::vector<float>> inputs = testing::seeded_inputs(model, 3);

  RunSettings settings;
  settings.repeat = -1;
  EXPECT_EQ(only_error(run_in_process(plan_dir, 2, inputs, settings).errors),
            "--repeat must be between 0 and 1000000");
  // Too many ranks for the plan.
  const std::string ranks = only_error(run_in_process(plan_dir, 3, inputs, {}).errors);
  EXPECT_NE(ranks.find("runs with mpirun -np 3, not -np 4"), std::string::npos) << ranks;
  // A node that does not fit its cap names itself and the cap it needs.
  settings.repeat = 0;
  settings.ram = "1KiB";
  const std::string ram = only_error(run_in_process(plan_dir, 2, inputs, settings).errors);
  EXPECT_TRUE(
      std::regex_search(ram, std::regex("^node 1, .*this node needs --ram [0-9]+ at least")))
      << ram;
  // A node file of another plan.
  options.nodes = 2;
  options.strategy = Strategy::channel;
  const std::string other = write_test_plan(model, options, "channel2", dir);
  std::filesystem::copy_file(node_path(other, 2), node_path(plan_dir, 2),
                             std::filesystem::copy_options::overwrite_existing);
  const std::string foreign = only_error(run_in_process(plan_dir, 2, inputs, {}).errors);
  EXPECT_NE(foreign.find("belongs to another plan"), std::string::npos) << foreign;
}

// A rank failing while others wait for it (for a message, at a barrier)
// ends their waits: the run returns, each rank with an error.
TEST(Session, SlowdownsParseAndRefuseWhatIsWrong) {
  EXPECT_EQ(parse_slowdowns("", 3), (std::vector<double>{1, 1, 1}));
  EXPECT_EQ(parse_slowdowns("2:3,1:1.5", 3), (std::vector<double>{1.5, 3, 1}));
  const auto refused = [](const std::string& text, const std::string& expected) {
    try {
      parse_slowdowns(text, 3);
      ADD_FAILURE() << "--slow " << text << " was accepted";
    } catch (const Error& failure) {
      EXPECT_NE(std::string(failure.what()).find(expected), std::string::npos) << failure.what();
    }
  };
  refused("4:2", "the plan has nodes 1 to 3, no node 4");
  refused("0:2", "no node 0");
  refused("2:0.5", "between 1 and 1000");
  refused("2:0", "between 1 and 1000");
  refused("2:2,2:3", "node 2 is named twice");
  refused("2", "expected NODE:FACTOR");
  refused("2:x", "expected NODE:FACTOR");
  refused("2:1.5.1", "is not a number");
  refused("2:3,", "expected NODE:FACTOR");
}

TEST(InProcessTransport, ARankFailingEndsEveryWait) {
  InProcessCluster cluster(3);
  const std::vector<std::string> errors = cluster.run([&](Transport& transport) {
    if (transport.rank() == 0) transport.receive_text(1, Tag::stats);  // never sent
    if (transport.rank() == 1) transport.barrier();                    // never met by all
    if (transport.rank() == 2) throw Error("node 2 lost power");
  });
  EXPECT_EQ(errors[2], "node 2 lost power");
  EXPECT_EQ(errors[0], "stopped: another rank failed");
  EXPECT_EQ(errors[1], "stopped: another rank failed");
}

// Messages of one tag between two ranks arrive in order; tags and senders
// do not mix.
TEST(InProcessTransport, MessagesArriveInOrderPerSenderAndTag) {
  InProcessCluster cluster(3);
  std::vector<std::string> received;
  const std::vector<std::string> errors = cluster.run([&](Transport& transport) {
    if (transport.rank() != 0) {
      const std::string from = std::to_string(transport.rank());
      transport.send_text(0, Tag::stats, "stats " + from + " a");
      transport.send_text(0, Tag::dump, "dump " + from);
      transport.send_text(0, Tag::stats, "stats " + from + " b");
      return;
    }
    for (int from : {2, 1})
      for (Tag tag : {Tag::stats, Tag::stats, Tag::dump})
        received.push_back(transport.receive_text(from, tag));
  });
  for (const std::string& error : errors) ASSERT_EQ(error, "");
  EXPECT_EQ(received, (std::vector<std::string>{"stats 2 a", "stats 2 b", "dump 2", "stats 1 a",
                                                "stats 1 b", "dump 1"}));
}

TEST(Session, StealingNeedsAPlanWithTasks) {
  const Model model = testing::runtime_classifier();
  TemporaryDir dir("steal");
  PlanOptions options;
  options.nodes = 2;
  const std::string plan_dir = write_test_plan(model, options, "rows2", dir);
  RunSettings settings;
  settings.schedule = "steal";
  const std::string error =
      only_error(run_in_process(plan_dir, 2, testing::seeded_inputs(model, 1), settings).errors);
  EXPECT_NE(error.find("--schedule steal needs a plan cut into tasks"), std::string::npos)
      << error;
  settings.schedule = "fastest";
  EXPECT_EQ(only_error(run_in_process(plan_dir, 2, testing::seeded_inputs(model, 1), settings)
                           .errors),
            "--schedule 'fastest' is not static or steal");
}

// --rebalance: with node 2 slowed 1000x (this model's kernels take
// microseconds; a smaller factor owes sleeps too short to take at once) the
// rows move toward node 1 between
// inferences, every inference's output stays the one-node output bit for
// bit, and each node's measured peak and bytes equal the predictions of the
// program it ran last. A plan that cannot move its rows is refused.
TEST(Session, RebalancingMovesRowsToTheFasterNodeBitForBit) {
  const Model model = testing::runtime_classifier();
  TemporaryDir dir("rebalance");
  const std::string one_plan = write_test_plan(model, {}, "one", dir);
  PlanOptions options;
  options.nodes = 2;
  const std::string plan_dir = write_test_plan(model, options, "rows2", dir);
  const std::vector<std::vector<float>> inputs = testing::seeded_inputs(model, 5);
  const SessionRun one = run_in_process(one_plan, 1, inputs, {});
  RunSettings settings;
  settings.repeat = 4;
  settings.rebalance = true;
  settings.slow = "2:1000";
  const SessionRun moved = run_in_process(plan_dir, 2, inputs, settings);
  for (const std::string& error : moved.errors) ASSERT_EQ(error, "");
  ASSERT_EQ(moved.outputs.size(), inputs.size());
  for (size_t run = 0; run < inputs.size(); ++run)
    EXPECT_TRUE(testing::bitwise_equal(one.outputs[run], moved.outputs[run])) << "inference " << run;
  const nlohmann::json& stats = moved.stats;
  const std::vector<double> shares = stats["row_shares"].get<std::vector<double>>();
  ASSERT_EQ(shares.size(), 2u);
  EXPECT_GT(shares[0], shares[1]);
  EXPECT_EQ(stats["inference_seconds"].size(), inputs.size());
  for (const nlohmann::json& node : stats["nodes"]) {
    SCOPED_TRACE("node " + std::to_string(node["rank"].get<int>()));
    EXPECT_EQ(node["peak_ram_bytes"], node["predicted_peak_ram_bytes"]);
    EXPECT_EQ(node["bytes_sent"], node["predicted_bytes_sent"]);
    EXPECT_EQ(node["bytes_received"], node["predicted_bytes_received"]);
  }
  options.strategy = Strategy::fused;
  const std::string fused = write_test_plan(model, options, "fused2", dir);
  const std::string refused = only_error(run_in_process(fused, 2, inputs, settings).errors);
  EXPECT_NE(refused.find("--rebalance moves the rows of spatial plans cut in rows"),
            std::string::npos)
      << refused;
}

// Intermittent power (run --power): a seeded sweep of failure instants on
// every static strategy, three inferences each, the NVM in a fresh
// directory. Every output equals the steady one-node run's bit for bit, the
// nodes did fail (and computed work again), and what they wrote to NVM and
// their device time are reported.
TEST(Session, PowerFailuresAtSeededInstantsNeverChangeTheOutput) {
  const Model model = testing::runtime_classifier();
  TemporaryDir dir("power");
  const std::string one_plan = write_test_plan(model, {}, "one", dir);
  const std::vector<std::vector<float>> inputs = testing::seeded_inputs(model, 3);
  const SessionRun one = run_in_process(one_plan, 1, inputs, {});
  struct Case {
    const char* name;
    int nodes;
    Strategy strategy;
    const char* grid;
  };
  for (const Case& c : {Case{"rows2", 2, Strategy::spatial, ""}, Case{"grid2x2", 4, Strategy::spatial, "2x2"},
                        Case{"channel3", 3, Strategy::channel, ""}, Case{"relay2", 2, Strategy::relay, ""},
                        Case{"fused2", 2, Strategy::fused, ""}}) {
    PlanOptions options;
    options.nodes = c.nodes;
    options.strategy = c.strategy;
    options.grid = c.grid;
    options.device = load_device("msp432");
    const std::string plan_dir = write_test_plan(model, options, c.name, dir);
    int failures = 0;
    for (int seed = 0; seed < 6; ++seed) {
      SCOPED_TRACE(std::string(c.name) + ", seed " + std::to_string(seed));
      RunSettings settings;
      settings.repeat = 2;
      settings.power = "3:0.5";
      settings.seed = seed;
      settings.nvm_dir = dir.path + "/nvm_" + c.name;
      // The job tiles: the default, small tiles of rows, and dynamic.
      if (seed % 3 == 1) {
        settings.job_order = "rows";
        settings.job_ms = "0.3";
      }
      if (seed % 3 == 2) settings.reconfigure = "dynamic";
      const SessionRun powered = run_in_process(plan_dir, c.nodes, inputs, settings);
      ASSERT_EQ(only_error(powered.errors), "");
      ASSERT_EQ(powered.outputs.size(), inputs.size());
      for (size_t run = 0; run < inputs.size(); ++run)
        EXPECT_TRUE(testing::bitwise_equal(one.outputs[run], powered.outputs[run]))
            << "inference " << run;
      for (const nlohmann::json& node : powered.stats["nodes"]) {
        failures += node["power_failures"].get<int>();
        EXPECT_GT(node["nvm_bytes_written"].get<uint64_t>(), 0u);
        EXPECT_GT(node["power_device_seconds"].get<double>(), 0.0);
        EXPECT_NEAR(node["nvm_joules"].get<double>(),
                    static_cast<double>(node["nvm_bytes_written"].get<uint64_t>() +
                                        node["nvm_bytes_read"].get<uint64_t>()) *
                        options.device->nvm_joules_per_byte,
                    1e-15);
        EXPECT_EQ(node["peak_ram_bytes"], node["predicted_peak_ram_bytes"]);
        // Each inference's device time, the last one's as power_device_seconds.
        ASSERT_EQ(node["power_device_seconds_each"].size(), inputs.size());
        EXPECT_EQ(node["power_device_seconds_each"].back(), node["power_device_seconds"]);
      }
    }
    EXPECT_GT(failures, 10) << c.name;
    // A recorded supply (--power-trace) instead: the same bits again.
    SCOPED_TRACE(std::string(c.name) + ", power trace");
    const std::string trace = dir.path + "/supply.txt";
    std::ofstream(trace) << "# on_ms off_ms\n3 2\n1.5 5   # a short spell\n\n7 0.5\n";
    RunSettings settings;
    settings.repeat = 1;
    settings.power_trace = trace;
    settings.nvm_dir = dir.path + "/nvm_trace_" + c.name;
    const SessionRun replayed = run_in_process(plan_dir, c.nodes, inputs, settings);
    ASSERT_EQ(only_error(replayed.errors), "");
    for (size_t run = 0; run < replayed.outputs.size(); ++run)
      EXPECT_TRUE(testing::bitwise_equal(one.outputs[run], replayed.outputs[run]));
    int replayed_failures = 0;
    for (const nlohmann::json& node : replayed.stats["nodes"])
      replayed_failures += node["power_failures"].get<int>();
    EXPECT_GT(replayed_failures, 0);
  }
}

// One msp432 node running the runtime classifier whole, with a directory for
// its NVM files.
struct Msp432Node {
  Model model = testing::runtime_classifier();
  TemporaryDir dir;
  NodeProgram program;
  DeviceProfile msp432 = load_device("msp432");
  explicit Msp432Node(const std::string& name)
      : dir(name), program(build_node_program(model, spatial_regions(model, 1, 1), 1)) {
    std::filesystem::create_directories(dir.path);
  }
};

// The supply does not depend on the jobs: with one seed, the k-th failure of
// an inference falls at the same powered device time (device time less the
// recharges) whether the node cuts its work into short jobs or long ones, and
// whatever the inferences before it did.
TEST(Session, FailuresFallAtTheSamePoweredTimeWhateverTheJobs) {
  const Msp432Node node("paired_failures");
  const auto& [model, dir, program, msp432] = node;
  std::vector<float> band(13 * 11, 1.0f);
  // The powered instants of the first `count` failures of inference 2 under
  // jobs of `macs` MACs each, after an inference 1 of `first_jobs` jobs.
  const auto failures = [&](uint64_t macs, int first_jobs, const std::string& name) {
    PowerEmulation emulation(model, program, msp432, parse_power("1:5", 7), 1,
                             dir.path + "/" + name + ".nvm", "test");
    PowerSupply::Job job{
        1, 64, 0, macs, nvm_output_key(1), {{0, band.data(), 64}}, "layer 1 tile 1x1 jobs 1"};
    emulation.start_inference(1, "input");
    for (int k = 0; k < first_jobs; ++k) emulation.job(job);
    emulation.start_inference(2, "input");
    std::vector<double> instants;
    while (instants.size() < 6)
      if (!emulation.job(job))
        instants.push_back(emulation.stats().device_seconds - emulation.stats().recharge_seconds);
    return instants;
  };
  const std::vector<double> short_jobs = failures(500, 3, "short"),
                            long_jobs = failures(3000, 40, "long");
  ASSERT_EQ(short_jobs.size(), long_jobs.size());
  for (size_t k = 0; k < short_jobs.size(); ++k)
    EXPECT_NEAR(short_jobs[k], long_jobs[k], 1e-12) << k;
  // Another seed, another supply.
  PowerEmulation other(model, program, msp432, parse_power("1:5", 8), 1, dir.path + "/other.nvm",
                       "test");
  other.start_inference(2, "input");
  PowerSupply::Job job{
      1, 64, 0, 500, nvm_output_key(1), {{0, band.data(), 64}}, "layer 1 tile 1x1 jobs 1"};
  while (other.job(job)) {
  }
  EXPECT_NE(other.stats().device_seconds - other.stats().recharge_seconds, short_jobs[0]);
}

// Job tiles: static durations give smaller tiles the shorter they are (a
// band of channels with every row, or with --job-order rows a band of rows
// with every channel, down to one channel by one row; "layer" the whole
// layer); dynamic takes whole layers until it has seen failures, then
// smaller tiles as the failure rate it measured rises.
TEST(Session, JobTilesFollowTheConfigurationAndTheFailureRate) {
  const Msp432Node node("job_sizes");
  const auto& [model, dir, program, msp432] = node;
  PowerSupply::LayerShape conv;
  conv.layer = 1;  // conv1: 8 channels of 13x11, float32, 3x3 over 3 channels
  conv.channels = 8;
  conv.rows = 13;
  conv.input_bytes = [](const PowerSupply::Tile& tile) {  // every channel, the rows' halo
    return static_cast<uint64_t>(3 * std::min<int64_t>(tile.rows + 2, 13) * 11 * 4);
  };
  conv.weight_bytes = (8 * 3 * 9 + 8) * 4;
  conv.macs = 8 * 13 * 11 * 27;
  conv.output_bytes = 8 * 13 * 11 * 4;
  const auto tile = [&](const std::string& mode, const std::string& job_ms, const std::string& order,
                        const std::string& power) {
    PowerSettings settings = parse_power(power, 1);
    parse_reconfiguration(mode, job_ms, order, settings);
    PowerEmulation emulation(model, program, msp432, settings, 1,
                             dir.path + "/" + mode + job_ms + order + power + ".nvm", "test");
    emulation.start_inference(1, "input");
    return emulation.job_tile(conv);
  };
  const auto area = [](const PowerSupply::Tile& t) { return t.channels * t.rows; };
  const PowerSupply::Tile whole{8, 13};
  EXPECT_EQ(tile("static", "layer", "", ""), whole);
  EXPECT_EQ(tile("static", "layer", "rows", ""), whole);
  for (const std::string order : {"channels", "rows"}) {
    SCOPED_TRACE(order);
    EXPECT_LT(area(tile("static", "1", order, "")), area(tile("static", "4", order, "")));
    EXPECT_LE(area(tile("static", "4", order, "")), area(whole));
    EXPECT_EQ(tile("static", "0.001", order, ""), (PowerSupply::Tile{1, 1}));
  }
  for (const std::string job_ms : {"0.5", "1", "2", "4", "8"}) {
    SCOPED_TRACE(job_ms);
    const PowerSupply::Tile by_channels = tile("static", job_ms, "channels", "");
    const PowerSupply::Tile by_rows = tile("static", job_ms, "rows", "");
    EXPECT_TRUE(by_channels.rows == 13 || by_channels.channels == 1);
    EXPECT_TRUE(by_rows.channels == 8 || by_rows.rows == 1);
  }
  EXPECT_EQ(tile("dynamic", "", "", "1"), whole);  // no failure seen yet: whole layers
  // Failures seen (a job per 1 ms of power, each lost half the time): smaller tiles.
  PowerSettings settings = parse_power("1:5", 3);
  parse_reconfiguration("dynamic", "", "", settings);
  PowerEmulation emulation(model, program, msp432, settings, 1, dir.path + "/seen.nvm", "test");
  emulation.start_inference(1, "input");
  std::vector<float> band(13 * 11, 1.0f);
  PowerSupply::Job job{1, 3 * 13 * 11 * 4, conv.weight_bytes / 8, conv.macs / 8, nvm_output_key(1),
                       {{0, band.data(), band.size() * sizeof(float)}}, "layer 1 tile 1x13 jobs 1"};
  for (int k = 0; k < 40; ++k) emulation.job(job);
  ASSERT_GT(emulation.stats().power_failures, 5);
  const PowerSupply::Tile seen = emulation.job_tile(conv);
  EXPECT_LT(area(seen), area(whole));
  // Cut as evenly as one tile size allows: the smallest tile that makes as
  // many bands of channels and of rows.
  const int64_t bands = (8 + seen.channels - 1) / seen.channels;
  const int64_t row_bands = (13 + seen.rows - 1) / seen.rows;
  EXPECT_EQ(seen.channels, (8 + bands - 1) / bands);
  EXPECT_EQ(seen.rows, (13 + row_bands - 1) / row_bands);
  EXPECT_NE(testing::error_of([] {
              PowerSettings bad;
              parse_reconfiguration("dynamic", "3", "", bad);
            }).find("--job-ms sets the static configuration"),
            std::string::npos);
  EXPECT_NE(testing::error_of([] {
              PowerSettings bad;
              parse_reconfiguration("dynamic", "", "rows", bad);
            }).find("--job-order sets the static configuration"),
            std::string::npos);
  EXPECT_NE(testing::error_of([] {
              PowerSettings bad;
              parse_reconfiguration("static", "", "columns", bad);
            }).find("--job-order 'columns' is not channels or rows"),
            std::string::npos);
}

// --power: refused without a device with an NVM, with streams or tasks, for a
// mean <= 0; an NVM directory of another plan is refused and left alone.
TEST(Session, PowerRefusesWhatItCannotRun) {
  const Model model = testing::runtime_classifier();
  TemporaryDir dir("power_refusals");
  const std::vector<std::vector<float>> inputs = testing::seeded_inputs(model, 1);
  PlanOptions options;
  options.nodes = 2;
  const std::string plain = write_test_plan(model, options, "plain", dir);
  RunSettings settings;
  settings.power = "5";
  settings.nvm_dir = dir.path + "/nvm";
  EXPECT_NE(only_error(run_in_process(plain, 2, inputs, settings).errors)
                .find("--power needs a plan made for a device with an NVM"),
            std::string::npos);
  options.device = load_device("rpi3");
  const std::string rpi = write_test_plan(model, options, "rpi", dir);
  EXPECT_NE(only_error(run_in_process(rpi, 2, inputs, settings).errors)
                .find("device 'rpi3' has none"),
            std::string::npos);
  options.device = load_device("msp432");
  const std::string msp = write_test_plan(model, options, "msp", dir);
  for (const char* bad : {"0", "-3", "x", "5:-1", "5:y"}) {
    settings.power = bad;
    EXPECT_NE(only_error(run_in_process(msp, 2, inputs, settings).errors).find("--power"),
              std::string::npos)
        << bad;
  }
  settings.power = "";
  for (const std::string& bad : {std::string("3\n"), std::string("0 2\n"), std::string("3 -1\n"),
                                 std::string("# nothing\n"), std::string("3 2 1\n")}) {
    const std::string trace = dir.path + "/bad_trace.txt";
    std::ofstream(trace) << bad;
    settings.power_trace = trace;
    EXPECT_NE(only_error(run_in_process(msp, 2, inputs, settings).errors).find("the power trace"),
              std::string::npos)
        << bad;
  }
  settings.power = "5";
  EXPECT_NE(only_error(run_in_process(msp, 2, inputs, settings).errors)
                .find("--power and --power-trace do not go together"),
            std::string::npos);
  settings.power_trace = "";
  ASSERT_EQ(only_error(run_in_process(msp, 2, inputs, settings).errors), "");
  options.nodes = 2;
  options.strategy = Strategy::channel;  // another plan, the same --nvm
  const std::string other = write_test_plan(model, options, "other", dir);
  const std::string before = [&] {
    std::ifstream file(dir.path + "/nvm/node_1.nvm", std::ios::binary);
    std::stringstream content;
    content << file.rdbuf();
    return content.str();
  }();
  EXPECT_NE(only_error(run_in_process(other, 2, inputs, settings).errors).find("belongs to plan"),
            std::string::npos);
  std::ifstream file(dir.path + "/nvm/node_1.nvm", std::ios::binary);
  std::stringstream after;
  after << file.rdbuf();
  EXPECT_EQ(after.str(), before);
  options.stream = "2";
  options.strategy = Strategy::spatial;
  const std::string streamed = write_test_plan(model, options, "streamed", dir);
  settings.nvm_dir = dir.path + "/nvm_streamed";
  EXPECT_NE(only_error(run_in_process(streamed, 2, inputs, settings).errors)
                .find("--power runs plans without --stream"),
            std::string::npos);
}

// The next shares: half way toward the measured speeds; the same when the
// nodes' times are within kBalanced of their mean (no rebuild for noise).
TEST(Rebalance, SharesMoveHalfWayUnlessTheTimesAreBalanced) {
  const Model model = testing::runtime_classifier();
  PlanOptions options;
  options.nodes = 2;
  const Plan plan = make_plan(model, options);
  const std::vector<double> shares = row_shares(model, plan);
  ASSERT_EQ(shares.size(), 2u);
  // Node 2 three times as slow on about equal MACs: its share falls.
  const std::vector<double> moved = next_row_shares(model, plan, shares, {0.001, 0.003});
  EXPECT_GT(moved[0], shares[0]);
  EXPECT_LT(moved[1], shares[1]);
  EXPECT_NEAR(moved[0] + moved[1], shares[0] + shares[1], 1e-12);
  // Within 5% of each other's mean: kept.
  EXPECT_EQ(next_row_shares(model, plan, shares, {0.00100, 0.00104}), shares);
  // A node that was not timed keeps its share.
  EXPECT_EQ(next_row_shares(model, plan, shares, {0.001, 0.0}), shares);
}

}  // namespace
}  // namespace splitinfer
