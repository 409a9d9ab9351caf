#pragma once
// The one error type of splitinfer. Its message is what the user reads after
// "splitinfer: error: ", so it says what is wrong and where, in one line.
#include <stdexcept>
#include <string>

namespace splitinfer {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

}  // namespace splitinfer
