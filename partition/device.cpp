#include "device.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "../src/error.hpp"

#ifndef SPLITINFER_DEVICES_DIR
#error "SPLITINFER_DEVICES_DIR (the source tree's partition/devices) must be defined"
#endif

namespace splitinfer {
namespace {

using Json = nlohmann::json;

// What a value may be: a byte count (a positive integer), a rate (positive),
// or a latency (zero or more).
enum class Kind { bytes, rate, latency };

struct ValueKey {
  const char* key;
  Kind kind;
};

constexpr ValueKey kValueKeys[] = {{"ram_bytes", Kind::bytes},
                                   {"flash_bytes", Kind::bytes},
                                   {"macs_per_second_float32", Kind::rate},
                                   {"macs_per_second_int8", Kind::rate},
                                   {"flash_bytes_per_second", Kind::rate},
                                   {"link_bytes_per_second", Kind::rate},
                                   {"message_latency_seconds", Kind::latency}};

// The optional NVM values (DeviceProfile::nvm_bytes...).
constexpr ValueKey kNvmKeys[] = {{"nvm_bytes", Kind::bytes},
                                 {"nvm_read_bytes_per_second", Kind::rate},
                                 {"nvm_write_bytes_per_second", Kind::rate},
                                 {"nvm_joules_per_byte", Kind::rate}};

// Byte counts above this are not devices (and would not fit the caps' uint64).
constexpr double kLargestBytes = 9.0e18;

double read_value(const Json& profile, const ValueKey& wanted, const std::string& where,
                  std::string& source) {
  const std::string key = wanted.key;
  if (!profile.contains(key)) throw Error(where + ": missing '" + key + "'");
  const Json& entry = profile[key];
  if (!entry.is_object())
    throw Error(where + ": '" + key + "' must be an object {\"value\": ..., \"source\": ...}");
  for (const auto& [member, unused] : entry.items())
    if (member != "value" && member != "source")
      throw Error(where + ": '" + key + "' has an unknown member '" + member +
                  "' (only 'value' and 'source')");
  if (!entry.contains("value")) throw Error(where + ": '" + key + "' has no 'value'");
  if (!entry.contains("source") || !entry["source"].is_string() ||
      entry["source"].get<std::string>().empty())
    throw Error(where + ": '" + key +
                "' needs a 'source' string (the datasheet or paper, or how it was estimated)");
  source = entry["source"].get<std::string>();
  const Json& value = entry["value"];
  if (!value.is_number())
    throw Error(where + ": '" + key + "' value " + value.dump() + " is not a number");
  const double number = value.get<double>();
  switch (wanted.kind) {
    case Kind::bytes:
      if (!(number > 0) || number != std::floor(number) || number > kLargestBytes)
        throw Error(where + ": '" + key + "' value " + value.dump() +
                    " is not a positive whole number of bytes");
      break;
    case Kind::rate:
      if (!(number > 0) || !std::isfinite(number))
        throw Error(where + ": '" + key + "' value " + value.dump() + " must be positive");
      break;
    case Kind::latency:
      if (!(number >= 0) || !std::isfinite(number))
        throw Error(where + ": '" + key + "' value " + value.dump() + " must not be negative");
      break;
  }
  return number;
}

std::string read_text_file(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) throw Error("cannot read the device profile '" + path + "'");
  std::stringstream content;
  content << file.rdbuf();
  return content.str();
}

}  // namespace

const std::vector<std::string>& device_nvm_keys() {
  static const std::vector<std::string> keys = [] {
    std::vector<std::string> names;
    for (const ValueKey& value : kNvmKeys) names.emplace_back(value.key);
    return names;
  }();
  return keys;
}

const std::vector<std::string>& device_value_keys() {
  static const std::vector<std::string> keys = [] {
    std::vector<std::string> names;
    for (const ValueKey& value : kValueKeys) names.emplace_back(value.key);
    return names;
  }();
  return keys;
}

std::string devices_directory() {
  const char* override_dir = std::getenv("SPLITINFER_DEVICES");
  return override_dir && *override_dir ? override_dir : SPLITINFER_DEVICES_DIR;
}

std::vector<std::string> available_devices(const std::string& directory) {
  std::vector<std::string> names;
  std::error_code failure;
  for (const auto& entry : std::filesystem::directory_iterator(directory, failure))
    if (entry.path().extension() == ".json") names.push_back(entry.path().stem().string());
  std::sort(names.begin(), names.end());
  return names;
}

