#include "input_exchange.hpp"

#include "error.hpp"

namespace splitinfer {

void InputExchange::exchange(int layer_index, int, const InputSlot& input, const void*,
                             const Region&, void* tile) {
  if (!input.sends.empty() || input.exchange)
    throw Error("internal: a lone node's program exchanges pieces for layer " +
                std::to_string(layer_index));
  for (const Transfer& piece : input.receives) {
    if (piece.peer != 0 || !whole_input_.contains(piece.region) ||
        !input.needed.contains(piece.region))
      throw Error("internal: a lone node's program receives " + piece.region.str() + " from rank " +
                  std::to_string(piece.peer) + " for layer " + std::to_string(layer_index) +
                  "; it only receives pieces of the input");
    copy_region(input_, whole_input_, tile, input.needed, piece.region, input.element_bytes);
    bytes_received += piece.region.bytes(input.element_bytes);
  }
}

void InputExchange::to_coordinator(int layer_index, const Tensor&) {
  throw Error("internal: a lone node's program relays layer " + std::to_string(layer_index));
}

}  // namespace splitinfer
