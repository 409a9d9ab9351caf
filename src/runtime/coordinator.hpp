#pragma once
// The coordinator's side of a run (rank 0): per inference it sends every
// node the pieces of the input (in relay plans, of every relayed map) that
// its program receives from the coordinator, receives what the nodes relay
// to it, and gathers the output, all in the order of cluster_messages(). It
// never holds a node's weights and computes nothing.
#include <chrono>
#include <deque>
#include <vector>

#include "../graph.hpp"
#include "../node_program.hpp"
#include "../../partition/task_plan.hpp"
#include "transport.hpp"

namespace splitinfer {

using Bytes = std::vector<unsigned char>;  // a whole map of any dtype

// The input map as the nodes take it, in the input layer's dtype: the
// floats themselves, or (plan --input-pixels) the 8-bit pixels they
// normalise, into `pixels` (throws Error for a float no pixel gives).
const unsigned char* input_map(const Model& model, const std::vector<float>& input, Bytes& pixels);

class Coordinator {
 public:
  // `programs`: every node's (nodes 1..N, in order), as the nodes run them.
  Coordinator(Transport& transport, const Model& model, std::vector<NodeProgram> programs);

  const std::vector<NodeProgram>& programs() const { return programs_; }

  // One inference: `output` gets the whole output map (as the output layer's
  // dtype stores it), expected at `output_expected` when an inference
  // before was timed; with `dumps`, every layer's whole map (the nodes send
  // them when their settings say so).
  void infer(const std::vector<float>& input, Bytes& output, std::vector<Bytes>* dumps,
             const ExpectedEnd& output_expected);

 private:
  Transport& transport_;
  const Model& model_;
  std::vector<NodeProgram> programs_;
  std::vector<Message> messages_;
  // Kept from one inference to the next, so that an inference does not
  // fault in fresh pages (some 0.6 ms for a 224x224 input's pieces on this
  // machine): whole maps relayed to the coordinator, and contiguous copies
  // of the pieces it sends.
  std::vector<Bytes> maps_;
  std::deque<Bytes> pieces_;
  Bytes pixels_;  // the input as pixels (plan --input-pixels)
};

// The coordinator of a plan with tasks (partition/task_plan.hpp), the task
// server of DeepThings' gateway. Per inference and node:
//   node -> 0  request {"done": -1}        when the inference starts
//   0 -> node  task {"task": T}            T = -1: the inference is over
//   0 -> node  T's input pieces (Tag::input, in node_messages() order)
//   node -> 0  request {"done": T, "seconds": S}  once T is computed (S: busy)
//   node -> 0  T's results (Tag::output, in its results' order); with dumps,
//              then every layer T computed (Tag::dump)
// A "done" request also asks for the next task. The coordinator holds the
// input and every map a later stage reads, whole; it cuts each task's pieces
// from them and writes each task's results into them (overlapping results
// of fused tiles carry the same bits).
class TaskCoordinator {
 public:
  TaskCoordinator(Transport& transport, const Model& model, const TaskTable& table, bool steal);

  const std::vector<NodeProgram>& programs() const { return programs_; }
  void infer(const std::vector<float>& input, Bytes& output, std::vector<Bytes>* dumps);

 private:
  void start(int node, int task, const std::vector<const unsigned char*>& whole);

  Transport& transport_;
  const Model& model_;
  std::vector<NodeProgram> programs_;  // per task
  TaskScheduler scheduler_;
  std::vector<Bytes> maps_;  // the maps later stages read, whole
  std::deque<Bytes> pieces_;
  Bytes pixels_;  // the input as pixels (plan --input-pixels)
  size_t pieces_sent_ = 0;
  Bytes received_;  // a result, before it is copied into its map
  std::chrono::steady_clock::time_point origin_ = std::chrono::steady_clock::now();
};

// A whole map as real numbers: float32 as it is, quint8 dequantized.
std::vector<float> real_values(const Layer& layer, const Bytes& map);

}  // namespace splitinfer
