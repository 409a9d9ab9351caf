#pragma once
// Models built by hand for the node-program tests: layers appended with
// their output shapes and seeded random weights, validated as loading a file
// validates; seeded random conv/pool stacks; and a node's weight slices.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <ostream>
#include <random>
#include <string>
#include <vector>

#include "graph.hpp"
#include "ops/conv2d.hpp"
#include "ops/pool.hpp"
#include "region.hpp"
#include "test_util.hpp"

namespace splitinfer {

// gtest prints regions as c[..) y[..) x[..).
inline void PrintTo(const Region& region, std::ostream* os) { *os << region.str(); }

}  // namespace splitinfer

namespace splitinfer::testing {

inline Conv2dParams conv_params(int64_t kernel, int64_t stride, int64_t pad, int64_t groups = 1,
                                int64_t dilation = 1) {
  return conv2d_params(kernel, kernel, stride, stride, pad, pad, dilation, dilation, groups);
}

class ModelBuilder {
 public:
  explicit ModelBuilder(const Shape& input_shape, uint32_t seed = 100) : seed_(seed) {
    model_.name = "hand-built";
    model_.meta.input_shape = input_shape;
    Layer input;
    input.name = "input";
    input.output_shape = input_shape;
    model_.layers.push_back(input);
  }

  const Shape& shape(const std::string& name) const {
    const int index = model_.find(name);
    EXPECT_GE(index, 0) << name;
    return model_.layers.at(index).output_shape;
  }
  const std::string& last() const { return model_.layers.back().name; }

  void unary(const std::string& name, Op op, const std::string& input) {
    add(name, op, {input}, shape(input));
  }

  void conv(const std::string& name, const std::string& input, int64_t out_c, const Conv2dParams& p,
            bool bias = true) {
    const Shape in = shape(input);
    Layer& layer =
        add(name, Op::conv2d, {input},
            nchw(1, out_c, window_output_size(in.h, p.kernel_h, p.stride_h, p.pad_h, p.dilation_h),
                 window_output_size(in.w, p.kernel_w, p.stride_w, p.pad_w, p.dilation_w)));
    layer.conv = p;
    layer.weights["weight"] = random_blob({out_c, in.c / p.groups, p.kernel_h, p.kernel_w});
    if (bias) layer.weights["bias"] = random_blob({out_c});
  }

  void pool(const std::string& name, Op op, const std::string& input, const PoolParams& p) {
    const Shape in = shape(input);
    Layer& layer = add(
        name, op, {input},
        nchw(1, in.c,
             pool_output_size(in.h, p.kernel_h, p.stride_h, p.pad_h, p.dilation_h, p.ceil_mode),
             pool_output_size(in.w, p.kernel_w, p.stride_w, p.pad_w, p.dilation_w, p.ceil_mode)));
    layer.pool = p;
  }

  void global_avgpool(const std::string& name, const std::string& input) {
    add(name, Op::global_avgpool, {input}, nchw(1, shape(input).c, 1, 1));
  }

  void batchnorm(const std::string& name, const std::string& input) {
    const int64_t channels = shape(input).c;
    Layer& layer = add(name, Op::batchnorm, {input}, shape(input));
    layer.weights["gamma"] = random_blob({channels}, 0.5f, 1.5f);
    layer.weights["beta"] = random_blob({channels});
    layer.weights["running_mean"] = random_blob({channels});
    layer.weights["running_var"] = random_blob({channels}, 0.5f, 2.0f);
  }

  void binary(const std::string& name, Op op, const std::string& a, const std::string& b) {
    const Shape shape_a = shape(a), shape_b = shape(b);
    add(name, op, {a, b}, shape_a.elements() >= shape_b.elements() ? shape_a : shape_b);
  }

  void concat(const std::string& name, const std::vector<std::string>& inputs) {
    Shape out = shape(inputs[0]);
    out.c = 0;
    for (const std::string& input : inputs) out.c += shape(input).c;
    add(name, Op::concat, inputs, out);
  }

  void slice(const std::string& name, const std::string& input, int64_t start, int64_t stop) {
    Shape out = shape(input);
    out.c = stop - start;
    Layer& layer = add(name, Op::slice, {input}, out);
    layer.slice_start = start;
    layer.slice_stop = stop;
  }