DeviceProfile parse_device(const std::string& text, const std::string& where) {
  Json profile;
  try {
    profile = Json::parse(text);
  } catch (const Json::parse_error& failure) {
    throw Error(where + " is not valid JSON: " + failure.what());
  }
  if (!profile.is_object()) throw Error(where + ": a device profile is a JSON object");
  for (const auto& [key, unused] : profile.items()) {
    const auto& keys = device_value_keys();
    const auto& nvm = device_nvm_keys();
    if (key != "name" && key != "description" &&
        std::find(keys.begin(), keys.end(), key) == keys.end() &&
        std::find(nvm.begin(), nvm.end(), key) == nvm.end())
      throw Error(where + ": unknown key '" + key + "'");
  }
  DeviceProfile device;
  if (!profile.contains("name") || !profile["name"].is_string() ||
      profile["name"].get<std::string>().empty())
    throw Error(where + ": missing 'name' (a non-empty string)");
  device.name = profile["name"].get<std::string>();
  if (profile.contains("description")) {
    if (!profile["description"].is_string())
      throw Error(where + ": 'description' must be a string");
    device.description = profile["description"].get<std::string>();
  }
  double values[std::size(kValueKeys)];
  for (size_t i = 0; i < std::size(kValueKeys); ++i)
    values[i] = read_value(profile, kValueKeys[i], where, device.sources[kValueKeys[i].key]);
  device.ram_bytes = static_cast<uint64_t>(values[0]);
  device.flash_bytes = static_cast<uint64_t>(values[1]);
  device.macs_per_second_float32 = values[2];
  device.macs_per_second_int8 = values[3];
  device.flash_bytes_per_second = values[4];
  device.link_bytes_per_second = values[5];
  device.message_latency_seconds = values[6];
  int nvm_given = 0;
  for (const ValueKey& value : kNvmKeys) nvm_given += profile.contains(value.key);
  if (nvm_given != 0 && nvm_given != static_cast<int>(std::size(kNvmKeys)))
    throw Error(where + ": an NVM needs all of nvm_bytes, nvm_read_bytes_per_second, "
                "nvm_write_bytes_per_second and nvm_joules_per_byte, or none");
  if (nvm_given) {
    double nvm[std::size(kNvmKeys)];
    for (size_t i = 0; i < std::size(kNvmKeys); ++i)
      nvm[i] = read_value(profile, kNvmKeys[i], where, device.sources[kNvmKeys[i].key]);
    device.nvm_bytes = static_cast<uint64_t>(nvm[0]);
    device.nvm_read_bytes_per_second = nvm[1];
    device.nvm_write_bytes_per_second = nvm[2];
    device.nvm_joules_per_byte = nvm[3];
  }
  return device;
}

DeviceProfile load_device(const std::string& name_or_path) {
  if (name_or_path.empty()) throw Error("--device needs a profile name or a .json file");
  std::string path = name_or_path;
  const bool is_path =
      name_or_path.find('/') != std::string::npos ||
      (name_or_path.size() > 5 && name_or_path.compare(name_or_path.size() - 5, 5, ".json") == 0);
  if (!is_path) {
    const std::string directory = devices_directory();
    path = (std::filesystem::path(directory) / (name_or_path + ".json")).string();
    if (!std::filesystem::is_regular_file(path)) {
      const std::vector<std::string> known = available_devices(directory);
      std::string list;
      for (const std::string& name : known) {
        if (!list.empty()) list += ", ";
        list += name;
      }
      if (list.empty()) list = "none: the directory '" + directory + "' holds no .json profiles";
      throw Error("unknown device '" + name_or_path + "' (available: " + list +
                  "; or give the path of a .json profile)");
    }
  } else if (!std::filesystem::is_regular_file(path)) {
    throw Error("device profile '" + path + "' does not exist");
  }
  return parse_device(read_text_file(path), "device profile '" + path + "'");
}

