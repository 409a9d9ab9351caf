#pragma once
// What a plan's regions mean for each node: the program it runs (as the run
// builds it) and the predictions drawn from those programs (peak RAM, flash,
// bytes sent and received, MACs). make_plan and the auto planner both
// predict with these, and the run executes the same programs, so prediction
// and measurement cannot disagree.
#include <cstdint>
#include <vector>

#include "../src/graph.hpp"
#include "../src/node_program.hpp"
#include "plan.hpp"

namespace splitinfer {

// Every node's program (nodes 1..N, in order), as the run builds them.
std::vector<NodeProgram> node_programs(const Model& model, const Plan& plan);
// Node `node`'s program alone (what that node builds for itself at run time).
NodeProgram node_program(const Model& model, const Plan& plan, int node);

// Fills plan.node_plans from plan.regions (and owners, via_coordinator,
// streams): every node's program, peak RAM, flash and traffic, as the run
// will measure; and plan.recomputed_macs.
void predict_nodes(const Model& model, Plan& plan);

// MACs the nodes' programs compute beyond the model's own (the borders fused
// tiles share, the overlaps of a stream's parts).
uint64_t recomputed_macs(const Model& model, const std::vector<NodeProgram>& programs);

// The largest predicted peak RAM and flash of any node (of plan.node_plans).
uint64_t largest_peak_ram(const Plan& plan);
uint64_t largest_flash(const Plan& plan);

}  // namespace splitinfer
