// Device profiles: a good file reads into every field, named profiles are
// found in $SPLITINFER_DEVICES, the shipped profiles load and the teensy41
// int8 rate is its calibration, and every kind of bad file is refused with
// an Error naming the file and what is wrong.
#include "device.hpp"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "error.hpp"
#include "test_util.hpp"

namespace splitinfer {
namespace {

using Json = nlohmann::json;
using testing::error_of;

// A valid profile whose values are all different.
Json good_profile() {
  const auto entry = [](Json value) {
    return Json{{"value", std::move(value)}, {"source", "test value"}};
  };
  return Json{{"name", "testboard"},
              {"description", "a board for the tests"},
              {"ram_bytes", entry(262144)},
              {"flash_bytes", entry(2097152)},
              {"macs_per_second_float32", entry(1.5e6)},
              {"macs_per_second_int8", entry(3.25e6)},
              {"flash_bytes_per_second", entry(4e6)},
              {"link_bytes_per_second", entry(1.25e5)},
              {"message_latency_seconds", entry(0.0025)}};
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// A directory of profiles, $SPLITINFER_DEVICES pointing at it while the test runs.
class DeviceFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::path(::testing::TempDir()) /
           ("splitinfer_device_test_" +
            std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    const char* previous = std::getenv("SPLITINFER_DEVICES");
    had_previous_ = previous != nullptr;
    if (previous) previous_ = previous;
    ::setenv("SPLITINFER_DEVICES", dir_.c_str(), 1);
  }
  void TearDown() override {
    if (had_previous_)
      ::setenv("SPLITINFER_DEVICES", previous_.c_str(), 1);
    else
      ::unsetenv("SPLITINFER_DEVICES");
    std::filesystem::remove_all(dir_);
  }

  std::string write(const std::string& file_name, const std::string& text) {
    const std::string path = (dir_ / file_name).string();
    std::ofstream(path) << text;
    return path;
  }
  // The Error of loading `profile` from a file.
  std::string error_for(const Json& profile) {
    const std::string path = write("bad.json", profile.dump());
    return error_of([&] { load_device(path); });
  }

  std::filesystem::path dir_;
  bool had_previous_ = false;
  std::string previous_;
};

TEST_F(DeviceFiles, GoodFileReadsEveryValueAndSource) {
  const std::string path = write("testboard.json", good_profile().dump(2));
  for (const std::string& how : {path, std::string("testboard")}) {
    const DeviceProfile device = load_device(how);
    EXPECT_EQ(device.name, "testboard");
    EXPECT_EQ(device.description, "a board for the tests");
    EXPECT_EQ(device.ram_bytes, 262144u);
    EXPECT_EQ(device.flash_bytes, 2097152u);
    EXPECT_EQ(device.macs_per_second_float32, 1.5e6);
    EXPECT_EQ(device.macs_per_second_int8, 3.25e6);
    EXPECT_EQ(device.flash_bytes_per_second, 4e6);
    EXPECT_EQ(device.link_bytes_per_second, 1.25e5);
    EXPECT_EQ(device.message_latency_seconds, 0.0025);
    ASSERT_EQ(device.sources.size(), device_value_keys().size());
    for (const std::string& key : device_value_keys())
      EXPECT_EQ(device.sources.at(key), "test value");
  }
}

TEST_F(DeviceFiles, ZeroLatencyIsAllowed) {
  Json profile = good_profile();
  profile["message_latency_seconds"]["value"] = 0;
  EXPECT_EQ(load_device(write("zero.json", profile.dump())).message_latency_seconds, 0.0);
}

TEST_F(DeviceFiles, UnknownNameListsTheAvailableProfiles) {
  write("board_a.json", good_profile().dump());
  write("board_b.json", good_profile().dump());
  const std::string message = error_of([] { load_device("teensy99"); });
  EXPECT_TRUE(contains(message, "unknown device 'teensy99'")) << message;
  EXPECT_TRUE(contains(message, "available: board_a, board_b")) << message;
}

TEST_F(DeviceFiles, MissingFileIsRefused) {
  const std::string path = (dir_ / "nothing_here.json").string();
  const std::string message = error_of([&] { load_device(path); });
  EXPECT_TRUE(contains(message, "does not exist")) << message;
}

TEST_F(DeviceFiles, InvalidJsonIsRefused) {
  const std::string path = write("broken.json", "{\"name\": \"x\", ");
  const std::string message = error_of([&] { load_device(path); });
  EXPECT_TRUE(contains(message, "is not valid JSON")) << message;
  EXPECT_TRUE(contains(message, path)) << message;
}

TEST_F(DeviceFiles, EachMissingKeyIsNamed) {
  for (const std::string& key : device_value_keys()) {
    Json profile = good_profile();
    profile.erase(key);
    const std::string message = error_for(profile);
    EXPECT_TRUE(contains(message, "missing '" + key + "'")) << message;
  }
  Json nameless = good_profile();
  nameless.erase("name");
  EXPECT_TRUE(contains(error_for(nameless), "missing 'name'"));
}

TEST_F(DeviceFiles, NegativeValuesAreRefused) {
  for (const std::string& key : device_value_keys()) {
    Json profile = good_profile();
    profile[key]["value"] = -1;
    const std::string message = error_for(profile);
    EXPECT_TRUE(contains(message, "'" + key + "' value -1")) << message;
  }
}

TEST_F(DeviceFiles, NonNumericValuesAreRefused) {
  for (const std::string& key : device_value_keys()) {
    Json profile = good_profile();
    profile[key]["value"] = "fast";
    const std::string message = error_for(profile);
    EXPECT_TRUE(contains(message, "'" + key + "' value \"fast\" is not a number")) << message;
  }
  Json bare = good_profile();
  bare["ram_bytes"] = 1024;  // a number without its source
  EXPECT_TRUE(contains(error_for(bare), "'ram_bytes' must be an object"));
}

TEST_F(DeviceFiles, ZeroRatesAndFractionalBytesAreRefused) {
  Json zero_rate = good_profile();
  zero_rate["link_bytes_per_second"]["value"] = 0;
  EXPECT_TRUE(contains(error_for(zero_rate), "'link_bytes_per_second' value 0 must be positive"));
  Json fractional = good_profile();
  fractional["ram_bytes"]["value"] = 1024.5;
  EXPECT_TRUE(contains(error_for(fractional), "is not a positive whole number of bytes"));
}

TEST_F(DeviceFiles, EveryValueNeedsASource) {
  Json profile = good_profile();
  profile["flash_bytes_per_second"].erase("source");
  EXPECT_TRUE(contains(error_for(profile), "'flash_bytes_per_second' needs a 'source'"));
  profile = good_profile();
  profile["flash_bytes_per_second"]["source"] = "";
  EXPECT_TRUE(contains(error_for(profile), "'flash_bytes_per_second' needs a 'source'"));
}

TEST_F(DeviceFiles, UnknownKeysAreRefused) {
  Json profile = good_profile();
  profile["ram_byte"] = profile["ram_bytes"];  // a typo would otherwise go unnoticed
  EXPECT_TRUE(contains(error_for(profile), "unknown key 'ram_byte'"));
  profile = good_profile();
  profile["ram_bytes"]["unit"] = "KiB";
  EXPECT_TRUE(contains(error_for(profile), "'ram_bytes' has an unknown member 'unit'"));
}

// Mixed clusters (plan --devices): NAME:COUNT lists and cluster files give
// the nodes' profiles in order; named as runs; bad entries refused.
TEST_F(DeviceFiles, ClustersListEveryNodesProfileInOrder) {
  write("board_a.json", good_profile().dump());
  Json other = good_profile();
  other["name"] = "board_b";
  other["macs_per_second_float32"]["value"] = 3e6;
  write("board_b.json", other.dump());
  const std::vector<DeviceProfile> listed = load_cluster("board_a:2,board_b,board_a:1");
  ASSERT_EQ(listed.size(), 4u);
  EXPECT_EQ(listed[0].name, "testboard");  // the profile's own name, from board_a.json
  EXPECT_EQ(listed[1].name, "testboard");
  EXPECT_EQ(listed[2].name, "board_b");
  EXPECT_EQ(listed[2].macs_per_second_float32, 3e6);
  EXPECT_EQ(listed[3].name, "testboard");
  EXPECT_EQ(cluster_name(listed), "testboard:2,board_b:1,testboard:1");
  EXPECT_FALSE(same_devices(listed));
  EXPECT_EQ(cluster_name(load_cluster("board_a:3")), "testboard");
  EXPECT_TRUE(same_devices(load_cluster("board_a:3")));

  // A cluster file, its device paths relative to it; a profile file is one node.
  std::filesystem::create_directories(dir_ / "clusters");
  const std::string cluster = write(
      "clusters/mixed.json",
      R"({"description": "test", "nodes": [{"device": "board_b", "count": 2},
                                           {"device": "../board_a.json"}]})");
  const std::vector<DeviceProfile> filed = load_cluster(cluster);
  ASSERT_EQ(filed.size(), 3u);
  EXPECT_EQ(cluster_name(filed), "board_b:2,testboard:1");
  EXPECT_EQ(load_cluster((dir_ / "board_b.json").string()).size(), 1u);

