#pragma once
// A device profile: what one node of the emulated cluster is (RAM, flash,
// MAC rates, flash and link bandwidth, per-message latency), read from a JSON
// file in partition/devices/ (schema: partition/devices/README.md). The plan
// takes its caps from it and the cost model its rates.
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace splitinfer {

struct DeviceProfile {
  std::string name;  // e.g. "teensy41"
  std::string description;
  uint64_t ram_bytes = 0;
  uint64_t flash_bytes = 0;
  double macs_per_second_float32 = 0;  // multiply-accumulates per second, float32 layers
  double macs_per_second_int8 = 0;     // quint8 layers
  double flash_bytes_per_second = 0;   // streaming weights from flash into RAM
  double link_bytes_per_second = 0;    // each direction of the node's port on the switch
  double message_latency_seconds = 0;  // per message, on top of its bytes
  // The non-volatile memory an intermittently powered node keeps its
  // progress in (run --power): optional, all four or none (nvm_bytes 0).
  uint64_t nvm_bytes = 0;
  double nvm_read_bytes_per_second = 0;
  double nvm_write_bytes_per_second = 0;
  double nvm_joules_per_byte = 0;  // energy of reading or writing one byte
  // Where each value comes from, by JSON key (datasheet, paper, or how it was estimated).
  std::map<std::string, std::string> sources;
};

// The JSON keys of the profile's values, in the order the file lists them.
const std::vector<std::string>& device_value_keys();
// The optional keys of a profile's NVM (all four or none).
const std::vector<std::string>& device_nvm_keys();

// Where named profiles are looked up: $SPLITINFER_DEVICES if set, else the
// source tree's partition/devices.
std::string devices_directory();

// The names of the profiles in `directory` (their file names without .json), sorted.
std::vector<std::string> available_devices(const std::string& directory);

// A profile by name (looked up in devices_directory()) or by the path of a
// .json file (anything containing '/' or ending in ".json"). Throws Error for
// an unknown name (listing the available ones), a missing or unreadable file,
// and any bad value.
DeviceProfile load_device(const std::string& name_or_path);

// Parses a profile's JSON text; `where` names it in error messages.
DeviceProfile parse_device(const std::string& text, const std::string& where);

// A mixed cluster, node by node (index node - 1): `spec` is a list of
// NAME:COUNT (or NAME for one node) separated by commas, e.g.
// "teensy41:2,esp32s3:2" (nodes 1-2 Teensy boards, 3-4 ESP32-S3 boards), a
// name being a profile's or a profile file's path; or the path of a cluster
// file ending in .json: {"nodes": [{"device": NAME, "count": K}, ...]}
// (count 1 when left out; a path in NAME is relative to the cluster file);
// a .json file without "nodes" is one device's profile, for one node.
// Throws Error for an unknown device, a bad count, or more than kMaxNodes nodes.
std::vector<DeviceProfile> load_cluster(const std::string& spec);

// How a cluster is named in plans and stats: the profile's name when every
// node has the same, else NAME:COUNT runs in node order ("teensy41:2,esp32s3:2").
std::string cluster_name(const std::vector<DeviceProfile>& devices);

// Whether all of `devices` are one profile (same name and values).
bool same_devices(const std::vector<DeviceProfile>& devices);

}  // namespace splitinfer
