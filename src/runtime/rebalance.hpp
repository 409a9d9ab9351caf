#pragma once
// run --rebalance: between inferences the rows of a spatial row plan move
// toward equal node times. After an inference each node sends rank 0 the
// seconds it computed (Tag::timing); rank 0 moves every node's share of the
// rows half way toward its measured speed's share (its MACs over those
// seconds; half way, so that a noisy measurement does not throw the rows
// about) and broadcasts the shares; every rank cuts the same regions from them
// (spatial_row_regions()) and builds its program again; every node checks
// the new program against its RAM cap, and if any does not fit, every rank
// keeps the old shares. Tiles of any rows give the same bits, so the output
// does not change.
#include <string>
#include <vector>

#include "../../partition/plan.hpp"
#include "transport.hpp"

namespace splitinfer {

// Why `plan` cannot be rebalanced ("" when it can): only spatial plans in
// rows (grid N x 1) without streams or tasks.
std::string rebalance_refusal(const Plan& plan);

// The shares of the rows the plan's regions give each node (the rows of its
// largest spatial map over that map's rows).
std::vector<double> row_shares(const Model& model, const Plan& plan);

// Rank 0: the next shares from the nodes' MACs in the current regions and
// their measured compute seconds (a node that computed nothing or was not
// timed keeps its share); the same shares when the slowest timed node is
// within kBalanced of their mean time.
constexpr double kBalanced = 0.05;
std::vector<double> next_row_shares(const Model& model, const Plan& plan,
                                    const std::vector<double>& shares,
                                    const std::vector<double>& seconds);

// Every rank, after an inference: agrees on the next shares (rank 0 decides
// from `seconds`, the nodes' compute seconds it received), and when every
// node's program for them fits (`fits`, called on the nodes), sets
// plan.regions to them and returns true; false: the plan stays.
bool agree_row_shares(Transport& transport, const Model& model, Plan& plan,
                      const std::vector<double>& seconds,
                      const std::function<void(const Plan&)>& fits);

}  // namespace splitinfer
