#include "plan_file.hpp"

#include <filesystem>

#include "../src/error.hpp"
#include "hdf5.hpp"
#include "model_file.hpp"

namespace splitinfer {
namespace {

int64_t cap_to_file(uint64_t cap) {
  return cap == ArenaLayout::kUnlimited ? -1 : static_cast<int64_t>(cap);
}
uint64_t cap_from_file(int64_t cap) {
  return cap < 0 ? ArenaLayout::kUnlimited : static_cast<uint64_t>(cap);
}

}  // namespace

std::string plan_path(const std::string& plan_dir) {
  return (std::filesystem::path(plan_dir) / "plan.h5").string();
}

std::string node_path(const std::string& plan_dir, int node) {
  return (std::filesystem::path(plan_dir) / ("node_" + std::to_string(node) + ".h5")).string();
}

void write_plan(const std::string& plan_dir, const Model& model, const Plan& plan) {
  std::error_code failure;
  std::filesystem::create_directories(plan_dir, failure);
  if (failure)
    throw Error("cannot create the plan directory '" + plan_dir + "': " + failure.message());
  {
    const h5::Group root = h5::create_file(plan_path(plan_dir));
    root.write_string("format", "splitinfer-plan");
    root.write_int("format_version", kFormatVersion);
    root.write_int("nodes", plan.nodes);
    root.write_string("strategy", plan.strategy);
    root.write_string("plan_id", plan.plan_id);
    root.write_int("ram_cap_bytes", cap_to_file(plan.ram_cap_bytes));
    root.write_int("flash_cap_bytes", cap_to_file(plan.flash_cap_bytes));
    write_graph(root.create_group("model"), model);
    const h5::Group nodes = root.create_group("nodes");
    for (const NodePlan& node : plan.node_plans) {
      const h5::Group group = nodes.create_group("node_" + std::to_string(node.node));
      group.write_int("node", node.node);
      group.write_int("predicted_peak_ram_bytes",
                      static_cast<int64_t>(node.predicted_peak_ram_bytes));
      group.write_int("flash_bytes", static_cast<int64_t>(node.flash_bytes));
      group.write_int("predicted_bytes_sent", static_cast<int64_t>(node.predicted_bytes_sent));
      group.write_int("predicted_bytes_received",
                      static_cast<int64_t>(node.predicted_bytes_received));
    }
  }
  for (const NodePlan& node : plan.node_plans) {
    const h5::Group root = h5::create_file(node_path(plan_dir, node.node));
    root.write_string("format", "splitinfer-node");
    root.write_int("format_version", kFormatVersion);
    root.write_int("node", node.node);
    root.write_string("plan_id", plan.plan_id);
    write_weights(root.create_group("weights"), model);
  }
}

void read_plan(const std::string& plan_dir, Model& model, Plan& plan) {
  const h5::Group root = h5::open_file(plan_path(plan_dir));
  check_format(root, "splitinfer-plan");
  plan.nodes = static_cast<int>(root.read_int("nodes"));
  plan.strategy = root.read_string("strategy");
  plan.plan_id = root.read_string("plan_id");
  plan.ram_cap_bytes = cap_from_file(root.read_int("ram_cap_bytes"));
  plan.flash_cap_bytes = cap_from_file(root.read_int("flash_cap_bytes"));
  if (plan.nodes < 1)
    throw Error(root.path() + " plans for " + std::to_string(plan.nodes) + " nodes");
  const h5::Group nodes = root.open_group("nodes");
  plan.node_plans.clear();
  for (int k = 1; k <= plan.nodes; ++k) {
    const h5::Group group = nodes.open_group("node_" + std::to_string(k));
    NodePlan node;
    node.node = k;
    node.predicted_peak_ram_bytes =
        static_cast<uint64_t>(group.read_int("predicted_peak_ram_bytes"));
    node.flash_bytes = static_cast<uint64_t>(group.read_int("flash_bytes"));
    node.predicted_bytes_sent = static_cast<uint64_t>(group.read_int("predicted_bytes_sent"));
    node.predicted_bytes_received =
        static_cast<uint64_t>(group.read_int("predicted_bytes_received"));
    plan.node_plans.push_back(node);
  }
  model = read_graph(root.open_group("model"));
  validate(model, false);
}

void read_node_weights(const std::string& plan_dir, int node, const Plan& plan, Model& model) {
  const std::string path = node_path(plan_dir, node);
  const h5::Group root = h5::open_file(path);
  check_format(root, "splitinfer-node");
  if (root.read_string("plan_id") != plan.plan_id || root.read_int("node") != node)
    throw Error("'" + path + "' belongs to another plan or node (plan " +
                root.read_string("plan_id") + ", node " + std::to_string(root.read_int("node")) +
                "; expected plan " + plan.plan_id + ", node " + std::to_string(node) + ")");
  read_weights(root.open_group("weights"), model);
  validate(model, true);
}

}  // namespace splitinfer
