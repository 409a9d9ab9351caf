#pragma once
// Byte sizes as users write and read them: "512KiB", "8MiB", "1.5MB", "4096".
#include <cstdint>
#include <string>

namespace splitinfer {

// Parses a size; throws Error on anything else. Binary (KiB, MiB, GiB) and
// decimal (kB/KB, MB, GB) units, case-insensitive, optional "B".
uint64_t parse_bytes(const std::string& text);
// "1.50 MiB", "512.00 KiB", "100 B".
std::string format_bytes(uint64_t bytes);

}  // namespace splitinfer
