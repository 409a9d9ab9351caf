// Resizing by tap tables: by hand, the constant where nothing is read, and
// tiles bit for bit equal to the whole map.
#include "ops/resize.hpp"

#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "test_util.hpp"

namespace splitinfer {
namespace {

using testing::expect_values;
using testing::nchw;
using testing::OwnedTensor;

OwnedTensor resize_whole(const ResizeTaps& rows, const ResizeTaps& cols, const OwnedTensor& in) {
  const Shape& s = in.tensor.shape;
  OwnedTensor out(nchw(s.n, s.c, rows.size(), cols.size()));
  resize(rows, cols, in.tensor, Placement::whole(s), out.tensor,
         Placement::whole(out.tensor.shape));
  return out;
}

// Linear interpolation from 2 to 3 with the corners aligned: 0, 0.5, 1.
ResizeTaps two_to_three() { return {2, {0, 1, 0, 1, 0, 1}, {1, 0, 0.5f, 0.5f, 0, 1}, {}}; }

TEST(ResizeByHand, LinearTwoToThree) {
  const OwnedTensor out =
      resize_whole(two_to_three(), two_to_three(), OwnedTensor(nchw(1, 1, 2, 2), {1, 2, 3, 4}));
  expect_values({1, 1.5f, 2,  //
                 2, 2.5f, 3,  //
                 3, 3.5f, 4},
                out.tensor);
}

TEST(ResizeByHand, NearestPicksAndChannelsStayApart) {
  // One tap per output: rows 1, 0; columns 0, 0, 1.
  const ResizeTaps rows{1, {1, 0}, {1, 1}, {}}, cols{1, {0, 0, 1}, {1, 1, 1}, {}};
  const OwnedTensor out =
      resize_whole(rows, cols, OwnedTensor(nchw(1, 2, 2, 2), {1, 2, 3, 4, 5, 6, 7, 8}));
  expect_values({3, 3, 4, 1, 1, 2,  //
                 7, 7, 8, 5, 5, 6},
                out.tensor);
}

TEST(ResizeByHand, BiasWhereNothingIsRead) {
  // Column 1 reads nothing (weight 0) and takes the constant 10; row 1 too.
  const ResizeTaps rows{1, {0, 0}, {1, 0}, {0, 10}}, cols{1, {1, 0}, {1, 0}, {0, 10}};
  const OwnedTensor out = resize_whole(rows, cols, OwnedTensor(nchw(1, 1, 1, 2), {1, 2}));
  expect_values({2, 10,  //
                 10, 10},
                out.tensor);
}

// Random tables of `taps` taps from `in` to `out` coordinates.
ResizeTaps random_taps(std::mt19937& generator, int64_t in, int64_t out, int64_t taps) {
  std::uniform_int_distribution<int64_t> index(0, in - 1);
  std::uniform_real_distribution<float> weight(-0.5f, 1.0f);
  ResizeTaps result{taps, {}, {}, {}};
  for (int64_t i = 0; i < out * taps; ++i) {
    result.index.push_back(index(generator));
    result.weight.push_back(weight(generator));
  }
  for (int64_t o = 0; o < out; ++o) result.bias.push_back(weight(generator));
  return result;
}

TEST(Resize, TileEqualsWholeMapBitForBit) {
  std::mt19937 generator(5);
  const OwnedTensor in = testing::random_tensor(nchw(1, 3, 7, 9), 31);
  for (int64_t taps : {1, 2, 4}) {
    const ResizeTaps rows = random_taps(generator, 7, 11, taps);
    const ResizeTaps cols = random_taps(generator, 9, 5, taps);
    const OwnedTensor whole = resize_whole(rows, cols, in);
    // Output rows [3, 9), columns [1, 4): the input tile they read, no more.
    const auto [y0, y1] = rows.reads(3, 9);
    const auto [x0, x1] = cols.reads(1, 4);
    const OwnedTensor in_tile = testing::cut_tile(in.tensor, y0, y1, x0, x1);
    OwnedTensor out_tile(nchw(1, 3, 6, 3));
    resize(rows, cols, in_tile.tensor, Placement{y0, x0, 7, 9}, out_tile.tensor,
           Placement{3, 1, 11, 5});
    EXPECT_TRUE(testing::bitwise_equal(testing::cut_tile(whole.tensor, 3, 9, 1, 4).values,
                                       out_tile.values))
        << taps << " taps";
  }
}

TEST(Resize, ReadsSpanTheTapsOfTheOutputs) {
  const ResizeTaps taps{2, {4, 5, 1, 2, 6, 6}, {0.5f, 0.5f, 0.5f, 0.5f, 1, 0}, {}};
  EXPECT_EQ(taps.reads(0, 3), (std::pair<int64_t, int64_t>{1, 7}));
  EXPECT_EQ(taps.reads(1, 2), (std::pair<int64_t, int64_t>{1, 3}));
  EXPECT_EQ(taps.reads(0, 1), (std::pair<int64_t, int64_t>{4, 6}));
}

}  // namespace
}  // namespace splitinfer
