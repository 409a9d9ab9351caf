#include "op_table.hpp"

#include <algorithm>
#include <cstring>
#include <iterator>
#include <tuple>
#include <utility>

#include "error.hpp"
#include "format.hpp"
#include "graph.hpp"
#include "ops/activation.hpp"
#include "ops/batchnorm.hpp"
#include "ops/channels.hpp"
#include "ops/conv2d.hpp"
#include "ops/elementwise.hpp"
#include "ops/linear.hpp"
#include "ops/pool.hpp"
#include "ops/quantized.hpp"
#include "ops/resize.hpp"
#include "ops/upsample.hpp"

namespace splitinfer {

const Shape& KernelCall::in_shape() const { return model.layers[layer.inputs[0]].output_shape; }
Placement KernelCall::in_at() const { return needed[0].placement(in_shape()); }
Placement KernelCall::out_at() const { return out_region.placement(layer.output_shape); }

const void* KernelCall::weight(const char* blob_name) const {
  auto found = weights.find(blob_name);
  return found == weights.end() ? nullptr : found->second;
}

namespace {

// ---- The region of an input an output region reads (receptive fields) ----

int64_t floor_div(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }  // b > 0
int64_t ceil_div(int64_t a, int64_t b) { return -floor_div(-a, b); }                      // b > 0

// Input rows [begin, end) a window (kernel, stride, pad, dilation) reads to
// produce output rows [out_begin, out_end): the bounding box of the taps that
// fall inside [0, input). With dilation, or padding beyond the kernel's
// reach, it is narrower than the windows' span clipped to the map; {0, 0}
// when every tap falls in the padding.
std::pair<int64_t, int64_t> window_rows(int64_t out_begin, int64_t out_end, int64_t kernel,
                                        int64_t stride, int64_t pad, int64_t dilation,
                                        int64_t input) {
  int64_t begin = input, end = 0;
  for (int64_t tap = 0; tap < kernel; ++tap) {
    const int64_t offset = tap * dilation - pad;  // output row r reads input row r*stride + offset
    // The first output row whose tap lands in the map, and the last.
    const int64_t first = std::max(out_begin, ceil_div(-offset, stride));
    const int64_t last = std::min(out_end - 1, floor_div(input - 1 - offset, stride));
    if (first > last) continue;
    begin = std::min(begin, first * stride + offset);
    end = std::max(end, last * stride + offset + 1);
  }
  return begin < end ? std::pair<int64_t, int64_t>{begin, end} : std::pair<int64_t, int64_t>{0, 0};
}

const Shape& input_shape(const Model& model, const Layer& layer, int slot) {
  return model.layers[layer.inputs[slot]].output_shape;
}

Region reads_nothing(const Model&, const Layer&, int, const Region&) { return {}; }

Region reads_same_region(const Model&, const Layer&, int, const Region& out) { return out; }

Region mul_reads(const Model& model, const Layer& layer, int slot, const Region& out) {
  const Shape& in = input_shape(model, layer, slot);
  Region need = out;
  // A [N, C, 1, 1] operand is broadcast over the rows and columns.
  if (in.h * in.w == 1) need.y0 = need.x0 = 0, need.y1 = need.x1 = 1;
  return need;
}

Region conv2d_reads(const Model& model, const Layer& layer, int slot, const Region& out) {
  const Shape& in = input_shape(model, layer, slot);
  const Conv2dParams& p = layer.conv;
  const int64_t in_per_group = in.c / p.groups, out_per_group = layer.output_shape.c / p.groups;
  Region need;
  need.c0 = out.c0 / out_per_group * in_per_group;
  need.c1 = ((out.c1 - 1) / out_per_group + 1) * in_per_group;
  std::tie(need.y0, need.y1) =
      window_rows(out.y0, out.y1, p.kernel_h, p.stride_h, p.pad_h, p.dilation_h, in.h);
  std::tie(need.x0, need.x1) =
      window_rows(out.x0, out.x1, p.kernel_w, p.stride_w, p.pad_w, p.dilation_w, in.w);
  return need;
}

Region pool_reads(const Model& model, const Layer& layer, int slot, const Region& out) {
  const Shape& in = input_shape(model, layer, slot);
  const PoolParams& p = layer.pool;
  Region need = out;
  std::tie(need.y0, need.y1) =
      window_rows(out.y0, out.y1, p.kernel_h, p.stride_h, p.pad_h, p.dilation_h, in.h);
  std::tie(need.x0, need.x1) =
      window_rows(out.x0, out.x1, p.kernel_w, p.stride_w, p.pad_w, p.dilation_w, in.w);
  return need;
}

Region upsample_nearest_reads(const Model&, const Layer& layer, int, const Region& out) {
  Region need = out;
  need.y0 = out.y0 / layer.scale_h;
  need.y1 = (out.y1 - 1) / layer.scale_h + 1;
  need.x0 = out.x0 / layer.scale_w;
  need.x1 = (out.x1 - 1) / layer.scale_w + 1;
  return need;
}

Region resize_reads(const Model&, const Layer& layer, int, const Region& out) {
  Region need = out;
  if (out.empty()) return need;
  std::tie(need.y0, need.y1) = layer.resize_h.reads(out.y0, out.y1);
  std::tie(need.x0, need.x1) = layer.resize_w.reads(out.x0, out.x1);
  return need;
}

Region concat_reads(const Model& model, const Layer& layer, int slot, const Region& out) {
  const Shape& in = input_shape(model, layer, slot);
  int64_t offset = 0;  // the slot's first channel in the output
  for (int i = 0; i < slot; ++i) offset += input_shape(model, layer, i).c;
  Region need = out;
  need.c0 = std::max(out.c0, offset) - offset;
  need.c1 = std::min(out.c1, offset + in.c) - offset;
  if (need.c1 <= need.c0) return {};
  return need;
}

Region slice_reads(const Model&, const Layer& layer, int, const Region& out) {
  Region need = out;
  need.c0 += layer.slice_start;
  need.c1 += layer.slice_start;
  return need;
}

Region channel_shuffle_reads(const Model& model, const Layer& layer, int slot, const Region& out) {
  // Output channel j*groups + g reads input channel g*(C/groups) + j.
  const Shape& in = input_shape(model, layer, slot);
  const int64_t groups = layer.shuffle_groups, per_group = in.c / groups;
  Region need = out;
  need.c0 = in.c, need.c1 = 0;
  for (int64_t c = out.c0; c < out.c1; ++c) {
    const int64_t source = (c % groups) * per_group + c / groups;
    need.c0 = std::min(need.c0, source);
    need.c1 = std::max(need.c1, source + 1);
  }
  return need;
}

Region global_avgpool_reads(const Model& model, const Layer& layer, int slot, const Region& out) {
  const Shape& in = input_shape(model, layer, slot);
  return {out.c0, out.c1, 0, in.h, 0, in.w};
}

Region flatten_reads(const Model& model, const Layer& layer, int slot, const Region& out) {
  // Output feature f is input (f / HW, f % HW / W, f % W); the tile holds
  // whole channel planes, so the node's features are one run of it.
  const Shape& in = input_shape(model, layer, slot);
  const int64_t plane = in.h * in.w;
  return {out.c0 / plane, (out.c1 - 1) / plane + 1, 0, in.h, 0, in.w};
}

Region linear_reads(const Model& model, const Layer& layer, int slot, const Region&) {
  return Region::whole(input_shape(model, layer, slot));
}

// ---- Multiply-accumulates ----

uint64_t no_macs(const Model&, const Layer&, const Region&) { return 0; }

uint64_t conv2d_macs(const Model& model, const Layer& layer, const Region& out) {
  const Shape& in = input_shape(model, layer, 0);
  return static_cast<uint64_t>(out.elements()) * static_cast<uint64_t>(in.c / layer.conv.groups) *
         static_cast<uint64_t>(layer.conv.kernel_h * layer.conv.kernel_w);
}

uint64_t linear_macs(const Model& model, const Layer& layer, const Region& out) {
  return static_cast<uint64_t>(out.elements()) *
         static_cast<uint64_t>(input_shape(model, layer, 0).c);
}

// ---- Kernel scratch ----

uint64_t no_scratch(const Model&, const Layer&, const Region&, const Region&) { return 0; }

uint64_t conv2d_scratch(const Model& model, const Layer& layer, const Region& needed,
                        const Region& out) {
  if (layer.quantized()) return conv2d_q_scratch_bytes(out.shape(layer.output_shape));
  const Shape& in = input_shape(model, layer, 0);
  return conv2d_scratch_bytes(layer.conv, needed.shape(in), out.shape(layer.output_shape), in.c,
                              layer.output_shape.c);
}

// ---- Kernels: a KernelCall unpacked for the kernels in src/ops/ ----

// The quint8 parameters of the layer's output and inputs, its clamp and the
// requantization mode.
QuantizedLayer quantized(const KernelCall& call) {
  QuantizedLayer q;
  q.out = call.layer.quant;
  for (int source : call.layer.inputs) q.in.push_back(call.model.layers[source].quant);
  q.clamp_lo = call.layer.clamp_lo;
  q.clamp_hi = call.layer.clamp_hi;
  q.mode = call.requantization;
  return q;
}

// A conv2d or linear layer's int8 weights.
QuantizedWeights quantized_weights(const KernelCall& call) {
  QuantizedWeights w;
  w.weight = static_cast<const int8_t*>(call.weight("weight"));
  w.bias = static_cast<const int32_t*>(call.weight("bias"));
  w.scale = static_cast<const float*>(call.weight("weight_scale"));
  w.zero_point = static_cast<const int32_t*>(call.weight("weight_zero_point"));
  w.per_channel = call.layer.weight("weight_scale")->dims[0] != 1;
  return w;
}

// The inputs of a concat whose channels fall in `out_region`.
std::vector<const Tensor*> concat_pieces(const KernelCall& call) {
  std::vector<const Tensor*> pieces;
  for (size_t slot = 0; slot < call.inputs.size(); ++slot)
    if (!call.needed[slot].empty()) pieces.push_back(&call.inputs[slot]);
  return pieces;
}

void conv2d_float32(const KernelCall& call) {
  const Conv2dParams& p = call.layer.conv;
  const float* weight = call.float_weight("weight");
  const float* bias = call.float_weight("bias");
  if (call.reference)
    conv2d_reference(p, call.in(), call.in_at(), weight, bias, call.out, call.out_at());
  else
    conv2d(p, call.in(), call.in_at(), weight, bias, call.out, call.out_at(),
           static_cast<float*>(call.scratch), call.row_begin, call.row_end, call.epilogue);
}

void conv2d_int8(const KernelCall& call) {
  // No scratch: conv2d_q_scratch_bytes() is 0.
  const Conv2dParams& p = call.layer.conv;
  if (call.reference)
    conv2d_q_reference(quantized(call), p, call.in(), call.in_at(), quantized_weights(call),
                       call.out, call.out_at());
  else
    conv2d_q(quantized(call), p, call.in(), call.in_at(), quantized_weights(call), call.out,
             call.out_at());
}

void linear_float32(const KernelCall& call) {
  if (call.reference)
    linear_reference(call.in(), call.float_weight("weight"), call.float_weight("bias"), call.out);
  else
    linear(call.in(), call.float_weight("weight"), call.float_weight("bias"), call.out);
}

void linear_int8(const KernelCall& call) {
  if (call.reference)
    linear_q_reference(quantized(call), call.in(), quantized_weights(call), call.out);
  else
    linear_q(quantized(call), call.in(), quantized_weights(call), call.out);
}

void batchnorm_float32(const KernelCall& call) {
  batchnorm({call.float_weight("gamma"), call.float_weight("beta"),
             call.float_weight("running_mean"), call.float_weight("running_var"), call.layer.eps},
            call.in(), call.out);
}

template <Activation kind>
void activation_float32(const KernelCall& call) {
  activation(kind, call.layer.negative_slope, call.in(), call.out);
}

// relu, relu6: the layer's clamp alone.
void clamp_int8(const KernelCall& call) { clamp_q(quantized(call), call.in(), call.out); }

// hardswish, hardsigmoid: a table of the 256 values.
void lookup_int8(const KernelCall& call) {
  lookup_q(quantized(call), call.layer.op, call.in(), call.out);
}

void add_float32(const KernelCall& call) { add(call.in(), call.inputs[1], call.out); }

void add_int8(const KernelCall& call) {
  if (call.reference)
    add_q_reference(quantized(call), call.in(), call.inputs[1], call.out);
  else
    add_q(quantized(call), call.in(), call.inputs[1], call.out);
}

void mul_float32(const KernelCall& call) { mul(call.in(), call.inputs[1], call.out); }

void mul_int8(const KernelCall& call) {
  mul_q(quantized(call), call.in(), call.inputs[1], call.out);
}

void concat_float32(const KernelCall& call) { concat(concat_pieces(call), call.out); }

void concat_int8(const KernelCall& call) {
  const QuantizedLayer q = quantized(call);
  std::vector<QuantParams> params;  // of the pieces
  for (size_t slot = 0; slot < call.inputs.size(); ++slot)
    if (!call.needed[slot].empty()) params.push_back(q.in[slot]);
  concat_q(q, concat_pieces(call), params, call.out);
}

// Any dtype: channel_shuffle, slice and flatten move elements.
void channel_shuffle_kernel(const KernelCall& call) {
  channel_shuffle(call.in(), call.needed[0].c0, call.layer.shuffle_groups, call.in_shape().c,
                  call.out, call.out_region.c0);
}

void slice_kernel(const KernelCall& call) {
  if (!call.out_allocated) return;  // a view: the program placed the output inside the input
  slice_channels(call.in(), call.out_region.c0 + call.layer.slice_start - call.needed[0].c0,
                 call.out);
}

void flatten_kernel(const KernelCall& call) {
  if (!call.out_allocated) return;  // a view: the program placed the output inside the input
  // Output features [c0, c1) of the tile's channels x whole map.
  const Shape& in = call.in_shape();
  const int64_t first = call.out_region.c0 - call.needed[0].c0 * in.h * in.w;
  std::memcpy(call.out.data,
              static_cast<const char*>(call.in().data) + first * dtype_bytes(call.out.dtype),
              call.out.bytes());
}

void maxpool_float32(const KernelCall& call) {
  maxpool(call.layer.pool, call.in(), call.in_at(), call.out, call.out_at());
}

void maxpool_int8(const KernelCall& call) {
  if (call.reference)  // maxpool() is the reference for both dtypes
    maxpool(call.layer.pool, call.in(), call.in_at(), call.out, call.out_at());
  else
    maxpool_q(call.layer.pool, call.in(), call.in_at(), call.out, call.out_at());
}

void avgpool_float32(const KernelCall& call) {
  avgpool(call.layer.pool, call.in(), call.in_at(), call.out, call.out_at());
}

void global_avgpool_float32(const KernelCall& call) { global_avgpool(call.in(), call.out); }

void global_avgpool_int8(const KernelCall& call) {
  global_avgpool_q(quantized(call), call.in(), call.out);
}

// Any dtype.
void upsample_nearest_kernel(const KernelCall& call) {
  upsample_nearest(call.layer.scale_h, call.layer.scale_w, call.in(), call.in_at(), call.out,
                   call.out_at());
}

void resize_float32(const KernelCall& call) {
  resize(call.layer.resize_h, call.layer.resize_w, call.in(), call.in_at(), call.out,
         call.out_at());
}

void quantize_int8(const KernelCall& call) {
  if (call.in().dtype == DType::u8)  // pixels (plan --input-pixels)
    return quantize_pixels(quantized(call), call.model.meta, call.needed[0].c0, call.in(),
                           call.out);
  if (call.reference)
    quantize_reference(quantized(call), call.in(), call.out);
  else
    quantize(quantized(call), call.in(), call.out);
}

void dequantize_int8(const KernelCall& call) { dequantize(quantized(call), call.in(), call.out); }

// ---- The table: row i describes Op(i) ----

// clang-format off
constexpr OpTraits kOps[] = {
  // op, kind, name, int8 scale, epilogue,
  //   reads, macs, scratch_bytes, float32 kernel, int8 kernel
  {Op::input, OpKind::input, "input", Int8Scale::own, Epilogue::none,
     reads_nothing, no_macs, no_scratch, nullptr, nullptr},
  {Op::conv2d, OpKind::windowed, "conv2d", Int8Scale::own, Epilogue::none,
     conv2d_reads, conv2d_macs, conv2d_scratch, conv2d_float32, conv2d_int8},
  {Op::batchnorm, OpKind::elementwise, "batchnorm", Int8Scale::own, Epilogue::none,
     reads_same_region, no_macs, no_scratch, batchnorm_float32, nullptr},
  {Op::relu, OpKind::elementwise, "relu", Int8Scale::input, Epilogue::relu,
     reads_same_region, no_macs, no_scratch, activation_float32<Activation::relu>, clamp_int8},
  {Op::relu6, OpKind::elementwise, "relu6", Int8Scale::input, Epilogue::relu6,
     reads_same_region, no_macs, no_scratch, activation_float32<Activation::relu6>, clamp_int8},
  {Op::leaky_relu, OpKind::elementwise, "leaky_relu", Int8Scale::own, Epilogue::none,
     reads_same_region, no_macs, no_scratch, activation_float32<Activation::leaky_relu>, nullptr},
  {Op::sigmoid, OpKind::elementwise, "sigmoid", Int8Scale::own, Epilogue::none,
     reads_same_region, no_macs, no_scratch, activation_float32<Activation::sigmoid>, nullptr},
  {Op::silu, OpKind::elementwise, "silu", Int8Scale::own, Epilogue::none,
     reads_same_region, no_macs, no_scratch, activation_float32<Activation::silu>, nullptr},
  {Op::hardswish, OpKind::elementwise, "hardswish", Int8Scale::own, Epilogue::none,
     reads_same_region, no_macs, no_scratch, activation_float32<Activation::hardswish>,
     lookup_int8},
  {Op::hardsigmoid, OpKind::elementwise, "hardsigmoid", Int8Scale::own, Epilogue::none,
     reads_same_region, no_macs, no_scratch, activation_float32<Activation::hardsigmoid>,
     lookup_int8},
  {Op::add, OpKind::elementwise, "add", Int8Scale::own, Epilogue::none,
     reads_same_region, no_macs, no_scratch, add_float32, add_int8},
  {Op::mul, OpKind::elementwise, "mul", Int8Scale::own, Epilogue::none,
     mul_reads, no_macs, no_scratch, mul_float32, mul_int8},
  {Op::concat, OpKind::channels, "concat", Int8Scale::own, Epilogue::none,
     concat_reads, no_macs, no_scratch, concat_float32, concat_int8},
  {Op::channel_shuffle, OpKind::channels, "channel_shuffle", Int8Scale::input, Epilogue::none,
     channel_shuffle_reads, no_macs, no_scratch, channel_shuffle_kernel, channel_shuffle_kernel},
  {Op::slice, OpKind::channels, "slice", Int8Scale::input, Epilogue::none,
     slice_reads, no_macs, no_scratch, slice_kernel, slice_kernel},
  {Op::maxpool, OpKind::windowed, "maxpool", Int8Scale::input, Epilogue::none,
     pool_reads, no_macs, no_scratch, maxpool_float32, maxpool_int8},
  {Op::avgpool, OpKind::windowed, "avgpool", Int8Scale::own, Epilogue::none,
     pool_reads, no_macs, no_scratch, avgpool_float32, nullptr},
  {Op::global_avgpool, OpKind::whole_map, "global_avgpool", Int8Scale::own, Epilogue::none,
     global_avgpool_reads, no_macs, no_scratch, global_avgpool_float32, global_avgpool_int8},
  {Op::flatten, OpKind::whole_map, "flatten", Int8Scale::input, Epilogue::none,
     flatten_reads, no_macs, no_scratch, flatten_kernel, flatten_kernel},
  {Op::linear, OpKind::whole_map, "linear", Int8Scale::own, Epilogue::none,
     linear_reads, linear_macs, no_scratch, linear_float32, linear_int8},
  {Op::upsample_nearest, OpKind::windowed, "upsample_nearest", Int8Scale::input, Epilogue::none,
     upsample_nearest_reads, no_macs, no_scratch, upsample_nearest_kernel, upsample_nearest_kernel},
  {Op::resize, OpKind::windowed, "resize", Int8Scale::own, Epilogue::none,
     resize_reads, no_macs, no_scratch, resize_float32, nullptr},
  {Op::quantize, OpKind::elementwise, "quantize", Int8Scale::own, Epilogue::none,
     reads_same_region, no_macs, no_scratch, nullptr, quantize_int8},
  {Op::dequantize, OpKind::elementwise, "dequantize", Int8Scale::own, Epilogue::none,
     reads_same_region, no_macs, no_scratch, nullptr, dequantize_int8},
};
// clang-format on

static_assert(std::size(kOps) == kOpCount, "every op has one row in kOps");

constexpr bool rows_in_op_order() {
  for (size_t i = 0; i < std::size(kOps); ++i)
    if (kOps[i].op != static_cast<Op>(i)) return false;
  return true;
}
static_assert(rows_in_op_order(), "row i of kOps describes Op(i)");

}  // namespace

const OpTraits& op_traits(Op op) { return kOps[static_cast<size_t>(op)]; }

const char* op_name(Op op) {
  const auto index = static_cast<size_t>(op);
  return index < kOpCount ? kOps[index].name : "?";
}

Op op_from_name(const std::string& name) {
  for (const OpTraits& row : kOps)
    if (name == row.name) return row.op;
  throw Error("unknown op '" + printable(name) + "'");
}

Kernel layer_kernel(const Model& model, const Layer& layer) {
  const OpTraits& row = op_traits(layer.op);
  const bool int8 =
      layer.quantized() || (!layer.inputs.empty() && model.layers[layer.inputs[0]].quantized());
  return int8 ? row.int8_kernel : row.float32_kernel;
}

uint64_t layer_macs(const Model& model, const Layer& layer) {
  return op_traits(layer.op).macs(model, layer, Region::whole(layer.output_shape));
}

}  // namespace splitinfer
