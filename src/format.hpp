#pragma once
// Byte sizes as users write and read them: "512KiB", "8MiB", "1.5MB", "4096";
// and strings from files made safe to print in a one-line message.
#include <cstddef>
#include <cstdint>
#include <string>

namespace splitinfer {

// The largest size splitinfer takes for a cap or a count of bytes: 1 TiB.
// No emulated node comes near it, and any size below it is far from uint64
// and double rounding trouble.
constexpr uint64_t kMaxSizeBytes = uint64_t{1} << 40;

// Parses a size; throws Error on anything else, or on a size above
// kMaxSizeBytes. Binary (KiB, MiB, GiB) and decimal (kB/KB, MB, GB) units,
// case-insensitive, optional "B". `option` ("--ram") names the size in the
// message.
uint64_t parse_bytes(const std::string& text, const std::string& option = "");
// "1.50 MiB", "512.00 KiB", "100 B".
std::string format_bytes(uint64_t bytes);

// `text` with every byte that is not printable ASCII written as an escape
// (\n, \t, \\, \xHH), and cut to at most `max_length` characters ("..." after): what
// a name or a value read from a file becomes in an error message, so that
// the message stays one line whatever the file holds.
std::string printable(const std::string& text, size_t max_length = 200);

}  // namespace splitinfer
