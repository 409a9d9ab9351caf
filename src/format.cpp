#include "format.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "error.hpp"

namespace splitinfer {

uint64_t parse_bytes(const std::string& text, const std::string& option) {
  const std::string prefix = option.empty() ? "" : option + " ";
  const Error not_a_size(prefix + "'" + printable(text) +
                         "' is not a size (examples: 512KiB, 8MiB, 1.5MB, 4096)");
  // A plain decimal number, then an optional unit.
  const size_t number_end = text.find_first_not_of("0123456789.");
  const std::string number = text.substr(0, number_end);
  if (number.empty() || number == "." || std::count(number.begin(), number.end(), '.') > 1)
    throw not_a_size;
  // Any digits beyond these cannot give a size below kMaxSizeBytes (16 digits
  // before the point), so a long string is refused before it is converted.
  const std::string integer_part = number.substr(0, number.find('.'));
  const size_t first_digit = integer_part.find_first_not_of('0');
  const size_t integer_digits =
      first_digit == std::string::npos ? 0 : integer_part.size() - first_digit;
  if (integer_digits > 16 || number.size() > 64) throw not_a_size;
  const double value = std::strtod(number.c_str(), nullptr);
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
  if (multiplier == 0 || !std::isfinite(value)) throw not_a_size;
  if (value * multiplier > static_cast<double>(kMaxSizeBytes))
    throw Error(prefix + "'" + printable(text) + "' is larger than splitinfer's limit of " +
                format_bytes(kMaxSizeBytes));
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

std::string printable(const std::string& text, size_t max_length) {
  std::string result;
  for (const char character : text) {
    if (result.size() >= max_length) return result + "...";
    const auto byte = static_cast<unsigned char>(character);
    if (character == '\\')
      result += "\\\\";
    else if (character == '\n')
      result += "\\n";
    else if (character == '\t')
      result += "\\t";
    else if (byte < 0x20 || byte >= 0x7f) {
      char escape[8];
      std::snprintf(escape, sizeof escape, "\\x%02x", byte);
      result += escape;
    } else {
      result += character;
    }
  }
  return result;
}

}  // namespace splitinfer
