#pragma once
// The plan directory: plan.h5 (the graph without weights, the plan and its
// predictions) and node_K.h5 per node (only that node's weights: its flash
// image). See io/FORMAT.md.
#include <string>

#include "../partition/plan.hpp"
#include "../src/graph.hpp"

namespace splitinfer {

std::string plan_path(const std::string& plan_dir);
std::string node_path(const std::string& plan_dir, int node);

// Writes plan.h5 and every node file into `plan_dir` (created if needed).
void write_plan(const std::string& plan_dir, const Model& model, const Plan& plan);

// Reads plan.h5: the graph (validated, no weights) and the plan.
void read_plan(const std::string& plan_dir, Model& model, Plan& plan);

// Loads node `node`'s weights from its node file into `model` and validates
// them; refuses a file of another plan or node.
void read_node_weights(const std::string& plan_dir, int node, const Plan& plan, Model& model);

}  // namespace splitinfer
