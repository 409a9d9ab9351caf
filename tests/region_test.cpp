// Region: which parts of a tile are one run of memory (moved between nodes
// as plain elements, not a strided type), checked against copy_region on
// every part of a small tile.
#include "region.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <numeric>
#include <vector>

namespace splitinfer {
namespace {

// Every region inside `holder`.
std::vector<Region> parts_of(const Region& holder) {
  std::vector<Region> parts;
  for (int64_t c0 = holder.c0; c0 < holder.c1; ++c0)
    for (int64_t c1 = c0 + 1; c1 <= holder.c1; ++c1)
      for (int64_t y0 = holder.y0; y0 < holder.y1; ++y0)
        for (int64_t y1 = y0 + 1; y1 <= holder.y1; ++y1)
          for (int64_t x0 = holder.x0; x0 < holder.x1; ++x0)
            for (int64_t x1 = x0 + 1; x1 <= holder.x1; ++x1)
              parts.push_back({c0, c1, y0, y1, x0, x1});
  return parts;
}

TEST(RegionOneRun, MatchesTheElementsCopyRegionGathers) {
  const Region holder{2, 5, 10, 14, 3, 8};  // 3 channels, 4 rows, 5 columns
  std::vector<int32_t> tile(holder.elements());
  std::iota(tile.begin(), tile.end(), 0);
  int runs = 0, strided = 0;
  for (const Region& part : parts_of(holder)) {
    std::vector<int32_t> gathered(part.elements());
    copy_region(tile.data(), holder, gathered.data(), part, part, sizeof(int32_t));
    // One run: the gathered elements follow each other from the offset.
    bool consecutive = true;
    for (size_t k = 0; k < gathered.size(); ++k)
      consecutive = consecutive && gathered[k] == gathered[0] + static_cast<int32_t>(k);
    EXPECT_EQ(part.one_run_in(holder), consecutive) << part.str();
    if (part.one_run_in(holder)) {
      EXPECT_EQ(part.offset_in(holder), gathered[0]) << part.str();
      ++runs;
    } else {
      ++strided;
    }
  }
  EXPECT_GT(runs, 0);
  EXPECT_GT(strided, 0);
}

TEST(RegionOneRun, RowHalosOfSeveralChannelsAreStrided) {
  // A node's halo: the last row of every channel of its rows.
  const Region stored{0, 64, 0, 28, 0, 56};
  EXPECT_FALSE((Region{0, 64, 27, 28, 0, 56}.one_run_in(stored)));
  // A channel slice of whole planes (channel partitions) is one run.
  EXPECT_TRUE((Region{16, 32, 0, 28, 0, 56}.one_run_in(stored)));
  EXPECT_EQ((Region{16, 32, 0, 28, 0, 56}.offset_in(stored)), 16 * 28 * 56);
  // The whole tile is one run from its start.
  EXPECT_TRUE(stored.one_run_in(stored));
  EXPECT_EQ(stored.offset_in(stored), 0);
}

}  // namespace
}  // namespace splitinfer