  EXPECT_TRUE(contains(error_of([] { load_cluster("board_a:2,nothing:1"); }),
                       "unknown device 'nothing'"));
  EXPECT_TRUE(contains(error_of([] { load_cluster("board_a:two"); }), "is not NAME:COUNT"));
  EXPECT_TRUE(contains(error_of([] { load_cluster("board_a:0"); }), "needs a count from 1"));
  EXPECT_TRUE(contains(error_of([] { load_cluster("board_a:-1"); }), "needs a count from 1"));
  EXPECT_TRUE(contains(error_of([] { load_cluster("board_a:70000"); }), "needs a count from 1"));
  EXPECT_TRUE(contains(error_of([] { load_cluster(":2"); }), "no device name"));
  EXPECT_TRUE(contains(error_of([] { load_cluster(""); }), "--devices needs"));
  EXPECT_TRUE(contains(error_of([&] { load_cluster((dir_ / "none.json").string()); }),
                       "does not exist"));
  // Bad cluster files: the text, and what the error says.
  const std::pair<const char*, const char*> bad_files[] = {
      {R"({"nodes": [{"count": 2}]})", "needs a 'device'"},
      {R"({"nodes": [{"device": "board_a", "count": 1.5}]})", "must be a whole number"},
      {R"({"nodes": [], "extra": 1})", "a cluster file is"},
      {R"({"nodes": [{"device": "board_a", "speed": 2}]})", "unknown key 'speed'"}};
  for (const auto& [text, error] : bad_files)
    EXPECT_TRUE(contains(error_of([&] { load_cluster(write("bad_cluster.json", text)); }), error))
        << text;
}

