#include "graph.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <set>

#include "error.hpp"
#include "format.hpp"

namespace splitinfer {
namespace {

std::string where(const Layer& layer) {
  return "layer '" + printable(layer.name) + "' (" + op_name(layer.op) + ")";
}

void require(bool condition, const Layer& layer, const std::string& message) {
  if (!condition) throw Error(where(layer) + ": " + message);
}

std::string dims_text(const std::vector<int64_t>& dims) {
  std::string text = "[";
  for (size_t i = 0; i < dims.size(); ++i) text += (i ? ", " : "") + std::to_string(dims[i]);
  return text + "]";
}

// `dtypes`: the dtypes the blob may have.
void check_blob(const Layer& layer, const std::string& blob_name,
                const std::vector<int64_t>& expected, bool optional,
                const std::vector<DType>& dtypes = {DType::f32, DType::f16}) {
  const Blob* blob = layer.weight(blob_name);
  if (!blob) {
    require(optional, layer, "weight '" + blob_name + "' is missing");
    return;
  }
  require(std::find(dtypes.begin(), dtypes.end(), blob->dtype) != dtypes.end(), layer,
          "weight '" + blob_name + "' is " + dtype_name(blob->dtype) + ", which a " +
              dtype_name(layer.dtype) + " " + op_name(layer.op) + " layer does not take");
  require(blob->dims == expected, layer,
          "weight '" + blob_name + "' has shape " + dims_text(blob->dims) + ", expected " +
              dims_text(expected));
  if (blob->dtype == DType::f32) {
    // The message is built only for the value that fails: these loops see every weight.
    for (size_t i = 0; i < blob->values.size(); ++i)
      if (!std::isfinite(blob->values[i]))
        require(false, layer,
                "weight '" + blob_name + "' holds a non-finite value (" +
                    std::to_string(blob->values[i]) + ") at element " + std::to_string(i));
  } else if (blob->dtype == DType::f16) {
    const auto* halves = reinterpret_cast<const _Float16*>(blob->raw.data());
    for (size_t i = 0; i < blob->elements(); ++i)
      if (!std::isfinite(static_cast<float>(halves[i])))
        require(
            false, layer,
            "weight '" + blob_name + "' holds a non-finite value at element " + std::to_string(i));
  }
}

// A per-tensor ([1]) or per-channel ([channels]) float32 scale, each positive
// and finite, and its int32 zero point(s) in [-128, 127].
void check_weight_quantization(const Layer& layer, int64_t channels) {
  for (const auto& [blob_name, dtype] :
       {std::pair{"weight_scale", DType::f32}, std::pair{"weight_zero_point", DType::i32}}) {
    const Blob* blob = layer.weight(blob_name);
    require(blob != nullptr, layer, std::string("weight '") + blob_name + "' is missing");
    const bool per_tensor = blob->dims == std::vector<int64_t>{1};
    check_blob(layer, blob_name, {per_tensor ? 1 : channels}, false, {dtype});
  }
  for (float scale : layer.weight("weight_scale")->values)
    require(std::isfinite(scale) && scale > 0 && std::isnormal(scale), layer,
            "weight_scale " + std::to_string(scale) + " is not a positive normal number");
  const Blob* zero_points = layer.weight("weight_zero_point");
  const auto* values = reinterpret_cast<const int32_t*>(zero_points->raw.data());
  for (size_t i = 0; i < zero_points->elements(); ++i)
    require(values[i] >= -128 && values[i] <= 127, layer,
            "weight_zero_point " + std::to_string(values[i]) + " is outside [-128, 127]");
}

void check_window(const Layer& layer, int64_t kernel_h, int64_t kernel_w, int64_t stride_h,
                  int64_t stride_w, int64_t pad_h, int64_t pad_w, int64_t dilation_h,
                  int64_t dilation_w) {
  // Bounds that keep every size computation far from int64 overflow.
  constexpr int64_t kLimit = int64_t{1} << 20;
  for (int64_t value :
       {kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w})
    require(value < kLimit, layer,
            "kernel, stride, padding and dilation must be below " + std::to_string(kLimit));
  require(kernel_h > 0 && kernel_w > 0, layer, "kernel must be positive");
  require(stride_h > 0 && stride_w > 0, layer, "stride must be positive");
  require(pad_h >= 0 && pad_w >= 0, layer, "padding must not be negative");
  require(dilation_h > 0 && dilation_w > 0, layer, "dilation must be positive");
}

Shape infer(const Model& model, const Layer& layer) {
  std::vector<Shape> in;
  for (int index : layer.inputs) in.push_back(model.layers[index].output_shape);
  const auto arity = [&](size_t count) {
    require(in.size() == count, layer,
            "takes " + std::to_string(count) + " input(s), has " + std::to_string(in.size()));
  };
  const auto spatial = [&]() {
    require(in[0].rank == 4, layer, "needs a 4-D input, got " + in[0].str());
  };
  switch (layer.op) {
    case Op::input:
      arity(0);
      return layer.output_shape;
    case Op::conv2d: {
      arity(1);
      spatial();
      const Conv2dParams& p = layer.conv;
      check_window(layer, p.kernel_h, p.kernel_w, p.stride_h, p.stride_w, p.pad_h, p.pad_w,
                   p.dilation_h, p.dilation_w);
      require(p.groups > 0 && in[0].c % p.groups == 0 && layer.output_shape.c % p.groups == 0,
              layer,
              "groups " + std::to_string(p.groups) + " must divide input and output channels");
      Shape out = in[0];
      out.c = layer.output_shape.c;
      out.h = window_output_size(in[0].h, p.kernel_h, p.stride_h, p.pad_h, p.dilation_h);
      out.w = window_output_size(in[0].w, p.kernel_w, p.stride_w, p.pad_w, p.dilation_w);
      return out;
    }
    case Op::maxpool:
    case Op::avgpool: {
      arity(1);
      spatial();
      const PoolParams& p = layer.pool;
      check_window(layer, p.kernel_h, p.kernel_w, p.stride_h, p.stride_w, p.pad_h, p.pad_w,
                   p.dilation_h, p.dilation_w);
      // Every window must hold an element of the map (a window all padding
      // has no maximum, and no divisor). Undilated, padding below the kernel
      // ensures it (ONNX allows that much; PyTorch half the kernel); a dilated
      // window can fall between the map's elements, so PyTorch's own rule,
      // padding at most half the kernel, stays for it.
      const auto padding_fits = [&](int64_t pad, int64_t kernel, int64_t dilation) {
        return dilation == 1 ? pad < kernel : 2 * pad <= kernel;
      };
      require(padding_fits(p.pad_h, p.kernel_h, p.dilation_h) &&
                  padding_fits(p.pad_w, p.kernel_w, p.dilation_w),
              layer,
              "padding must be smaller than the kernel (at most half the kernel when dilated)");
      Shape out = in[0];
      out.h = pool_output_size(in[0].h, p.kernel_h, p.stride_h, p.pad_h, p.dilation_h, p.ceil_mode);
      out.w = pool_output_size(in[0].w, p.kernel_w, p.stride_w, p.pad_w, p.dilation_w, p.ceil_mode);
      return out;
    }
    case Op::batchnorm:
    case Op::relu:
    case Op::relu6:
    case Op::leaky_relu:
    case Op::sigmoid:
    case Op::silu:
    case Op::hardswish:
    case Op::hardsigmoid:
    case Op::quantize:
    case Op::dequantize:
      arity(1);
      if (layer.op == Op::batchnorm)
        require(std::isfinite(layer.eps) && layer.eps >= 0 && layer.eps <= 1, layer,
                "eps " + std::to_string(layer.eps) + " is not a number in [0, 1]");
      if (layer.op == Op::leaky_relu)
        require(std::isfinite(layer.negative_slope) && std::fabs(layer.negative_slope) <= 1e3f,
                layer,
                "negative_slope " + std::to_string(layer.negative_slope) +
                    " is not a number in [-1000, 1000]");
      return in[0];
    case Op::add:
      arity(2);
      require(in[0] == in[1], layer, "adds shapes " + in[0].str() + " and " + in[1].str());
      return in[0];
    case Op::mul: {
      arity(2);
      const auto broadcasts = [](const Shape& small, const Shape& big) {
        return small.n == big.n && small.c == big.c && small.h == 1 && small.w == 1 &&
               small.rank == 4;
      };
      require(in[0] == in[1] || broadcasts(in[1], in[0]) || broadcasts(in[0], in[1]), layer,
              "multiplies shapes " + in[0].str() + " and " + in[1].str());
      return broadcasts(in[0], in[1]) ? in[1] : in[0];
    }
    case Op::concat: {
      require(!in.empty(), layer, "needs at least one input");
      Shape out = in[0];
      out.c = 0;
      for (const Shape& shape : in) {
        require(shape.n == in[0].n && shape.h == in[0].h && shape.w == in[0].w &&
                    shape.rank == in[0].rank,
                layer, "concatenates " + in[0].str() + " and " + shape.str());
        out.c += shape.c;
      }
      return out;
    }
    case Op::channel_shuffle:
      arity(1);
      require(layer.shuffle_groups > 0 && in[0].c % layer.shuffle_groups == 0, layer,
              "groups must divide the channels");
      return in[0];
    case Op::slice: {
      arity(1);
      require(0 <= layer.slice_start && layer.slice_start < layer.slice_stop &&
                  layer.slice_stop <= in[0].c,
              layer,
              "channel range is outside the input's " + std::to_string(in[0].c) + " channels");
      Shape out = in[0];
      out.c = layer.slice_stop - layer.slice_start;
      return out;
    }
    case Op::global_avgpool: {
      arity(1);
      spatial();
      Shape out = in[0];
      out.h = out.w = 1;
      out.rank = layer.output_shape.rank;
      return out;
    }
    case Op::flatten:
      arity(1);
      return Shape{in[0].n, in[0].c * in[0].h * in[0].w, 1, 1, 2};
    case Op::linear: {
      arity(1);
      require(in[0].h == 1 && in[0].w == 1, layer, "needs a flattened input, got " + in[0].str());
      return Shape{in[0].n, layer.output_shape.c, 1, 1, 2};
    }
    case Op::upsample_nearest: {
      arity(1);
      spatial();
      require(layer.scale_h > 0 && layer.scale_w > 0 && layer.scale_h < (1 << 20) &&
                  layer.scale_w < (1 << 20),
              layer, "scale must be between 1 and 2^20");
      Shape out = in[0];
      out.h *= layer.scale_h;
      out.w *= layer.scale_w;
      return out;
    }
    case Op::resize: {
      arity(1);
      spatial();
      const auto check = [&](const ResizeTaps& taps, int64_t in_size, const char* axis) {
        require(taps.taps >= 1 && taps.taps <= 16, layer,
                std::string("taps_") + axis + " must be between 1 and 16");
        require(!taps.index.empty() && taps.index.size() % taps.taps == 0 &&
                    taps.weight.size() == taps.index.size(),
                layer,
                std::string("index_") + axis + " and weight_" + axis +
                    " must hold the same whole number of outputs times taps_" + axis);
        for (int64_t i : taps.index)
          require(0 <= i && i < in_size, layer,
                  std::string("index_") + axis + " holds " + std::to_string(i) +
                      ", outside the input's " + std::to_string(in_size));
        for (float w : taps.weight)
          require(std::isfinite(w), layer, std::string("weight_") + axis + " holds a non-finite value");
        require(taps.bias.empty() || static_cast<int64_t>(taps.bias.size()) == taps.size(), layer,
                std::string("bias_") + axis + " must hold one value per output");
        for (float b : taps.bias)
          require(std::isfinite(b), layer, std::string("bias_") + axis + " holds a non-finite value");
      };
      check(layer.resize_h, in[0].h, "h");
      check(layer.resize_w, in[0].w, "w");
      Shape out = in[0];
      out.h = layer.resize_h.size();
      out.w = layer.resize_w.size();
      return out;
    }
  }
  throw Error(where(layer) + ": unknown op");
}

// `channels`: the output channels whose weights the layer holds (all of them,
// or a node's slice).
void check_weights(const Model& model, const Layer& layer, int64_t channels) {
  const Shape in = layer.inputs.empty() ? Shape{} : model.layers[layer.inputs[0]].output_shape;
  const std::vector<std::string> known =
      layer.op == Op::batchnorm
          ? std::vector<std::string>{"gamma", "beta", "running_mean", "running_var"}
      : layer.quantized()
          ? std::vector<std::string>{"weight", "bias", "weight_scale", "weight_zero_point"}
          : std::vector<std::string>{"weight", "bias"};
  const bool q = layer.quantized();
  const std::vector<DType> weight_dtypes =
      q ? std::vector<DType>{DType::i8} : std::vector<DType>{DType::f32, DType::f16};
  const std::vector<DType> bias_dtypes =
      q ? std::vector<DType>{DType::i32} : std::vector<DType>{DType::f32, DType::f16};
  for (const auto& [blob_name, blob] : layer.weights)
    require(std::find(known.begin(), known.end(), blob_name) != known.end(), layer,
            "holds an unexpected weight '" + blob_name + "'");
  switch (layer.op) {
    case Op::conv2d:
      check_blob(layer, "weight",
                 {channels, in.c / layer.conv.groups, layer.conv.kernel_h, layer.conv.kernel_w},
                 false, weight_dtypes);
      check_blob(layer, "bias", {channels}, true, bias_dtypes);
      if (q) check_weight_quantization(layer, channels);
      break;
    case Op::linear:
      check_blob(layer, "weight", {channels, in.c}, false, weight_dtypes);
      check_blob(layer, "bias", {channels}, true, bias_dtypes);
      if (q) check_weight_quantization(layer, channels);
      break;
    case Op::batchnorm:
      for (const char* blob_name : {"gamma", "beta", "running_mean", "running_var"})
        check_blob(layer, blob_name, {channels}, false, {DType::f32});
      for (float variance : layer.weight("running_var")->values)
        require(variance >= 0, layer, "running_var holds a negative variance");
      break;
    case Op::input:
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
    case Op::maxpool:
    case Op::avgpool:
    case Op::global_avgpool:
    case Op::flatten:
    case Op::upsample_nearest:
    case Op::resize:
    case Op::quantize:
    case Op::dequantize:
      require(layer.weights.empty(), layer, "this op takes no weights");
      break;
  }
}

// The dtypes of a layer and its inputs agree with its op, and a quint8
// layer's parameters are usable (io/FORMAT.md).
void check_dtypes(const Model& model, const Layer& layer) {
  const bool q = layer.quantized();
  require(layer.dtype == DType::f32 || q, layer,
          std::string("output dtype ") + dtype_name(layer.dtype) + " is not float32 or quint8");
  if (q) {
    const float scale = layer.quant.scale;
    require(std::isfinite(scale) && scale > 0 && std::isnormal(scale), layer,
            "scale " + std::to_string(scale) + " is not a positive normal float32 number");
    require(layer.quant.zero_point >= 0 && layer.quant.zero_point <= 255, layer,
            "zero point " + std::to_string(layer.quant.zero_point) + " is outside [0, 255]");
    require(0 <= layer.clamp_lo && layer.clamp_lo <= layer.clamp_hi && layer.clamp_hi <= 255, layer,
            "clamp [" + std::to_string(layer.clamp_lo) + ", " + std::to_string(layer.clamp_hi) +
                "] is not inside [0, 255]");
  }
  if (layer.op == Op::input) {
    require(!q, layer, "the input layer is float32");
    return;
  }
  const OpTraits& traits = op_traits(layer.op);
  if (layer.op == Op::quantize) require(q, layer, "a quantize layer's output is quint8");
  if (layer.op == Op::dequantize) require(!q, layer, "a dequantize layer's output is float32");
  require(!q || traits.int8_kernel, layer, "has no quint8 form (fold it, or leave it float32)");
  const DType wanted = layer.op == Op::quantize     ? DType::f32
                       : layer.op == Op::dequantize ? DType::u8
                                                    : layer.dtype;
  for (int index : layer.inputs) {
    const Layer& source = model.layers[index];
    require(source.dtype == wanted, layer,
            "input '" + printable(source.name) + "' is " + dtype_name(source.dtype) +
                ", expected " + dtype_name(wanted));
  }
  if (!q || layer.inputs.empty()) return;
  const QuantParams& in = model.layers[layer.inputs[0]].quant;
  if (traits.int8_scale == Int8Scale::input)
    require(layer.quant == in, layer,
            "its scale and zero point must equal those of its input '" +
                printable(model.layers[layer.inputs[0]].name) + "'");
  // The fixed-point add (models/quantization.md 3.3) needs each input's
  // scale over the output's in [2^-14, 2^8), as PyTorch does.
  if (layer.op == Op::add)
    for (int index : layer.inputs) {
      const float ratio = model.layers[index].quant.scale / layer.quant.scale;
      require(ratio >= 0x1p-14f && ratio < 0x1p8f, layer,
              "input scale / output scale " + std::to_string(ratio) + " is outside [2^-14, 2^8)");
    }
}

// A value of the metadata is finite and inside [lo, hi]; `what` names it.
void require_in_range(double value, double lo, double hi, const std::string& what) {
  if (!(std::isfinite(value) && value >= lo && value <= hi)) {
    char text[160];
    std::snprintf(text, sizeof text, "/meta %s %g is not a finite number in [%g, %g]", what.c_str(),
                  value, lo, hi);
    throw Error(text);
  }
}

// The input normalisation, (pixel * pixel_scale - mean[c]) / std[c]: every
// value finite and of a size no real model uses beyond, so a file cannot
// turn every logit into NaN or infinity. Pixels are 0..255 (8-bit images), so
// the limits keep the normalised input far inside float32.
void check_meta(const ModelMeta& meta) {
  constexpr double kMaxPixelScale = 1.0, kMinPixelScale = 1e-6;
  constexpr double kMaxMean = 1e4, kMinStd = 1e-6, kMaxStd = 1e4;
  const auto channels = static_cast<size_t>(meta.input_shape.c);
  // A model built in memory may leave both empty (no normalisation); a file's always has them.
  const bool without_normalisation = meta.mean.empty() && meta.std.empty();
  if (!without_normalisation && (meta.mean.size() != channels || meta.std.size() != channels))
    throw Error("/meta mean and std need one value per input channel (" + std::to_string(channels) +
                ")");
  require_in_range(meta.pixel_scale, kMinPixelScale, kMaxPixelScale, "pixel_scale");
  for (size_t c = 0; c < meta.mean.size(); ++c) {
    require_in_range(meta.mean[c], -kMaxMean, kMaxMean, "mean[" + std::to_string(c) + "]");
    require_in_range(meta.std[c], kMinStd, kMaxStd, "std[" + std::to_string(c) + "]");
  }
  if (meta.test_accuracy) require_in_range(*meta.test_accuracy, 0, 1, "test_accuracy");
  if (meta.channel_order != "rgb" && meta.channel_order != "bgr" && meta.channel_order != "gray")
    throw Error("/meta channel_order '" + printable(meta.channel_order) +
                "' is not rgb, bgr or gray");
  if (meta.resize != "bilinear")
    throw Error("/meta resize '" + printable(meta.resize) + "' is not bilinear");
}

}  // namespace

const char* requantization_name(Requantization mode) {
  return mode == Requantization::cmsis ? "cmsis" : "pytorch";
}

Requantization requantization_from_name(const std::string& name) {
  if (name == "pytorch") return Requantization::pytorch;
  if (name == "cmsis") return Requantization::cmsis;
  throw Error("requantization '" + name + "' is not pytorch or cmsis");
}

const Blob* Layer::weight(const std::string& blob_name) const {
  auto found = weights.find(blob_name);
  return found == weights.end() ? nullptr : &found->second;
}

uint64_t Layer::weight_bytes() const {
  uint64_t bytes = 0;
  for (const auto& [blob_name, blob] : weights) bytes += blob.bytes();
  return bytes;
}

uint64_t Layer::weight_ram_bytes() const {
  uint64_t bytes = 0;
  for (const auto& [blob_name, blob] : weights) bytes += blob.ram_bytes();
  return bytes;
}

int Model::find(const std::string& layer_name) const {
  for (size_t i = 0; i < layers.size(); ++i)
    if (layers[i].name == layer_name) return static_cast<int>(i);
  return -1;
}

uint64_t Model::weight_bytes() const {
  uint64_t bytes = 0;
  for (const Layer& layer : layers) bytes += layer.weight_bytes();
  return bytes;
}

void validate(Model& model, bool check_weights_too) {
  if (model.layers.empty()) throw Error("the model has no layers");
  if (model.layers[0].op != Op::input) throw Error("the first layer must be the input layer");
  check_meta(model.meta);
  std::set<std::string> names;
  for (const Layer& layer : model.layers)
    if (!names.insert(layer.name).second)
      throw Error("two layers are named '" + printable(layer.name) +
                  "'; layer names must be unique");
  for (size_t i = 0; i < model.layers.size(); ++i) {
    Layer& layer = model.layers[i];
    require(layer.op != Op::input || i == 0, layer, "only the first layer may be an input");
    require(layer.output_shape.n == 1, layer,
            "batch size " + std::to_string(layer.output_shape.n) +
                " is not supported; splitinfer runs one image at a time");
    layer.inputs.clear();
    for (const std::string& input_name : layer.input_names) {
      const int index = model.find(input_name);
      require(index >= 0 && index < static_cast<int>(i), layer,
              "input '" + printable(input_name) + "' is not an earlier layer");
      layer.inputs.push_back(index);
    }
    const Shape inferred = infer(model, layer);
    require(inferred == layer.output_shape, layer,
            "output shape " + inferred.str() + " from its inputs differs from the stored " +
                layer.output_shape.str());
    check_dtypes(model, layer);
    if (check_weights_too) check_weights(model, layer, layer.output_shape.c);
  }
  if (model.output < 0 || model.output >= static_cast<int>(model.layers.size()))
    throw Error("the model's output layer is not one of its layers");
  if (model.meta.input_shape != model.layers[0].output_shape)
    throw Error("the metadata's input shape " + model.meta.input_shape.str() +
                " differs from the input layer's " + model.layers[0].output_shape.str());
}

void take_input_as_pixels(Model& model) {
  if (model.layers.empty() || model.layers[0].op != Op::input)
    throw Error("internal: a model without its input layer first");
  Layer& input = model.layers[0];
  if (input.dtype == DType::u8) return;
  std::vector<int> readers;
  for (size_t i = 1; i < model.layers.size(); ++i)
    for (int source : model.layers[i].inputs)
      if (source == 0) readers.push_back(static_cast<int>(i));
  if (readers.size() != 1 || model.layers[readers[0]].op != Op::quantize)
    throw Error("--input-pixels: model '" + model.name +
                "' does not quantize its input first (its input is read by " +
                (readers.empty() ? std::string("no layer")
                                 : "layer '" + model.layers[readers[0]].name + "' (" +
                                       op_name(model.layers[readers[0]].op) + ")" +
                                       (readers.size() > 1 ? " and others" : "")) +
                "); pixels go to an int8 model, whose first op quantizes");
  const size_t channels = static_cast<size_t>(input.output_shape.c);
  if (model.meta.mean.size() != channels || model.meta.std.size() != channels)
    throw Error("--input-pixels: model '" + model.name + "' has no mean and std per channel");
  input.dtype = DType::u8;
  input.quant = {};
}

void validate_weight_slices(const Model& model, const std::vector<Region>& regions) {
  for (size_t i = 0; i < model.layers.size(); ++i) {
    const Layer& layer = model.layers[i];
    if (regions[i].empty())
      require(layer.weights.empty(), layer, "holds weights of a layer this node does not compute");
    else
      check_weights(model, layer, regions[i].c1 - regions[i].c0);
  }
}

}  // namespace splitinfer