namespace {

bool same_profile(const DeviceProfile& a, const DeviceProfile& b) {
  return a.name == b.name && a.ram_bytes == b.ram_bytes && a.flash_bytes == b.flash_bytes &&
         a.macs_per_second_float32 == b.macs_per_second_float32 &&
         a.macs_per_second_int8 == b.macs_per_second_int8 &&
         a.flash_bytes_per_second == b.flash_bytes_per_second &&
         a.link_bytes_per_second == b.link_bytes_per_second &&
         a.message_latency_seconds == b.message_latency_seconds;
}

// The most nodes a cluster lists (plan.hpp's kMaxNodes).
constexpr int64_t kMostClusterNodes = 65536;

void add_nodes(std::vector<DeviceProfile>& cluster, const std::string& device, int64_t count,
               const std::string& where) {
  if (count < 1 || count > kMostClusterNodes ||
      static_cast<int64_t>(cluster.size()) + count > kMostClusterNodes)
    throw Error(where + ": '" + device + "' needs a count from 1 to " +
                std::to_string(kMostClusterNodes) + " (nodes in all)");
  const DeviceProfile profile = load_device(device);
  cluster.insert(cluster.end(), static_cast<size_t>(count), profile);
}

std::vector<DeviceProfile> load_cluster_file(const std::string& path) {
  const std::string where = "cluster file '" + path + "'";
  if (!std::filesystem::is_regular_file(path)) throw Error(where + " does not exist");
  std::ifstream file(path, std::ios::binary);
  if (!file) throw Error("cannot read the " + where);
  Json cluster;
  try {
    cluster = Json::parse(file);
  } catch (const Json::parse_error& failure) {
    throw Error(where + " is not valid JSON: " + failure.what());
  }
  if (!cluster.is_object() || !cluster.contains("nodes") || !cluster["nodes"].is_array() ||
      cluster["nodes"].empty())
    throw Error(where + ": a cluster file is {\"nodes\": [{\"device\": NAME, \"count\": K}, ...]}");
  for (const auto& [key, unused] : cluster.items())
    if (key != "nodes" && key != "description")
      throw Error(where + ": unknown key '" + key + "' (only 'nodes' and 'description')");
  std::vector<DeviceProfile> devices;
  for (const Json& entry : cluster["nodes"]) {
    if (!entry.is_object() || !entry.contains("device") || !entry["device"].is_string())
      throw Error(where + ": each entry of 'nodes' needs a 'device' (a profile's name or path)");
    for (const auto& [key, unused] : entry.items())
      if (key != "device" && key != "count")
        throw Error(where + ": unknown key '" + key + "' in 'nodes' (only 'device' and 'count')");
    std::string device = entry["device"].get<std::string>();
    if (device.find('/') != std::string::npos && device.front() != '/')
      device = (std::filesystem::path(path).parent_path() / device).string();
    int64_t count = 1;
    if (entry.contains("count")) {
      if (!entry["count"].is_number_integer())
        throw Error(where + ": 'count' of '" + device + "' must be a whole number");
      count = entry["count"].get<int64_t>();
    }
    add_nodes(devices, device, count, where);
  }
  return devices;
}

}  // namespace

std::vector<DeviceProfile> load_cluster(const std::string& spec) {
  if (spec.empty()) throw Error("--devices needs NAME:COUNT,... or a cluster .json file");
  if (spec.size() > 5 && spec.compare(spec.size() - 5, 5, ".json") == 0 &&
      spec.find(',') == std::string::npos && spec.find(':') == std::string::npos)
  {
    // A cluster file lists "nodes"; any other .json is one device's profile.
    if (!std::filesystem::is_regular_file(spec))
      throw Error("--devices: the file '" + spec +
                  "' does not exist (a cluster .json file, or NAME:COUNT,...)");
    std::ifstream file(spec, std::ios::binary);
    const Json parsed = Json::parse(file, nullptr, false);
    if (parsed.is_object() && parsed.contains("nodes")) return load_cluster_file(spec);
  }
  std::vector<DeviceProfile> devices;
  std::stringstream items(spec);
  std::string item;
  while (std::getline(items, item, ',')) {
    const size_t colon = item.rfind(':');
    std::string device = item.substr(0, colon);
    int64_t count = 1;
    if (colon != std::string::npos) {
      const std::string number = item.substr(colon + 1);
      size_t used = 0;
      try {
        count = std::stoll(number, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      if (number.empty() || used != number.size())
        throw Error("--devices '" + spec + "': '" + item +
                    "' is not NAME:COUNT (e.g. teensy41:2,esp32s3:2)");
    }
    if (device.empty())
      throw Error("--devices '" + spec + "': an entry has no device name (NAME:COUNT,...)");
    add_nodes(devices, device, count, "--devices '" + spec + "'");
  }
  if (devices.empty()) throw Error("--devices '" + spec + "' lists no nodes");
  return devices;
}

bool same_devices(const std::vector<DeviceProfile>& devices) {
  for (const DeviceProfile& device : devices)
    if (!same_profile(device, devices.front())) return false;
  return true;
}

std::string cluster_name(const std::vector<DeviceProfile>& devices) {
  if (devices.empty()) return "";
  if (same_devices(devices)) return devices.front().name;
  std::string name;
  for (size_t k = 0; k < devices.size();) {
    size_t end = k;
    while (end < devices.size() && same_profile(devices[end], devices[k])) ++end;
    if (!name.empty()) name += ",";
    name += devices[k].name + ":" + std::to_string(end - k);
    k = end;
  }
  return name;
}

}  // namespace splitinfer
