#pragma once
// Ops that only move channels: concat, slice (split/chunk) and channel
// shuffle (ShuffleNet's view/transpose/view).
#include <vector>

#include "../tensor.hpp"

namespace splitinfer {

// out = inputs stacked along C, in order.
void concat(const std::vector<const Tensor*>& inputs, Tensor& out);
// out = in[:, start:start+out.C].
void slice_channels(const Tensor& in, int64_t start, Tensor& out);
// Output channel j*groups + g is input channel g*(C/groups) + j, for a map of
// `channels` channels; `in` holds channels from in_channel0, `out` from
// out_channel0 (0 and 0 for whole maps).
void channel_shuffle(const Tensor& in, int64_t in_channel0, int64_t groups, int64_t channels,
                     Tensor& out, int64_t out_channel0);

}  // namespace splitinfer
