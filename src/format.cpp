#include "format.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>

#include "error.hpp"

namespace splitinfer {

uint64_t parse_bytes(const std::string& text) {
  const Error not_a_size("'" + text + "' is not a size (examples: 512KiB, 8MiB, 1.5MB, 4096)");
  // A plain decimal number, then an optional unit.
  const size_t number_end = text.find_first_not_of("0123456789.");
  const std::string number = text.substr(0, number_end);
  if (number.empty() || number == "." || std::count(number.begin(), number.end(), '.') > 1)
    throw not_a_size;
  const double value = std::stod(number);
  std::string unit;
  for (size_t i = number.size(); i < text.size(); ++i)
    if (!std::isspace(static_cast<unsigned char>(text[i])))
      unit += static_cast<char>(std::tolower(static_cast<unsigned char>(text[i])));
  double multiplier = 0;
  if (unit.empty() || unit == "b")
    multiplier = 1;
  else if (unit == "kib" || unit == "ki")
    multiplier = 1024.0;
  else if (unit == "mib" || unit == "mi")
    multiplier = 1024.0 * 1024;
  else if (unit == "gib" || unit == "gi")
    multiplier = 1024.0 * 1024 * 1024;
  else if (unit == "kb" || unit == "k")
    multiplier = 1e3;
  else if (unit == "mb" || unit == "m")
    multiplier = 1e6;
  else if (unit == "gb" || unit == "g")
    multiplier = 1e9;
  if (multiplier == 0 || value * multiplier > 1.8e19) throw not_a_size;
  return static_cast<uint64_t>(std::llround(value * multiplier));
}

std::string format_bytes(uint64_t bytes) {
  char text[64];
  if (bytes < 1024)
    std::snprintf(text, sizeof text, "%llu B", static_cast<unsigned long long>(bytes));
  else if (bytes < (uint64_t{1} << 20))
    std::snprintf(text, sizeof text, "%.2f KiB", bytes / 1024.0);
  else if (bytes < (uint64_t{1} << 30))
    std::snprintf(text, sizeof text, "%.2f MiB", bytes / 1048576.0);
  else
    std::snprintf(text, sizeof text, "%.2f GiB", bytes / 1073741824.0);
  return text;
}

}  // namespace splitinfer
