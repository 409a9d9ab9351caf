#pragma once
// Runs a model on one node holding whole activation maps, allocating exactly
// as its MemorySchedule says from the node's arena.
#include <functional>
#include <string>

#include "arena.hpp"
#include "graph.hpp"
#include "memory_schedule.hpp"
#include "tensor.hpp"

namespace splitinfer {

enum class Kernels { fast, reference };

class Executor {
 public:
  // `model` must be validated with its weights; it must outlive the executor.
  Executor(const Model& model, std::string node_label, Kernels kernels = Kernels::fast);

  const MemorySchedule& schedule() const { return schedule_; }

  // One inference. `fill_input` writes the input into its arena buffer;
  // `on_layer` (may be empty) sees every layer's output right after it is
  // computed; `on_output` sees the model's output before it is freed. The
  // arena is empty again afterwards.
  void run(Arena& arena, const std::function<void(Tensor&)>& fill_input,
           const std::function<void(int layer_index, const Tensor&)>& on_layer,
           const std::function<void(const Tensor&)>& on_output) const;

 private:
  void compute(const Layer& layer, const std::vector<const Tensor*>& inputs, Tensor& out,
               const std::map<std::string, const float*>& weights, float* scratch) const;

  const Model& model_;
  std::string node_label_;
  Kernels kernels_;
  MemorySchedule schedule_;
};

}  // namespace splitinfer
