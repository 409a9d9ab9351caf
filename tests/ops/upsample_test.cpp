// Nearest-neighbour upsampling by integer factors, whole maps and tiles.
#include "ops/upsample.hpp"

#include <gtest/gtest.h>

#include <vector>

#include "test_util.hpp"

namespace splitinfer {
namespace {

using testing::expect_values;
using testing::nchw;
using testing::OwnedTensor;

OwnedTensor upsample_whole(int64_t scale_h, int64_t scale_w, const OwnedTensor& in) {
  const Shape& s = in.tensor.shape;
  OwnedTensor out(nchw(s.n, s.c, s.h * scale_h, s.w * scale_w));
  upsample_nearest(scale_h, scale_w, in.tensor, Placement::whole(s), out.tensor,
                   Placement::whole(out.tensor.shape));
  return out;
}

TEST(UpsampleNearestByHand, TimesTwo) {
  // [[1, 2], [3, 4]] -> each pixel becomes a 2x2 block.
  const OwnedTensor out = upsample_whole(2, 2, OwnedTensor(nchw(1, 1, 2, 2), {1, 2, 3, 4}));
  expect_values({1, 1, 2, 2,  //
                 1, 1, 2, 2,  //
                 3, 3, 4, 4,  //
                 3, 3, 4, 4},
                out.tensor);
}

TEST(UpsampleNearestByHand, TimesTwoByThree) {
  // Rows doubled, columns tripled: 2x2 -> 4x6.
  const OwnedTensor out = upsample_whole(2, 3, OwnedTensor(nchw(1, 1, 2, 2), {1, 2, 3, 4}));
  expect_values({1, 1, 1, 2, 2, 2,  //
                 1, 1, 1, 2, 2, 2,  //
                 3, 3, 3, 4, 4, 4,  //
                 3, 3, 3, 4, 4, 4},
                out.tensor);
}

TEST(UpsampleNearestByHand, ChannelsStayApart) {
  const OwnedTensor out = upsample_whole(1, 2, OwnedTensor(nchw(1, 2, 1, 2), {1, 2, 5, 6}));
  expect_values({1, 1, 2, 2, 5, 5, 6, 6}, out.tensor);
}

TEST(UpsampleNearest, TileEqualsWholeMapBitForBit) {
  // 5x4 input, scale (2, 3) -> 10x12. Output rows [3, 8) read input rows [1, 4);
  // output cols [4, 11) read input cols [1, 4).
  const OwnedTensor in = testing::random_tensor(nchw(1, 2, 5, 4), 21);
  const OwnedTensor whole = upsample_whole(2, 3, in);
  const OwnedTensor in_tile = testing::cut_tile(in.tensor, 1, 4, 1, 4);
  OwnedTensor out_tile(nchw(1, 2, 5, 7));
  upsample_nearest(2, 3, in_tile.tensor, Placement{1, 1, 5, 4}, out_tile.tensor,
                   Placement{3, 4, 10, 12});
  EXPECT_TRUE(
      testing::bitwise_equal(testing::cut_tile(whole.tensor, 3, 8, 4, 11).values, out_tile.values));
}

}  // namespace
}  // namespace splitinfer
