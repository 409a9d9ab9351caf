#include "rebalance.hpp"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "../../partition/cost_model.hpp"
#include "../../partition/strategies.hpp"
#include "protocol.hpp"

namespace splitinfer {

std::string rebalance_refusal(const Plan& plan) {
  if (plan.strategy != Strategy::spatial || plan.grid_cols != 1 || !plan.streams.empty() ||
      !plan.tasks.empty() || plan.via_coordinator)
    return "--rebalance moves the rows of spatial plans cut in rows (--strategy spatial, grid "
           "Nx1) without --stream or --tasks; this plan is " +
           std::string(strategy_name(plan.strategy)) + " " + std::to_string(plan.grid_rows) +
           "x" + std::to_string(plan.grid_cols) + (plan.streams.empty() ? "" : ", streamed") +
           (plan.tasks.empty() ? "" : ", in tasks");
  return "";
}

std::vector<double> row_shares(const Model& model, const Plan& plan) {
  int largest = -1;
  for (size_t i = 1; i < model.layers.size(); ++i) {
    const Shape& shape = model.layers[i].output_shape;
    if (shape.rank != 2 && shape.h * shape.w > 1 &&
        (largest < 0 || shape.h > model.layers[largest].output_shape.h))
      largest = static_cast<int>(i);
  }
  std::vector<double> shares(plan.nodes, 1.0 / plan.nodes);
  if (largest < 0) return shares;
  for (int k = 0; k < plan.nodes; ++k) {
    const Region& region = plan.regions[largest][k];
    shares[k] = static_cast<double>(region.y1 - region.y0) /
                static_cast<double>(model.layers[largest].output_shape.h);
  }
  return shares;
}

std::vector<double> next_row_shares(const Model& model, const Plan& plan,
                                    const std::vector<double>& shares,
                                    const std::vector<double>& seconds) {
  std::vector<double> speed(plan.nodes, 0.0);
  double total = 0, timed_shares = 0;
  for (int k = 0; k < plan.nodes; ++k) {
    uint64_t macs = 0;
    for (size_t i = 0; i < model.layers.size(); ++i)
      macs += region_macs(model, model.layers[i], plan.regions[i][k]);
    if (macs == 0 || !(seconds[k] > 0)) continue;
    speed[k] = static_cast<double>(macs) / seconds[k];
    total += speed[k];
    timed_shares += shares[k];
  }
  std::vector<double> next = shares;
  if (total <= 0) return next;
  // Balanced already (the slowest timed node within kBalanced of their
  // mean): the rows stay, sparing every node a rebuild for noise.
  double slowest = 0, sum = 0;
  int timed = 0;
  for (int k = 0; k < plan.nodes; ++k)
    if (speed[k] > 0) slowest = std::max(slowest, seconds[k]), sum += seconds[k], ++timed;
  if (slowest <= (1 + kBalanced) * sum / timed) return next;
  // The timed nodes share what they had, by speed; half way there at a time,
  // so that one noisy measurement does not throw the rows about.
  for (int k = 0; k < plan.nodes; ++k)
    if (speed[k] > 0) next[k] = (shares[k] + timed_shares * speed[k] / total) / 2;
  return next;
}

bool agree_row_shares(Transport& transport, const Model& model, Plan& plan,
                      const std::vector<double>& seconds,
                      const std::function<void(const Plan&)>& fits) {
  std::string text;
  if (transport.rank() == 0)
    text = nlohmann::json(next_row_shares(model, plan, row_shares(model, plan), seconds)).dump();
  transport.broadcast(text);
  const std::vector<double> shares = nlohmann::json::parse(text).get<std::vector<double>>();
  Plan next = plan;
  next.regions = spatial_row_regions(model, shares);
  if (next.regions == plan.regions) return false;  // the same rows: nothing to rebuild
  std::optional<std::string> failure;
  if (transport.rank() != 0) {
    try {
      fits(next);
    } catch (const std::exception& error) {
      failure = error.what();
    }
  }
  if (transport.first_failure(failure)) return false;
  plan.regions = std::move(next.regions);
  return true;
}

}  // namespace splitinfer
