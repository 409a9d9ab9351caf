// concat, slice_channels and channel_shuffle: ops that only move channels.
#include "ops/channels.hpp"

#include <gtest/gtest.h>

#include <vector>

#include "test_util.hpp"

namespace splitinfer {
namespace {

using testing::expect_values;
using testing::nchw;
using testing::OwnedTensor;

// C channels of 1x2 maps; channel c holds [10c, 10c + 1].
OwnedTensor labelled_channels(int64_t channels) {
  std::vector<float> values;
  for (int64_t c = 0; c < channels; ++c) {
    values.push_back(static_cast<float>(10 * c));
    values.push_back(static_cast<float>(10 * c + 1));
  }
  return OwnedTensor(nchw(1, channels, 1, 2), values);
}

// Expected maps of the given input channels, in order.
std::vector<float> channels_in_order(const std::vector<int>& order) {
  std::vector<float> values;
  for (int c : order) {
    values.push_back(static_cast<float>(10 * c));
    values.push_back(static_cast<float>(10 * c + 1));
  }
  return values;
}

TEST(ChannelShuffleByHand, SixChannelsTwoGroups) {
  // PyTorch: x.view(N, g, C/g, H, W).transpose(1, 2).reshape(N, C, H, W).
  // g = 2, C/g = 3: groups [0 1 2] [3 4 5] interleave to 0 3 1 4 2 5.
  const OwnedTensor in = labelled_channels(6);
  OwnedTensor out(in.tensor.shape);
  channel_shuffle(in.tensor, 0, 2, in.tensor.shape.c, out.tensor, 0);
  expect_values(channels_in_order({0, 3, 1, 4, 2, 5}), out.tensor);
}

TEST(ChannelShuffleByHand, SixChannelsThreeGroups) {
  // g = 3, C/g = 2: groups [0 1] [2 3] [4 5] interleave to 0 2 4 1 3 5.
  const OwnedTensor in = labelled_channels(6);
  OwnedTensor out(in.tensor.shape);
  channel_shuffle(in.tensor, 0, 3, in.tensor.shape.c, out.tensor, 0);
  expect_values(channels_in_order({0, 2, 4, 1, 3, 5}), out.tensor);
}

TEST(ChannelShuffleByHand, OneGroupAndOneChannelPerGroupAreIdentity) {
  const OwnedTensor in = labelled_channels(6);
  OwnedTensor out(in.tensor.shape);
  channel_shuffle(in.tensor, 0, 1, in.tensor.shape.c, out.tensor, 0);
  expect_values(in.values, out.tensor);
  channel_shuffle(in.tensor, 0, 6, in.tensor.shape.c, out.tensor, 0);
  expect_values(in.values, out.tensor);
}

TEST(ConcatByHand, StacksChannelsInOrder) {
  const OwnedTensor a(nchw(1, 2, 1, 2), {1, 2, 3, 4});
  const OwnedTensor b(nchw(1, 1, 1, 2), {5, 6});
  const OwnedTensor c(nchw(1, 3, 1, 2), {7, 8, 9, 10, 11, 12});
  OwnedTensor out(nchw(1, 6, 1, 2));
  concat({&a.tensor, &b.tensor, &c.tensor}, out.tensor);
  expect_values({1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, out.tensor);
  OwnedTensor reversed(nchw(1, 3, 1, 2));
  concat({&b.tensor, &a.tensor}, reversed.tensor);
  expect_values({5, 6, 1, 2, 3, 4}, reversed.tensor);
}

TEST(ConcatByHand, BatchOfTwoStacksPerImage) {
  // a [2, 1, 1, 1] = [[1], [2]], b [2, 1, 1, 1] = [[3], [4]] -> image 0 [1, 3], image 1 [2, 4].
  const OwnedTensor a(nchw(2, 1, 1, 1), {1, 2});
  const OwnedTensor b(nchw(2, 1, 1, 1), {3, 4});
  OwnedTensor out(nchw(2, 2, 1, 1));
  concat({&a.tensor, &b.tensor}, out.tensor);
  expect_values({1, 3, 2, 4}, out.tensor);
}

TEST(SliceByHand, ChannelRange) {
  const OwnedTensor in = labelled_channels(6);
  OwnedTensor middle(nchw(1, 3, 1, 2));
  slice_channels(in.tensor, 2, middle.tensor);  // channels [2, 5)
  expect_values(channels_in_order({2, 3, 4}), middle.tensor);
  OwnedTensor last(nchw(1, 1, 1, 2));
  slice_channels(in.tensor, 5, last.tensor);
  expect_values(channels_in_order({5}), last.tensor);
}

TEST(SliceAndConcat, SplittingAndJoiningRestoresTheInput) {
  const OwnedTensor in = testing::random_tensor(nchw(1, 7, 3, 5), 3);
  OwnedTensor low(nchw(1, 3, 3, 5)), high(nchw(1, 4, 3, 5)), joined(in.tensor.shape);
  slice_channels(in.tensor, 0, low.tensor);
  slice_channels(in.tensor, 3, high.tensor);
  concat({&low.tensor, &high.tensor}, joined.tensor);
  EXPECT_TRUE(testing::bitwise_equal(in.values, joined.values));
}

}  // namespace
}  // namespace splitinfer
