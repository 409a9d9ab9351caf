#pragma once
// A node's RAM: one arena whose capacity is the node's RAM cap. Every
// activation, weight buffer and kernel scratch of a node comes from here.
//
// ArenaLayout is the allocator's bookkeeping alone (offsets, no memory), so
// the planner can replay a node's allocations and predict its peak exactly;
// Arena is the same layout over real memory.
#include <cstdint>
#include <functional>
#include <map>
#include <string>

namespace splitinfer {

// First-fit allocator over byte offsets [0, capacity). Blocks are rounded up
// to kAlignment bytes; freed neighbours coalesce. The peak is the high-water
// mark of the highest byte ever handed out, so fragmentation counts, as it
// would on a device.
class ArenaLayout {
 public:
  static constexpr uint64_t kAlignment = 64;  // bytes: a cache line, enough for any SIMD load
  static constexpr uint64_t kUnlimited = UINT64_MAX;

  explicit ArenaLayout(uint64_t capacity_bytes = kUnlimited);

  // Returns the offset of a new block of `bytes` (rounded up to kAlignment),
  // or throws Error naming `purpose`, the bytes needed and the cap.
  uint64_t allocate(uint64_t bytes, const std::string& purpose);
  // The same, the purpose named only when the block does not fit (a replay
  // of many schedules names none).
  uint64_t allocate(uint64_t bytes, const std::function<std::string()>& purpose);
  void release(uint64_t offset);

  uint64_t capacity() const { return capacity_; }
  uint64_t bytes_in_use() const { return in_use_; }
  uint64_t peak_bytes() const { return peak_; }
  // The end of the highest block in use now (what the arena spans at this moment).
  uint64_t high_water() const {
    return used_.empty() ? 0 : used_.rbegin()->first + used_.rbegin()->second;
  }
  static uint64_t rounded(uint64_t bytes) {
    return (bytes + kAlignment - 1) / kAlignment * kAlignment;
  }

 private:
  uint64_t capacity_;
  uint64_t in_use_ = 0;
  uint64_t peak_ = 0;
  std::map<uint64_t, uint64_t> used_;  // offset -> size
};

// ArenaLayout over memory: reserves `capacity` bytes of address space once
// (pages are only touched when used) and hands out pointers into it.
class Arena {
 public:
  // Address space reserved when the cap is unlimited (bytes).
  static constexpr uint64_t kUnlimitedReservation = uint64_t{64} << 30;

  explicit Arena(uint64_t capacity_bytes = ArenaLayout::kUnlimited);
  ~Arena();
  Arena(const Arena&) = delete;
  Arena& operator=(const Arena&) = delete;

  void* allocate(uint64_t bytes, const std::string& purpose);
  void release(void* pointer);

  const ArenaLayout& layout() const { return layout_; }
  // A power failure's loss of RAM: every byte up to the high water mark
  // overwritten with garbage (a sequence seeded by `seed`).
  void scramble(uint64_t seed);

 private:
  ArenaLayout layout_;
  char* base_ = nullptr;
  uint64_t reserved_ = 0;
};

}  // namespace splitinfer
