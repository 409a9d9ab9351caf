#include "arena.hpp"

#include <sys/mman.h>

#include "error.hpp"
#include "format.hpp"

namespace splitinfer {

ArenaLayout::ArenaLayout(uint64_t capacity_bytes) : capacity_(capacity_bytes) {}

uint64_t ArenaLayout::allocate(uint64_t bytes, const std::string& purpose) {
  return allocate(bytes, [&] { return purpose; });
}

uint64_t ArenaLayout::allocate(uint64_t bytes, const std::function<std::string()>& purpose) {
  const uint64_t size = rounded(bytes == 0 ? 1 : bytes);
  uint64_t offset = 0;
  for (const auto& [used_offset, used_size] : used_) {
    if (used_offset - offset >= size) break;
    offset = used_offset + used_size;
  }
  if (capacity_ != kUnlimited && (offset > capacity_ || capacity_ - offset < size)) {
    throw Error(purpose() + " needs " + format_bytes(size) + " more but the RAM cap is " +
                format_bytes(capacity_) + " (" + format_bytes(in_use_) + " in use, " +
                format_bytes(offset + size) + " needed at least)");
  }
  used_.emplace(offset, size);
  in_use_ += size;
  if (offset + size > peak_) peak_ = offset + size;
  return offset;
}

void ArenaLayout::release(uint64_t offset) {
  auto block = used_.find(offset);
  if (block == used_.end()) throw Error("internal: release of an arena offset not allocated");
  in_use_ -= block->second;
  used_.erase(block);
}

Arena::Arena(uint64_t capacity_bytes) : layout_(capacity_bytes) {
  // A capped arena reserves its cap. An unlimited one reserves address space
  // only (pages are touched as used); where the system refuses a large
  // reservation (strict overcommit), it settles for less.
  const bool unlimited = capacity_bytes == ArenaLayout::kUnlimited;
  reserved_ = unlimited ? kUnlimitedReservation : ArenaLayout::rounded(capacity_bytes);
  for (;;) {
    void* memory = mmap(nullptr, reserved_, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (memory != MAP_FAILED) {
      base_ = static_cast<char*>(memory);
      return;
    }
    if (!unlimited || reserved_ <= (uint64_t{1} << 28))
      throw Error("cannot reserve " + format_bytes(reserved_) + " of memory for the arena");
    reserved_ /= 2;
  }
}

Arena::~Arena() { munmap(base_, reserved_); }

void* Arena::allocate(uint64_t bytes, const std::string& purpose) {
  const uint64_t offset = layout_.allocate(bytes, purpose);
  if (offset + ArenaLayout::rounded(bytes == 0 ? 1 : bytes) > reserved_)
    throw Error(purpose + " needs more than the " + format_bytes(reserved_) +
                " reserved for the arena");
  return base_ + offset;
}

void Arena::release(void* pointer) { layout_.release(static_cast<char*>(pointer) - base_); }

void Arena::scramble(uint64_t seed) {
  uint64_t state = seed * 0x9E3779B97F4A7C15ULL + 1;  // xorshift64: garbage, not randomness
  const uint64_t words = layout_.high_water() / sizeof(uint64_t);
  uint64_t* memory = reinterpret_cast<uint64_t*>(base_);
  for (uint64_t k = 0; k < words; ++k) {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    memory[k] = state;
  }
}

}  // namespace splitinfer
