#pragma once
// The slices of one rank's timeline (Chrome trace-event "complete" events):
// what ran when, for how long, and the bytes it moved. Times are
// microseconds from the rank's origin (set just after a barrier, so ranks
// line up).
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace splitinfer {

class Trace {
 public:
  struct Slice {
    std::string name, category;
    double start_us = 0, duration_us = 0;
    uint64_t bytes_sent = 0, bytes_received = 0;
  };

  void set_origin() { origin_ = std::chrono::steady_clock::now(); }
  double now_us() const {
    return std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - origin_)
        .count();
  }
  // A slice from `start_us` until now.
  void add(std::string name, std::string category, double start_us, uint64_t bytes_sent = 0,
           uint64_t bytes_received = 0) {
    slices_.push_back({std::move(name), std::move(category), start_us, now_us() - start_us,
                       bytes_sent, bytes_received});
  }
  const std::vector<Slice>& slices() const { return slices_; }

 private:
  std::chrono::steady_clock::time_point origin_ = std::chrono::steady_clock::now();
  std::vector<Slice> slices_;
};

}  // namespace splitinfer
