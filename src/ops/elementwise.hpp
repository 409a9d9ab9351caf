#pragma once
// Binary element-wise ops: add (residual) and mul (squeeze-excite scaling).
// mul broadcasts an operand of shape [N, C, 1, 1] over H and W. `out` may be
// one of the inputs.
#include "../tensor.hpp"

namespace splitinfer {

void add(const Tensor& a, const Tensor& b, Tensor& out);
void mul(const Tensor& a, const Tensor& b, Tensor& out);

}  // namespace splitinfer
