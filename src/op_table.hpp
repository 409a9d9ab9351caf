#pragma once
// The ops and one table of their traits: a row per op, indexed by the op
// (ggml's GGML_OP_NAME[GGML_OP_COUNT]; TFLite Micro's registration of an
// op's functions). Its name in model files, its kind, the input region an
// output region reads, its MACs, its kernel scratch and its float32 and
// int8 kernels are read from the row; nothing else switches on the op for
// them.
//
// Adding an op:
// 1. Its value in `enum class Op` below and its row in kOps
//    (src/op_table.cpp), at the same place: static_asserts check that row i
//    describes op i and that there are kOpCount rows. The row points at
//    small functions beside it: the region of each input an output region
//    reads, MACs, scratch bytes, and kernels that unpack a KernelCall for
//    the kernel (a null kernel: the op has no such form).
// 2. The kernel in src/ops/<op>.cpp, tested in tests/ops/<op>_test.cpp
//    (a fast kernel against the plain reference kernel it keeps), and a
//    layer of the op in tests/op_table_test.cpp's model of every op.
// 3. The switches that list every op fail the build (-Werror=switch) until
//    they list it too: shape inference and weight checks (src/graph.cpp),
//    its attributes in model files (io/model_file.cpp, io/FORMAT.md), the
//    receptive field `inspect` prints (partition/receptive_field.cpp), and
//    whether the quantizer observes its output (src/quantize.cpp).
// 4. The exporters' mapping of the PyTorch or ONNX op (models/).
// Validation then refuses a quint8 layer of an op with no int8 kernel; the
// planner cuts the op's layers by its receptive field, with halos, and
// streams element-wise and windowed layers part by part; the executor calls
// its kernels.
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "ops/gemm.hpp"  // Epilogue
#include "region.hpp"
#include "tensor.hpp"

namespace splitinfer {

struct Model;
struct Layer;
enum class Requantization;  // graph.hpp

enum class Op {
  input,
  conv2d,
  batchnorm,
  relu,
  relu6,
  leaky_relu,
  sigmoid,
  silu,
  hardswish,
  hardsigmoid,
  add,
  mul,
  concat,
  channel_shuffle,
  slice,
  maxpool,
  avgpool,
  global_avgpool,
  flatten,
  linear,
  upsample_nearest,
  resize,     // separable interpolation by tap tables (ONNX Resize: nearest, linear, cubic)
  quantize,   // float32 -> quint8
  dequantize  // quint8 -> float32; the last op: a new one goes before it or moves kOpCount
};
inline constexpr size_t kOpCount = static_cast<size_t>(Op::dequantize) + 1;

// What the planner decides by an op's kind: whether a node computing part of
// its output needs the same part of the input, and whether a run of layers
// holding it can be computed part by part (a stream).
enum class OpKind {
  input,        // the model's input: reads nothing, no node computes it
  elementwise,  // reads the same region of every input (mul broadcasts a [N, C, 1, 1]
                // operand); may write over an input; streamable
  windowed,     // reads the rows and columns a window around the output's covers (the
                // output's channels, or their groups): halos; streamable
  whole_map,    // reads whole rows and columns of its input (global pooling, flatten,
                // linear): never streamed
  channels,     // reads other channels at the same rows and columns (concat, slice,
                // channel shuffle): never streamed
};

// Where a quint8 output's scale and zero point come from.
enum class Int8Scale {
  own,    // its own: the kernel requantizes (or the op has no int8 form)
  input,  // its input's: the op moves or clamps values, never rescales them (validation checks)
};

// What every kernel is called with: the node's tile `out` (region
// `out_region` of the layer's output) from the tiles of its inputs.
struct KernelCall {
  const Model& model;
  const Layer& layer;
  const std::vector<Tensor>& inputs;  // per input slot: a tile holding needed[slot]
  const std::vector<Region>& needed;  // per input slot (empty: nothing of it is read)
  const Region& out_region;
  Tensor& out;
  // The weights by blob name, from out_region's first output channel.
  const std::map<std::string, const void*>& weights;
  void* scratch;  // OpTraits::scratch_bytes of it
  // Rows [row_begin, row_end) of `out` (-1: to the last) and an activation
  // applied as values are stored: a float32 convolution's; the others
  // compute all of `out`.
  int64_t row_begin = 0, row_end = -1;
  Epilogue epilogue = Epilogue::none;
  bool reference = false;         // the plain loop kernels every fast kernel is tested against
  Requantization requantization;  // how int8 kernels scale accumulators back to uint8
  bool out_allocated = true;      // false: `out` is a view inside the input (slice, flatten
                                  // read in place), nothing to copy

  const Tensor& in() const { return inputs[0]; }
  const Shape& in_shape() const;                    // the whole map of input 0
  Placement in_at() const;                          // where the tile of input 0 sits in its map
  Placement out_at() const;                         // where `out` sits in the layer's map
  const void* weight(const char* blob_name) const;  // null when absent
  const float* float_weight(const char* blob_name) const {
    return static_cast<const float*>(weight(blob_name));
  }
};
using Kernel = void (*)(const KernelCall& call);

struct OpTraits {
  Op op;  // row i describes Op(i)
  OpKind kind;
  const char* name;  // in model files (io/FORMAT.md)
  Int8Scale int8_scale;
  // How this op is applied to a float32 convolution's values as it stores
  // them, when it is fused into the convolution before it; none: it is not.
  Epilogue epilogue;
  // The region of input `slot` that computing `out` (not empty) reads: its
  // receptive field, before clipping to the input's map.
  Region (*reads)(const Model& model, const Layer& layer, int slot, const Region& out);
  // Multiply-accumulates of computing `out`.
  uint64_t (*macs)(const Model& model, const Layer& layer, const Region& out);
  // Bytes of scratch the kernel needs to compute `out` (not empty) from the
  // region `needed` of input 0.
  uint64_t (*scratch_bytes)(const Model& model, const Layer& layer, const Region& needed,
                            const Region& out);
  Kernel float32_kernel;  // float32 in and out; null: none
  Kernel int8_kernel;     // a quint8 output or input; null: no quint8 form
};

const OpTraits& op_traits(Op op);
const char* op_name(Op op);
Op op_from_name(const std::string& name);  // throws Error for an unknown op
inline bool is_elementwise(Op op) { return op_traits(op).kind == OpKind::elementwise; }

// The kernel that computes `layer`: its op's int8 kernel when its output or
// its first input is quint8, else its float32 kernel (null when the op has
// none of that form).
Kernel layer_kernel(const Model& model, const Layer& layer);

// Multiply-accumulates of one layer (conv and linear; 0 for the others).
uint64_t layer_macs(const Model& model, const Layer& layer);

}  // namespace splitinfer