  void channel_shuffle(const std::string& name, const std::string& input, int64_t groups) {
    add(name, Op::channel_shuffle, {input}, shape(input)).shuffle_groups = groups;
  }

  void upsample(const std::string& name, const std::string& input, int64_t scale_h,
                int64_t scale_w) {
    const Shape in = shape(input);
    Layer& layer =
        add(name, Op::upsample_nearest, {input}, nchw(1, in.c, in.h * scale_h, in.w * scale_w));
    layer.scale_h = scale_h;
    layer.scale_w = scale_w;
  }
  void upsample(const std::string& name, const std::string& input, int64_t scale) {
    upsample(name, input, scale, scale);
  }

  // Linear interpolation to out_h x out_w with the corners aligned (2 taps).
  void resize(const std::string& name, const std::string& input, int64_t out_h, int64_t out_w) {
    const Shape in = shape(input);
    Layer& layer = add(name, Op::resize, {input}, nchw(1, in.c, out_h, out_w));
    const auto linear = [](int64_t from, int64_t to) {
      ResizeTaps taps{2, {}, {}, {}};
      for (int64_t o = 0; o < to; ++o) {
        const double x = to > 1 ? static_cast<double>(o * (from - 1)) / static_cast<double>(to - 1) : 0;
        const int64_t low = std::min<int64_t>(static_cast<int64_t>(x), from - 1);
        taps.index.push_back(low);
        taps.index.push_back(std::min<int64_t>(low + 1, from - 1));
        taps.weight.push_back(static_cast<float>(1 - (x - static_cast<double>(low))));
        taps.weight.push_back(static_cast<float>(x - static_cast<double>(low)));
      }
      return taps;
    };
    layer.resize_h = linear(in.h, out_h);
    layer.resize_w = linear(in.w, out_w);
  }

  void flatten(const std::string& name, const std::string& input) {
    add(name, Op::flatten, {input}, Shape{1, shape(input).elements(), 1, 1, 2});
  }

  void linear(const std::string& name, const std::string& input, int64_t outputs) {
    const int64_t inputs = shape(input).c;
    Layer& layer = add(name, Op::linear, {input}, Shape{1, outputs, 1, 1, 2});
    layer.weights["weight"] = random_blob({outputs, inputs});
    layer.weights["bias"] = random_blob({outputs});
  }

  // Validates the model with its weights, as loading a file does.
  Model finish(const std::string& output) {
    model_.output = model_.find(output);
    validate(model_, true);
    return std::move(model_);
  }

 private:
  Layer& add(const std::string& name, Op op, const std::vector<std::string>& inputs,
             const Shape& out) {
    Layer layer;
    layer.name = name;
    layer.op = op;
    layer.input_names = inputs;
    layer.output_shape = out;
    model_.layers.push_back(std::move(layer));
    return model_.layers.back();
  }

  Blob random_blob(const std::vector<int64_t>& dims, float low = -1.0f, float high = 1.0f) {
    Blob blob;
    blob.dims = dims;
    int64_t count = 1;
    for (int64_t extent : dims) count *= extent;
    blob.values = random_values(static_cast<size_t>(count), ++seed_, low, high);
    return blob;
  }