TEST(ShippedDevices, TheExampleClusterLoads) {
  const std::vector<DeviceProfile> cluster =
      load_cluster(devices_directory() + "/clusters/teensy41-esp32s3.json");
  EXPECT_EQ(cluster_name(cluster), "teensy41:2,esp32s3:2");
}

TEST(ShippedDevices, LoadWithSourcesAndTheTeensyCalibration) {
  const std::filesystem::path directory = SPLITINFER_SOURCE_DIR "/partition/devices";
  for (const char* name : {"teensy41", "esp32s3", "msp432", "rpi3", "pynq-z1"}) {
    const DeviceProfile device = load_device((directory / (std::string(name) + ".json")).string());
    EXPECT_EQ(device.name, name);
    for (const std::string& key : device_value_keys())
      EXPECT_GT(device.sources.at(key).size(), 20u) << name << " " << key;
  }
  const DeviceProfile teensy = load_device((directory / "teensy41.json").string());
  EXPECT_EQ(teensy.ram_bytes, 1024u * 1024);  // 512 KiB tightly coupled + 512 KiB OCRAM
  EXPECT_EQ(teensy.flash_bytes, 8u * 1024 * 1024);
  EXPECT_EQ(teensy.link_bytes_per_second, 100e6 / 8);  // 100 Mbit/s Ethernet
  // MobileNetV2-1.0 at 224x224 (300,774,272 MACs) in 2.46 s, rounded to whole MACs.
  EXPECT_EQ(teensy.macs_per_second_int8, std::round(300774272 / 2.46));
}

}  // namespace
}  // namespace splitinfer
