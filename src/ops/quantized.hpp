#pragma once
// int8 kernels: quint8 activations (uint8 with a scale and zero point), int8
// weights, int32 biases and accumulators. The arithmetic is PyTorch 1.13.1's
// qnnpack, op by op, as models/quantization.md specifies it; `cmsis`
// requantization replaces its float32 multiplies by a fixed-point multiplier
// and shift. Every sum is an exact integer, so a tile equals the same part of
// the whole map whatever the order. Compiled with -ffp-contract=off.
#include <cstdint>
#include <vector>

#include "../graph.hpp"
#include "../tensor.hpp"
#include "conv2d.hpp"
#include "pool.hpp"

namespace splitinfer {

// Scales an int32 accumulator by a real multiplier and rounds: PyTorch's
// rne(f32(float(acc) * M)), or CMSIS-NN's arm_nn_requantize with M as a
// Q31 multiplier and a shift.
class Requantizer {
 public:
  Requantizer() = default;
  Requantizer(Requantization mode, float multiplier);
  int64_t operator()(int32_t acc) const;
  // M taken as Q31 `multiplier` * 2^shift (cmsis mode only; also for tests).
  int32_t q31() const { return multiplier_q31_; }
  int shift() const { return shift_; }

 private:
  Requantization mode_ = Requantization::pytorch;
  float multiplier_ = 1.0f;
  int32_t multiplier_q31_ = 0;
  int shift_ = 0;
};

// The quantized parameters of one layer: its output's, its inputs', the
// clamp and the requantization mode.
struct QuantizedLayer {
  QuantParams out;
  std::vector<QuantParams> in;
  int32_t clamp_lo = 0, clamp_hi = 255;
  Requantization mode = Requantization::pytorch;
};

// The int8 weights of a conv or linear tile: from its first output channel.
struct QuantizedWeights {
  const int8_t* weight = nullptr;
  const int32_t* bias = nullptr;  // null: zeros
  const float* scale = nullptr;   // [1] or one per output channel of the tile
  const int32_t* zero_point = nullptr;
  bool per_channel = false;
};

// float32 -> quint8 and back (`q.out` is the quint8 side). quantize() is the
// fast kernel (AVX-512 where the build targets it), equal to
// quantize_reference() bit for bit; `out` may be `in`'s memory.
void quantize(const QuantizedLayer& q, const Tensor& in, Tensor& out);
void quantize_reference(const QuantizedLayer& q, const Tensor& in, Tensor& out);
void dequantize(const QuantizedLayer& q, const Tensor& in, Tensor& out);
// 8-bit pixels (plan --input-pixels) -> quint8: each pixel normalised as the
// model's meta says (normalised_pixel()) and quantized as quantize_reference()
// quantizes that float; `first_channel` is the model channel of `in`'s first.
void quantize_pixels(const QuantizedLayer& q, const ModelMeta& meta, int64_t first_channel,
                     const Tensor& in, Tensor& out);

// The requantization multiplier of output channel `oc` of the tile `w` points
// at: (w_scale * x_scale) * (1 / y_scale), in float32 (models/quantization.md 3.2).
float channel_multiplier(const QuantizedLayer& q, const QuantizedWeights& w, int64_t oc);

// Tiles and placements as for the float conv2d. Plain loops over an int32
// plane of accumulators per output channel, which it allocates itself: the
// oracle for the fast kernels (and `run --reference-kernels`), outside the arena.
void conv2d_q_reference(const QuantizedLayer& q, const Conv2dParams& params, const Tensor& in,
                        const Placement& in_at, const QuantizedWeights& w, Tensor& out,
                        const Placement& out_at);
void linear_q_reference(const QuantizedLayer& q, const Tensor& in, const QuantizedWeights& w,
                        Tensor& out);

// Scratch bytes conv2d_q() needs for an output tile: none, its accumulators
// live in registers and a few KiB of stack (quantized_fast.cpp).
uint64_t conv2d_q_scratch_bytes(const Shape& out);
// The fast kernels, equal to the reference bit for bit (every sum is an exact
// int32): AVX512-VNNI where the build targets it, the portable kernels otherwise.
void conv2d_q(const QuantizedLayer& q, const Conv2dParams& params, const Tensor& in,
              const Placement& in_at, const QuantizedWeights& w, Tensor& out,
              const Placement& out_at);
void linear_q(const QuantizedLayer& q, const Tensor& in, const QuantizedWeights& w, Tensor& out);
// The portable kernels (plain C++ the compiler vectorizes), what conv2d_q()
// and linear_q() run without AVX512-VNNI; callable here so tests check both.
void conv2d_q_portable(const QuantizedLayer& q, const Conv2dParams& params, const Tensor& in,
                       const Placement& in_at, const QuantizedWeights& w, Tensor& out,
                       const Placement& out_at);
void linear_q_portable(const QuantizedLayer& q, const Tensor& in, const QuantizedWeights& w,
                       Tensor& out);
// Whether conv2d_q() and linear_q() run the AVX512-VNNI kernels.
bool quantized_kernels_use_vnni();

// qnnpack's fixed-point add of quint8 a and b (models/quantization.md 3.3):
// acc = offset + a * a_mul + b * b_mul, rounded right shift by `shift`.
struct QnnpackAdd {
  explicit QnnpackAdd(const QuantizedLayer& q);
  int64_t a_mul, b_mul, offset;
  int shift;
};

// add: PyTorch's fixed-point qnnpack add (the same in both modes). add_q()
// is the fast kernel, equal to add_q_reference() bit for bit.
void add_q(const QuantizedLayer& q, const Tensor& a, const Tensor& b, Tensor& out);
void add_q_reference(const QuantizedLayer& q, const Tensor& a, const Tensor& b, Tensor& out);
// mul: either input may be [N, C, 1, 1], broadcast over H and W.
void mul_q(const QuantizedLayer& q, const Tensor& a, const Tensor& b, Tensor& out);
// Inputs whose parameters differ from the output's are requantized.
void concat_q(const QuantizedLayer& q, const std::vector<const Tensor*>& inputs,
              const std::vector<QuantParams>& input_params, Tensor& out);
void global_avgpool_q(const QuantizedLayer& q, const Tensor& in, Tensor& out);
// Max pooling of a quint8 tile, equal to maxpool() (its reference) bit for
// bit: 64 outputs of a row at once where the build targets AVX-512 VBMI.
void maxpool_q(const PoolParams& params, const Tensor& in, const Placement& in_at, Tensor& out,
               const Placement& out_at);
// relu, relu6: the clamp alone.
void clamp_q(const QuantizedLayer& q, const Tensor& in, Tensor& out);
// hardswish, hardsigmoid: a 256-entry table.
void lookup_q(const QuantizedLayer& q, Op op, const Tensor& in, Tensor& out);

}  // namespace splitinfer