  Model model_;
  uint32_t seed_;
};

inline int64_t uniform(std::mt19937& generator, int64_t low, int64_t high) {  // [low, high]
  return std::uniform_int_distribution<int64_t>(low, high)(generator);
}

// A seeded random region of a map of `shape`: at least one channel, row and column.
inline Region random_region(std::mt19937& generator, const Shape& shape) {
  Region region;
  region.c0 = uniform(generator, 0, shape.c - 1);
  region.c1 = uniform(generator, region.c0 + 1, shape.c);
  region.y0 = uniform(generator, 0, shape.h - 1);
  region.y1 = uniform(generator, region.y0 + 1, shape.h);
  region.x0 = uniform(generator, 0, shape.w - 1);
  region.x1 = uniform(generator, region.x0 + 1, shape.w);
  return region;
}

// A seeded random stack of 2..6 layers on a small input: convolutions (kernel
// 1..3, stride 1..3, padding up to the dilated kernel's reach, dilation 1..2,
// groups 1, 2 or depthwise), max and average pools (ceil_mode either way), relus
// and residual adds. Every map keeps at least one row and column.
inline Model random_stack(uint32_t seed) {
  std::mt19937 generator(seed);
  ModelBuilder b(
      nchw(1, uniform(generator, 1, 4) * 2, uniform(generator, 3, 13), uniform(generator, 3, 13)),
      seed * 1000);
  const int layers = static_cast<int>(uniform(generator, 2, 6));
  for (int added = 0, attempts = 0; added < layers && attempts < 100; ++attempts) {
    const std::string input = b.last(), name = "layer" + std::to_string(added + 1);
    const Shape in = b.shape(input);
    const int64_t kind = uniform(generator, 0, 9);
    if (kind <= 4) {  // conv
      Conv2dParams p = conv_params(uniform(generator, 1, 3), uniform(generator, 1, 3), 0);
      p.dilation_h = p.dilation_w = p.kernel_h > 1 ? uniform(generator, 1, 2) : 1;
      p.pad_h = p.pad_w = uniform(generator, 0, (p.kernel_h - 1) * p.dilation_h);
      // Every map has an even channel count, so groups 2 always divides it.
      const int64_t choice = uniform(generator, 0, 2);  // plain, two groups, depthwise
      p.groups = choice == 0 ? 1 : choice == 1 ? 2 : in.c;
      const int64_t out_c =
          choice == 2 ? in.c * uniform(generator, 1, 2) : uniform(generator, 1, 4) * 2;
      if (window_output_size(in.h, p.kernel_h, p.stride_h, p.pad_h, p.dilation_h) < 1 ||
          window_output_size(in.w, p.kernel_w, p.stride_w, p.pad_w, p.dilation_w) < 1)
        continue;
      b.conv(name, input, out_c, p);
    } else if (kind <= 7) {  // pool
      PoolParams p = pool_params(uniform(generator, 1, 3), uniform(generator, 1, 3), 0,
                                 uniform(generator, 0, 1) == 1);
      p.pad_h = p.pad_w = uniform(generator, 0, p.kernel_h / 2);
      const Op op = uniform(generator, 0, 1) ? Op::maxpool : Op::avgpool;
      if (op == Op::maxpool && p.kernel_h > 1)
        p.dilation_h = p.dilation_w = uniform(generator, 1, 2);
      if (op == Op::avgpool) p.count_include_pad = uniform(generator, 0, 1) == 1;
      if (pool_output_size(in.h, p.kernel_h, p.stride_h, p.pad_h, p.dilation_h, p.ceil_mode) < 1 ||
          pool_output_size(in.w, p.kernel_w, p.stride_w, p.pad_w, p.dilation_w, p.ceil_mode) < 1)
        continue;
      b.pool(name, op, input, p);
    } else if (kind == 8) {
      b.unary(name, Op::relu, input);
    } else {  // a residual block: conv keeping the shape, then add
      b.conv(name + "_body", input, in.c, conv_params(3, 1, 1));
      b.binary(name, Op::add, name + "_body", input);
    }
    ++added;
  }
  return b.finish(b.last());
}

// The model as node `node` holds it: every layer's weights cut to the output
// channels (rows) of the node's region, none for layers it does not compute.
inline Model node_model(const Model& model, const std::vector<std::vector<Region>>& regions,
                        int node) {
  Model mine = model;
  std::vector<Region> own;
  for (size_t i = 0; i < model.layers.size(); ++i) {
    const Region& region = regions[i][node - 1];
    own.push_back(region);
    for (auto& [name, blob] : mine.layers[i].weights) {
      const size_t row = blob.values.size() / blob.dims[0];  // values per output channel
      if (region.empty()) {
        blob.values.clear();
        blob.dims[0] = 0;
        continue;
      }
      blob.values.assign(blob.values.begin() + region.c0 * static_cast<int64_t>(row),
                         blob.values.begin() + region.c1 * static_cast<int64_t>(row));
      blob.dims[0] = region.c1 - region.c0;
    }
    if (region.empty()) mine.layers[i].weights.clear();
  }
  validate_weight_slices(mine, own);
  return mine;
}

}  // namespace splitinfer::testing
