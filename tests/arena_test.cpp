// ArenaLayout (first-fit offsets, 64-byte blocks, coalescing, high-water
// peak, the RAM cap) and Arena (the same over reserved memory).
#include "arena.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <string>

#include "error.hpp"
#include "format.hpp"

namespace splitinfer {
namespace {

TEST(ArenaLayout, RoundsToSixtyFourBytes) {
  EXPECT_EQ(ArenaLayout::kAlignment, 64u);
  EXPECT_EQ(ArenaLayout::rounded(0), 0u);
  EXPECT_EQ(ArenaLayout::rounded(1), 64u);
  EXPECT_EQ(ArenaLayout::rounded(64), 64u);
  EXPECT_EQ(ArenaLayout::rounded(65), 128u);
  EXPECT_EQ(ArenaLayout::rounded(1000), 1024u);
}

TEST(ArenaLayout, BlocksAreRoundedAndPlacedEndToEnd) {
  ArenaLayout layout;
  EXPECT_EQ(layout.allocate(100, "a"), 0u);   // takes 128
  EXPECT_EQ(layout.allocate(10, "b"), 128u);  // takes 64
  EXPECT_EQ(layout.allocate(64, "c"), 192u);  // takes 64
  EXPECT_EQ(layout.allocate(0, "d"), 256u);   // an empty block still takes 64
  EXPECT_EQ(layout.bytes_in_use(), 320u);
  EXPECT_EQ(layout.peak_bytes(), 320u);
}

TEST(ArenaLayout, FirstFitReusesAFreedHole) {
  ArenaLayout layout;
  const uint64_t a = layout.allocate(64, "a");   // [0, 64)
  const uint64_t b = layout.allocate(128, "b");  // [64, 192)
  layout.allocate(64, "c");                      // [192, 256)
  EXPECT_EQ(a, 0u);
  EXPECT_EQ(b, 64u);
  layout.release(b);
  EXPECT_EQ(layout.bytes_in_use(), 128u);
  EXPECT_EQ(layout.allocate(65, "fits the hole exactly"), 64u);  // 128 into [64, 192)
  EXPECT_EQ(layout.allocate(1, "no hole left"), 256u);
  EXPECT_EQ(layout.peak_bytes(), 320u);
}

TEST(ArenaLayout, FirstFitSkipsAHoleTooSmall) {
  ArenaLayout layout;
  const uint64_t a = layout.allocate(64, "a");  // [0, 64)
  layout.allocate(64, "b");                     // [64, 128)
  layout.release(a);
  EXPECT_EQ(layout.allocate(128, "too big for [0, 64)"), 128u);
  EXPECT_EQ(layout.allocate(64, "fits [0, 64)"), 0u);
}

TEST(ArenaLayout, FirstFitTakesTheFirstHoleNotTheBestOne) {
  ArenaLayout layout;
  const uint64_t a = layout.allocate(256, "a");  // [0, 256)
  layout.allocate(64, "b");                      // [256, 320)
  const uint64_t c = layout.allocate(64, "c");   // [320, 384)
  layout.allocate(64, "d");                      // [384, 448)
  layout.release(a);
  layout.release(c);
  // Holes [0, 256) and [320, 384): best fit would take the second.
  EXPECT_EQ(layout.allocate(64, "e"), 0u);
  EXPECT_EQ(layout.allocate(64, "f"), 64u);
}

TEST(ArenaLayout, FreedNeighboursCoalesce) {
  ArenaLayout layout;
  const uint64_t a = layout.allocate(64, "a");
  const uint64_t b = layout.allocate(64, "b");
  const uint64_t c = layout.allocate(64, "c");
  layout.allocate(64, "d");  // [192, 256) stays
  // Released out of order; the three 64-byte holes make one of 192.
  layout.release(b);
  layout.release(c);
  layout.release(a);
  EXPECT_EQ(layout.allocate(192, "needs all three"), 0u);
  EXPECT_EQ(layout.peak_bytes(), 256u);
}

TEST(ArenaLayout, PeakIsTheHighWaterMarkIncludingFragmentation) {
  ArenaLayout layout;
  const uint64_t a = layout.allocate(64, "a");  // [0, 64)
  layout.allocate(64, "b");                     // [64, 128)
  layout.release(a);
  // 128 bytes do not fit the 64-byte hole: they go to [128, 256), so the peak is
  // 256 although only 192 bytes are ever in use at once.
  const uint64_t c = layout.allocate(128, "c");
  EXPECT_EQ(c, 128u);
  EXPECT_EQ(layout.bytes_in_use(), 192u);
  EXPECT_EQ(layout.peak_bytes(), 256u);
  layout.release(c);
  EXPECT_EQ(layout.peak_bytes(), 256u);  // releasing does not lower the peak
  layout.allocate(64, "d");
  EXPECT_EQ(layout.peak_bytes(), 256u);
}

TEST(ArenaLayout, AllocationUpToTheCapFits) {
  ArenaLayout layout(256);
  EXPECT_EQ(layout.capacity(), 256u);
  EXPECT_EQ(layout.allocate(130, "a"), 0u);   // takes 192
  EXPECT_EQ(layout.allocate(64, "b"), 192u);  // ends exactly at the cap
  EXPECT_THROW(layout.allocate(1, "c"), Error);
  // A failed allocation changes nothing.
  EXPECT_EQ(layout.bytes_in_use(), 256u);
  EXPECT_EQ(layout.peak_bytes(), 256u);
}

TEST(ArenaLayout, CapExceededThrowsNamingPurposeAndCap) {
  const uint64_t cap = 8192;  // "8.00 KiB"
  ArenaLayout layout(cap);
  layout.allocate(8000, "first");  // 125 blocks of 64: [0, 8000)
  const std::string purpose = "node 3, layer 'conv7' (conv2d): scratch";
  try {
    layout.allocate(256, purpose);  // would end at 8256
    FAIL() << "no Error thrown";
  } catch (const Error& error) {
    const std::string message = error.what();
    EXPECT_NE(message.find(purpose), std::string::npos) << message;
    EXPECT_NE(message.find(format_bytes(cap)), std::string::npos) << message;
  }
  EXPECT_EQ(layout.bytes_in_use(), 8000u);
  EXPECT_EQ(layout.allocate(192, "still fits"), 8000u);
}

TEST(ArenaLayout, ReleaseOfAnUnknownOffsetThrows) {
  ArenaLayout layout;
  const uint64_t a = layout.allocate(64, "a");
  EXPECT_THROW(layout.release(a + 64), Error);
  EXPECT_THROW(layout.release(32), Error);
  layout.release(a);
  EXPECT_THROW(layout.release(a), Error);  // twice
  EXPECT_EQ(layout.bytes_in_use(), 0u);
}

TEST(Arena, PointersAreAlignedAndWritable) {
  Arena arena;
  char* first = static_cast<char*>(arena.allocate(100, "first"));
  char* second = static_cast<char*>(arena.allocate(1 << 20, "second"));
  char* third = static_cast<char*>(arena.allocate(3, "third"));
  for (char* pointer : {first, second, third})
    EXPECT_EQ(reinterpret_cast<uintptr_t>(pointer) % ArenaLayout::kAlignment, 0u);
  EXPECT_EQ(second - first, 128);  // the layout's offsets, over one base
  std::memset(first, 0x11, 100);
  std::memset(second, 0x22, 1 << 20);
  std::memset(third, 0x33, 3);
  EXPECT_EQ(first[99], 0x11);
  EXPECT_EQ(second[0], 0x22);
  EXPECT_EQ(second[(1 << 20) - 1], 0x22);  // the neighbours' writes did not overlap
  EXPECT_EQ(third[0], 0x33);
  EXPECT_EQ(arena.layout().bytes_in_use(), 128u + (1u << 20) + 64u);
  arena.release(second);
  arena.release(first);
  arena.release(third);
  EXPECT_EQ(arena.layout().bytes_in_use(), 0u);
  EXPECT_EQ(arena.layout().peak_bytes(), 128u + (1u << 20) + 64u);
}

TEST(Arena, ReusesReleasedMemory) {
  Arena arena;
  void* a = arena.allocate(256, "a");
  arena.allocate(64, "b");
  arena.release(a);
  EXPECT_EQ(arena.allocate(200, "c"), a);
}

TEST(Arena, CapIsEnforced) {
  Arena arena(4096);
  void* all = arena.allocate(4096, "everything");
  EXPECT_NE(all, nullptr);
  EXPECT_THROW(arena.allocate(1, "one byte more"), Error);
  arena.release(all);
  EXPECT_NO_THROW(arena.release(arena.allocate(4000, "again")));
}

TEST(Arena, ReleaseOfAnUnknownPointerThrows) {
  Arena arena;
  char* block = static_cast<char*>(arena.allocate(128, "block"));
  EXPECT_THROW(arena.release(block + 64), Error);
  arena.release(block);
  EXPECT_THROW(arena.release(block), Error);
}

}  // namespace
}  // namespace splitinfer
