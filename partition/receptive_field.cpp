#include "receptive_field.hpp"

#include <algorithm>

namespace splitinfer {
namespace {

ReceptiveField window(const ReceptiveField& in, int64_t kernel_h, int64_t kernel_w,
                      int64_t stride_h, int64_t stride_w, int64_t dilation_h, int64_t dilation_w) {
  ReceptiveField out;
  out.rows = in.rows + static_cast<int64_t>((kernel_h - 1) * dilation_h * in.jump_rows);
  out.cols = in.cols + static_cast<int64_t>((kernel_w - 1) * dilation_w * in.jump_cols);
  out.jump_rows = in.jump_rows * stride_h;
  out.jump_cols = in.jump_cols * stride_w;
  return out;
}

}  // namespace

std::vector<ReceptiveField> receptive_fields(const Model& model) {
  std::vector<ReceptiveField> fields(model.layers.size());
  for (size_t i = 0; i < model.layers.size(); ++i) {
    const Layer& layer = model.layers[i];
    if (layer.inputs.empty()) continue;
    ReceptiveField in = fields[layer.inputs[0]];
    for (int input : layer.inputs) {
      in.rows = std::max(in.rows, fields[input].rows);
      in.cols = std::max(in.cols, fields[input].cols);
      in.jump_rows = std::max(in.jump_rows, fields[input].jump_rows);
      in.jump_cols = std::max(in.jump_cols, fields[input].jump_cols);
    }
    const Shape& in_shape = model.layers[layer.inputs[0]].output_shape;
    switch (layer.op) {
      case Op::conv2d:
        fields[i] = window(in, layer.conv.kernel_h, layer.conv.kernel_w, layer.conv.stride_h,
                           layer.conv.stride_w, layer.conv.dilation_h, layer.conv.dilation_w);
        break;
      case Op::maxpool:
      case Op::avgpool:
        fields[i] = window(in, layer.pool.kernel_h, layer.pool.kernel_w, layer.pool.stride_h,
                           layer.pool.stride_w, layer.pool.dilation_h, layer.pool.dilation_w);
        break;
      case Op::global_avgpool:
      case Op::flatten:
        fields[i] = window(in, in_shape.h, in_shape.w, in_shape.h, in_shape.w, 1, 1);
        break;
      case Op::upsample_nearest:
        fields[i] = in;
        fields[i].jump_rows /= static_cast<double>(layer.scale_h);
        fields[i].jump_cols /= static_cast<double>(layer.scale_w);
        break;
      case Op::resize: {
        // One output reads `taps` neighbouring inputs; outputs step by
        // in/out inputs.
        const Shape& out_shape = layer.output_shape;
        fields[i] = window(in, layer.resize_h.taps, layer.resize_w.taps, 1, 1, 1, 1);
        fields[i].jump_rows *= static_cast<double>(in_shape.h) / static_cast<double>(out_shape.h);
        fields[i].jump_cols *= static_cast<double>(in_shape.w) / static_cast<double>(out_shape.w);
        break;
      }
      case Op::batchnorm:
      case Op::relu:
      case Op::relu6:
      case Op::leaky_relu:
      case Op::sigmoid:
      case Op::silu:
      case Op::hardswish:
      case Op::hardsigmoid:
      case Op::add:
      case Op::mul:
      case Op::concat:
      case Op::channel_shuffle:
      case Op::slice:
      case Op::linear:
      case Op::quantize:
      case Op::dequantize:
        fields[i] = in;
        break;
      case Op::input:  // reads nothing (skipped above)
        break;
    }
  }
  return fields;
}

}  // namespace splitinfer
