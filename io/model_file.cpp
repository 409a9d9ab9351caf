#include "model_file.hpp"

#include <algorithm>
#include <cmath>

#include "../partition/plan.hpp"
#include "../src/error.hpp"

namespace splitinfer {
namespace {

void read_window(const h5::Group& group, int64_t& h, int64_t& w, const char* attr,
                 int64_t fallback) {
  if (!group.has_attr(attr)) {
    h = w = fallback;
    return;
  }
  std::vector<int64_t> values = group.read_ints(attr);
  if (values.size() != 2)
    throw Error("attribute '" + std::string(attr) + "' on " + group.path() + " needs 2 values");
  h = values[0];
  w = values[1];
}

// A layer's output dtype and, for quint8, its scale, zero point and clamp.
void read_quantization(const h5::Group& group, Layer& layer) {
  const std::string dtype = group.has_attr("dtype") ? group.read_string("dtype") : "float32";
  if (dtype == "float32") return;
  if (dtype != "quint8")
    throw Error("layer '" + layer.name + "': dtype '" + dtype +
                "' is not one splitinfer knows (float32, quint8)");
  layer.dtype = DType::u8;
  const double scale = group.read_double("scale");
  if (!(std::isfinite(scale) && scale > 0 &&
        static_cast<double>(static_cast<float>(scale)) == scale))
    throw Error("layer '" + layer.name + "': scale " + std::to_string(scale) +
                " is not a positive float32 value");
  layer.quant.scale = static_cast<float>(scale);
  const int64_t zero_point = group.read_int("zero_point");
  if (zero_point < 0 || zero_point > 255)
    throw Error("layer '" + layer.name + "': zero point " + std::to_string(zero_point) +
                " is outside [0, 255]");
  layer.quant.zero_point = static_cast<int32_t>(zero_point);
  if (group.has_attr("clamp")) {
    const std::vector<int64_t> clamp = group.read_ints("clamp");
    if (clamp.size() != 2 || clamp[0] < 0 || clamp[0] > clamp[1] || clamp[1] > 255)
      throw Error("layer '" + layer.name + "': clamp needs [lo, hi] with 0 <= lo <= hi <= 255");
    layer.clamp_lo = static_cast<int32_t>(clamp[0]);
    layer.clamp_hi = static_cast<int32_t>(clamp[1]);
  }
}

void write_quantization(const h5::Group& group, const Layer& layer) {
  if (!layer.quantized()) return;
  group.write_string("dtype", "quint8");
  group.write_double("scale", layer.quant.scale);
  group.write_int("zero_point", layer.quant.zero_point);
  group.write_ints("clamp", {layer.clamp_lo, layer.clamp_hi});
}

Layer read_layer(const h5::Group& group, const std::string& name) {
  Layer layer;
  layer.name = name;
  layer.op = op_from_name(group.read_string("op"));
  layer.input_names =
      group.has_attr("inputs") ? group.read_strings("inputs") : std::vector<std::string>{};
  layer.output_shape = Shape::from_dims(group.read_ints("output_shape"));
  read_quantization(group, layer);
  switch (layer.op) {
    case Op::conv2d: {
      Conv2dParams& p = layer.conv;
      read_window(group, p.kernel_h, p.kernel_w, "kernel", -1);
      read_window(group, p.stride_h, p.stride_w, "stride", 1);
      read_window(group, p.pad_h, p.pad_w, "padding", 0);
      read_window(group, p.dilation_h, p.dilation_w, "dilation", 1);
      p.groups = group.has_attr("groups") ? group.read_int("groups") : 1;
      break;
    }
    case Op::maxpool:
    case Op::avgpool: {
      PoolParams& p = layer.pool;
      read_window(group, p.kernel_h, p.kernel_w, "kernel", -1);
      read_window(group, p.stride_h, p.stride_w, "stride", p.kernel_h);
      if (!group.has_attr("stride")) p.stride_w = p.kernel_w;
      read_window(group, p.pad_h, p.pad_w, "padding", 0);
      read_window(group, p.dilation_h, p.dilation_w, "dilation", 1);
      p.ceil_mode = group.has_attr("ceil_mode") && group.read_int("ceil_mode") != 0;
      p.count_include_pad =
          !group.has_attr("count_include_pad") || group.read_int("count_include_pad") != 0;
      if (layer.op == Op::avgpool && (p.dilation_h != 1 || p.dilation_w != 1))
        throw Error("layer '" + name + "': average pooling has no dilation");
      break;
    }
    case Op::leaky_relu:
      layer.negative_slope = static_cast<float>(group.read_double("negative_slope"));
      break;
    case Op::batchnorm:
      layer.eps = group.read_double("eps");
      break;
    case Op::channel_shuffle:
      layer.shuffle_groups = group.read_int("groups");
      break;
    case Op::slice:
      layer.slice_start = group.read_int("start");
      layer.slice_stop = group.read_int("stop");
      break;
    case Op::upsample_nearest:
      read_window(group, layer.scale_h, layer.scale_w, "scale", 1);
      break;
    case Op::resize: {
      const std::vector<int64_t> taps = group.read_ints("taps");
      if (taps.size() != 2)
        throw Error("layer '" + name + "': taps must hold 2 values (rows, columns)");
      layer.resize_h.taps = taps[0];
      layer.resize_w.taps = taps[1];
      layer.resize_h.index = group.read_ints("index_h");
      layer.resize_w.index = group.read_ints("index_w");
      const auto floats = [&](const char* attr) {  // float32 values held as doubles
        std::vector<float> values;
        for (double v : group.read_doubles(attr)) values.push_back(static_cast<float>(v));
        return values;
      };
      layer.resize_h.weight = floats("weight_h");
      layer.resize_w.weight = floats("weight_w");
      if (group.has_attr("bias_h")) layer.resize_h.bias = floats("bias_h");  // optional: zeros
      if (group.has_attr("bias_w")) layer.resize_w.bias = floats("bias_w");
      break;
    }
    case Op::input:
    case Op::relu:
    case Op::relu6:
    case Op::sigmoid:
    case Op::silu:
    case Op::hardswish:
    case Op::hardsigmoid:
    case Op::add:
    case Op::mul:
    case Op::concat:
    case Op::global_avgpool:
    case Op::flatten:
    case Op::linear:
    case Op::quantize:
    case Op::dequantize:
      break;  // no attributes
  }
  return layer;
}

void write_layer(const h5::Group& group, const Layer& layer) {
  group.write_string("op", op_name(layer.op));
  group.write_strings("inputs", layer.input_names);
  group.write_ints("output_shape", layer.output_shape.dims());
  write_quantization(group, layer);
  switch (layer.op) {
    case Op::conv2d: {
      const Conv2dParams& p = layer.conv;
      group.write_ints("kernel", {p.kernel_h, p.kernel_w});
      group.write_ints("stride", {p.stride_h, p.stride_w});
      group.write_ints("padding", {p.pad_h, p.pad_w});
      group.write_ints("dilation", {p.dilation_h, p.dilation_w});
      group.write_int("groups", p.groups);
      break;
    }
    case Op::maxpool:
    case Op::avgpool: {
      const PoolParams& p = layer.pool;
      group.write_ints("kernel", {p.kernel_h, p.kernel_w});
      group.write_ints("stride", {p.stride_h, p.stride_w});
      group.write_ints("padding", {p.pad_h, p.pad_w});
      if (layer.op == Op::maxpool) group.write_ints("dilation", {p.dilation_h, p.dilation_w});
      group.write_int("ceil_mode", p.ceil_mode);
      if (layer.op == Op::avgpool) group.write_int("count_include_pad", p.count_include_pad);
      break;
    }
    case Op::leaky_relu:
      group.write_double("negative_slope", layer.negative_slope);
      break;
    case Op::batchnorm:
      group.write_double("eps", layer.eps);
      break;
    case Op::channel_shuffle:
      group.write_int("groups", layer.shuffle_groups);
      break;
    case Op::slice:
      group.write_int("start", layer.slice_start);
      group.write_int("stop", layer.slice_stop);
      break;
    case Op::upsample_nearest:
      group.write_ints("scale", {layer.scale_h, layer.scale_w});
      break;
    case Op::resize:
      group.write_ints("taps", {layer.resize_h.taps, layer.resize_w.taps});
      group.write_ints("index_h", layer.resize_h.index);
      group.write_ints("index_w", layer.resize_w.index);
      group.write_doubles("weight_h", std::vector<double>(layer.resize_h.weight.begin(),
                                                          layer.resize_h.weight.end()));
      group.write_doubles("weight_w", std::vector<double>(layer.resize_w.weight.begin(),
                                                          layer.resize_w.weight.end()));
      if (!layer.resize_h.bias.empty())
        group.write_doubles("bias_h", std::vector<double>(layer.resize_h.bias.begin(),
                                                          layer.resize_h.bias.end()));
      if (!layer.resize_w.bias.empty())
        group.write_doubles("bias_w", std::vector<double>(layer.resize_w.bias.begin(),
                                                          layer.resize_w.bias.end()));
      break;
    case Op::input:
    case Op::relu:
    case Op::relu6:
    case Op::sigmoid:
    case Op::silu:
    case Op::hardswish:
    case Op::hardsigmoid:
    case Op::add:
    case Op::mul:
    case Op::concat:
    case Op::global_avgpool:
    case Op::flatten:
    case Op::linear:
    case Op::quantize:
    case Op::dequantize:
      break;  // no attributes
  }
}

ModelMeta read_meta(const h5::Group& meta) {
  ModelMeta result;
  result.input_shape = Shape::from_dims(meta.read_ints("input_shape"));
  if (meta.has_attr("channel_order")) result.channel_order = meta.read_string("channel_order");
  if (meta.has_attr("pixel_scale")) result.pixel_scale = meta.read_double("pixel_scale");
  result.mean = meta.has_attr("mean") ? meta.read_doubles("mean")
                                      : std::vector<double>(result.input_shape.c, 0.0);
  result.std = meta.has_attr("std") ? meta.read_doubles("std")
                                    : std::vector<double>(result.input_shape.c, 1.0);
  if (meta.has_attr("resize")) result.resize = meta.read_string("resize");
  if (meta.has_attr("class_names")) result.class_names = meta.read_strings("class_names");
  if (meta.has_attr("test_accuracy")) result.test_accuracy = meta.read_double("test_accuracy");
  if (meta.has_attr("dataset")) result.dataset = meta.read_string("dataset");
  const size_t channels = static_cast<size_t>(result.input_shape.c);
  if (result.mean.size() != channels || result.std.size() != channels)
    throw Error("/meta mean and std need one value per input channel (" + std::to_string(channels) +
                ")");
  for (double deviation : result.std)
    if (!(deviation > 0)) throw Error("/meta std values must be positive");
  if (result.channel_order != "rgb" && result.channel_order != "bgr" &&
      result.channel_order != "gray")
    throw Error("/meta channel_order '" + result.channel_order + "' is not rgb, bgr or gray");
  return result;
}

void write_meta(const h5::Group& meta, const ModelMeta& data) {
  meta.write_ints("input_shape", data.input_shape.dims());
  meta.write_string("channel_order", data.channel_order);
  meta.write_double("pixel_scale", data.pixel_scale);
  meta.write_doubles("mean", data.mean);
  meta.write_doubles("std", data.std);
  meta.write_string("resize", data.resize);
  if (!data.class_names.empty()) meta.write_strings("class_names", data.class_names);
  if (data.test_accuracy) meta.write_double("test_accuracy", *data.test_accuracy);
  if (!data.dataset.empty()) meta.write_string("dataset", data.dataset);
}

}  // namespace

std::string content_digest(const h5::Group& root) {
  return digest(h5::canonical_content(root, kContentDigest));
}

void seal(const h5::Group& root) { root.write_string(kContentDigest, content_digest(root)); }

void check_content_digest(const h5::Group& root, const std::string& what) {
  if (!root.has_attr(kContentDigest)) return;
  const std::string stored = root.read_string(kContentDigest), computed = content_digest(root);
  if (stored == computed) return;
  const std::string file = root.path().substr(0, root.path().rfind(":/"));
  throw Error(file + ": " + what + " do not match the file's content digest (stored " + stored +
              ", computed " + computed + "): the file is corrupt or was edited");
}

void check_format(const h5::Group& root, const std::string& expected_format) {
  if (!root.has_attr("format") || root.read_string("format") != expected_format)
    throw Error(root.path() + " is not a " + expected_format + " file (its 'format' attribute is " +
                (root.has_attr("format") ? "'" + root.read_string("format") + "'" : "missing") +
                ")");
  const int64_t version = root.has_attr("format_version") ? root.read_int("format_version") : -1;
  if (version != kFormatVersion)
    throw Error(root.path() + " has " + expected_format + " format version " +
                std::to_string(version) + "; this splitinfer reads version " +
                std::to_string(kFormatVersion));
  check_content_digest(root, expected_format == "splitinfer-node"
                                 ? "the node's attributes or the layout of its weights"
                                 : "the graph's attributes or the layout of its datasets");
}

Model read_graph(const h5::Group& root) {
  Model model;
  model.name = root.has_attr("name") ? root.read_string("name") : "";
  model.source = root.has_attr("source") ? root.read_string("source") : "";
  model.meta = read_meta(root.open_group("meta"));
  if (root.has_attr("requantization"))
    model.requantization = requantization_from_name(root.read_string("requantization"));
  const h5::Group layers = root.open_group("layers");
  for (const std::string& name : layers.read_strings("order"))
    model.layers.push_back(read_layer(layers.open_group(name), name));
  const std::string output = root.read_string("output");
  model.output = model.find(output);
  if (model.output < 0) throw Error("the output layer '" + output + "' is not in /layers");
  return model;
}

void write_graph(const h5::Group& root, const Model& model) {
  root.write_string("name", model.name);
  root.write_string("source", model.source);
  root.write_string("output", model.layers[model.output].name);
  // Only int8 models say how they requantize (a float model with it would
  // read as quantized to tools that check for the attribute).
  const bool quantized = std::any_of(model.layers.begin(), model.layers.end(),
                                     [](const Layer& layer) { return layer.quantized(); });
  if (quantized) root.write_string("requantization", requantization_name(model.requantization));
  write_meta(root.create_group("meta"), model.meta);
  const h5::Group layers = root.create_group("layers");
  std::vector<std::string> order;
  for (const Layer& layer : model.layers) {
    order.push_back(layer.name);
    write_layer(layers.create_group(layer.name), layer);
  }
  layers.write_strings("order", order);
}

void read_weights(const h5::Group& weights_group, Model& model) {
  for (Layer& layer : model.layers) {
    if (!weights_group.has(layer.name)) continue;
    const h5::Group group = weights_group.open_group(layer.name);
    for (const std::string& blob_name : group.members()) {
      Blob blob;
      blob.dtype = group.dataset_dtype(blob_name);
      if (blob.dtype == DType::f32)
        blob.values = group.read_floats(blob_name, blob.dims);
      else
        blob.raw = group.read_raw(blob_name, blob.dtype, blob.dims);
      layer.weights[blob_name] = std::move(blob);
    }
  }
}

void write_weights(const h5::Group& weights_group, const Model& model) {
  for (const Layer& layer : model.layers) {
    if (layer.weights.empty()) continue;
    const h5::Group group = weights_group.has(layer.name) ? weights_group.open_group(layer.name)
                                                          : weights_group.create_group(layer.name);
    for (const auto& [blob_name, blob] : layer.weights) {
      if (blob.dtype == DType::f32)
        group.write_floats(blob_name, blob.dims, blob.values.data());
      else
        group.write_raw(blob_name, blob.dims, blob.dtype, blob.raw.data());
    }
  }
}

Model read_model(const std::string& path) {
  const h5::Group root = h5::open_file(path);
  check_format(root, "splitinfer-model");
  Model model = read_graph(root);
  read_weights(root.open_group("layers"), model);
  validate(model, true);
  return model;
}

void write_model(const std::string& path, const Model& model) {
  const h5::Group root = h5::create_file(path);
  root.write_string("format", "splitinfer-model");
  root.write_int("format_version", kFormatVersion);
  write_graph(root, model);
  write_weights(root.open_group("layers"), model);
  seal(root);
}

}  // namespace splitinfer
