#pragma once
// The exchange of a node that runs alone, in-process (calibration, layer by
// layer checks, tests): its only pieces are of the model's input, cut out of
// the whole input it is given. A program that moves anything else is refused.
#include <cstdint>

#include "executor.hpp"

namespace splitinfer {

class InputExchange : public Exchange {
 public:
  explicit InputExchange(const Shape& input_shape) : whole_input_(Region::whole(input_shape)) {}
  // The whole input (float32, NCHW) the next inference reads; must outlive it.
  void set_input(const float* input) { input_ = input; }

  void exchange(int layer_index, int slot, const InputSlot& input, const void* stored,
                const Region& stored_region, void* tile) override;
  void to_coordinator(int layer_index, const Tensor& out) override;

  uint64_t bytes_received = 0;  // over every inference

 private:
  Region whole_input_;
  const float* input_ = nullptr;
};

}  // namespace splitinfer
