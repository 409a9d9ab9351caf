#include "quantized.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>

#include "../error.hpp"

namespace splitinfer {
namespace {

constexpr int64_t kInt32Min = std::numeric_limits<int32_t>::min();
constexpr int64_t kInt32Max = std::numeric_limits<int32_t>::max();

int64_t rne(float value) {
  // cvtps2dq answers INT32_MIN for what int32 cannot hold (NaN included).
  if (!(value >= -2147483648.0f && value < 2147483648.0f)) return kInt32Min;
  return std::lrintf(value);
}

uint8_t saturate(int64_t value, int32_t lo, int32_t hi) {
  return static_cast<uint8_t>(std::clamp<int64_t>(value, lo, hi));
}

// gemmlowp's SaturatingRoundingDoublingHighMul and RoundingDivideByPOT.
int32_t doubling_high_mul(int32_t a, int32_t b) {
  if (a == kInt32Min && b == kInt32Min) return static_cast<int32_t>(kInt32Max);
  const int64_t product = static_cast<int64_t>(a) * b;
  const int64_t nudge = product >= 0 ? (int64_t{1} << 30) : 1 - (int64_t{1} << 30);
  return static_cast<int32_t>((product + nudge) / (int64_t{1} << 31));
}

int32_t rounding_divide_by_pot(int32_t x, int exponent) {
  const int32_t mask = static_cast<int32_t>((int64_t{1} << exponent) - 1);
  const int32_t remainder = x & mask;
  const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
  return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

QuantizedWeights offset_channel(const QuantizedWeights& w, int64_t channel, int64_t per_channel) {
  QuantizedWeights at = w;
  at.weight += channel * per_channel;
  if (at.bias) at.bias += channel;
  if (w.per_channel) at.scale += channel, at.zero_point += channel;
  return at;
}

Requantizer channel_requantizer(const QuantizedLayer& q, const QuantizedWeights& w, int64_t oc) {
  return Requantizer(q.mode, channel_multiplier(q, w, oc));
}

}  // namespace

float channel_multiplier(const QuantizedLayer& q, const QuantizedWeights& w, int64_t oc) {
  const float w_scale = w.scale[w.per_channel ? oc : 0];
  return (w_scale * q.in[0].scale) * (1.0f / q.out.scale);
}

Requantizer::Requantizer(Requantization mode, float multiplier)
    : mode_(mode), multiplier_(multiplier) {
  if (mode == Requantization::pytorch) return;
  // TFLite's QuantizeMultiplier: multiplier = q31 * 2^(shift - 31), q31 in [2^30, 2^31).
  int exponent = 0;
  const double mantissa = std::frexp(static_cast<double>(multiplier), &exponent);
  int64_t q31 = std::llround(mantissa * static_cast<double>(int64_t{1} << 31));
  if (q31 == (int64_t{1} << 31)) q31 /= 2, ++exponent;
  if (exponent < -31) q31 = 0, exponent = 0;  // too small: every result rounds to 0
  if (exponent > 30) q31 = kInt32Max, exponent = 30;
  multiplier_q31_ = static_cast<int32_t>(q31);
  shift_ = exponent;
}

int64_t Requantizer::operator()(int32_t acc) const {
  if (mode_ == Requantization::pytorch) return rne(static_cast<float>(acc) * multiplier_);
  const int left = std::max(shift_, 0), right = std::max(-shift_, 0);
  const int64_t shifted =
      std::clamp<int64_t>(static_cast<int64_t>(acc) << left, kInt32Min, kInt32Max);
  return rounding_divide_by_pot(doubling_high_mul(static_cast<int32_t>(shifted), multiplier_q31_),
                                right);
}

void quantize_reference(const QuantizedLayer& q, const Tensor& in, Tensor& out) {
  const float inverse = 1.0f / q.out.scale;
  const float* from = in.f32();
  uint8_t* to = out.u8();  // may be `in`'s memory: element i is written after floats 0..i are read
  const int64_t count = out.shape.elements();
  for (int64_t i = 0; i < count; ++i)
    to[i] = saturate(q.out.zero_point + rne(from[i] * inverse), 0, 255);
}

void quantize_pixels(const QuantizedLayer& q, const ModelMeta& meta, int64_t first_channel,
                     const Tensor& in, Tensor& out) {
  const float inverse = 1.0f / q.out.scale;
  const uint8_t* from = in.u8();
  uint8_t* to = out.u8();  // may be `in`'s memory
  const int64_t plane = out.shape.h * out.shape.w;
  for (int64_t c = 0; c < out.shape.c; ++c) {
    // The float of every pixel value of this channel, computed once.
    float normalised[256];
    for (int value = 0; value < 256; ++value)
      normalised[value] = normalised_pixel(meta, first_channel + c, value);
    for (int64_t i = c * plane; i < (c + 1) * plane; ++i)
      to[i] = saturate(q.out.zero_point + rne(normalised[from[i]] * inverse), 0, 255);
  }
}

void dequantize(const QuantizedLayer& q, const Tensor& in, Tensor& out) {
  const float scale = q.in[0].scale;
  const int32_t zero_point = q.in[0].zero_point;
  const int64_t count = out.shape.elements();
  for (int64_t i = 0; i < count; ++i)
    out.f32()[i] = static_cast<float>(in.u8()[i] - zero_point) * scale;
}

void conv2d_q_reference(const QuantizedLayer& q, const Conv2dParams& p, const Tensor& in,
                        const Placement& in_at, const QuantizedWeights& w, Tensor& out,
                        const Placement& out_at) {
  const int64_t out_channels = out_at.channels(out), in_channels = in_at.channels(in);
  const int64_t out_per_group = out_channels / p.groups, in_per_group = in_channels / p.groups;
  const int64_t per_channel = in_per_group * p.kernel_h * p.kernel_w;
  const int32_t x_zp = q.in[0].zero_point;
  const int64_t out_h = out.shape.h, out_w = out.shape.w, plane = out_h * out_w;
  const int64_t in_plane = in.shape.h * in.shape.w;
  std::vector<int32_t> accumulators(static_cast<size_t>(plane));
  int32_t* acc = accumulators.data();
  // The output rows and columns whose tap (ky or kx) lands inside the map;
  // the others read padding, where x - x_zp is 0.
  const auto valid = [](int64_t out0, int64_t count, int64_t stride, int64_t offset, int64_t full) {
    int64_t first = 0, last = count;
    while (first < last && (out0 + first) * stride + offset < 0) ++first;
    while (last > first && (out0 + last - 1) * stride + offset >= full) --last;
    return std::pair<int64_t, int64_t>{first, last};
  };
  std::vector<std::pair<int64_t, int64_t>> rows(p.kernel_h), columns(p.kernel_w);
  for (int64_t ky = 0; ky < p.kernel_h; ++ky)
    rows[ky] = valid(out_at.row0, out_h, p.stride_h, ky * p.dilation_h - p.pad_h, in_at.full_h);
  for (int64_t kx = 0; kx < p.kernel_w; ++kx)
    columns[kx] = valid(out_at.col0, out_w, p.stride_w, kx * p.dilation_w - p.pad_w, in_at.full_w);
  // A 1x1, stride-1 convolution over a tile of the same rows and columns: whole planes at once.
  const bool pointwise = p.kernel_h == 1 && p.kernel_w == 1 && p.stride_h == 1 && p.stride_w == 1 &&
                         p.pad_h == 0 && p.pad_w == 0 && in_at.row0 == out_at.row0 &&
                         in_at.col0 == out_at.col0 && in.shape.h == out_h && in.shape.w == out_w;
  for (int64_t c = 0; c < out.shape.c; ++c) {
    const int64_t oc = out_at.channel0 + c;  // in the whole layer
    const QuantizedWeights wc = offset_channel(w, c, per_channel);
    const int32_t w_zp = wc.zero_point[0];
    const int64_t first_in = oc / out_per_group * in_per_group - in_at.channel0;  // in the tile
    std::fill(acc, acc + plane, wc.bias ? wc.bias[0] : 0);
    for (int64_t ic = 0; ic < in_per_group; ++ic) {
      const uint8_t* channel = in.u8() + (first_in + ic) * in_plane;
      if (pointwise) {
        const int32_t weight = wc.weight[ic] - w_zp;
        for (int64_t i = 0; i < plane; ++i) acc[i] += (channel[i] - x_zp) * weight;
        continue;
      }
      for (int64_t ky = 0; ky < p.kernel_h; ++ky) {
        for (int64_t kx = 0; kx < p.kernel_w; ++kx) {
          const int32_t weight = wc.weight[(ic * p.kernel_h + ky) * p.kernel_w + kx] - w_zp;
          const auto [first, last] = columns[kx];
          if (weight == 0 || first >= last) continue;
          for (int64_t oy = rows[ky].first; oy < rows[ky].second; ++oy) {
            const int64_t iy = (out_at.row0 + oy) * p.stride_h - p.pad_h + ky * p.dilation_h;
            // Input column of output column ox: (col0 + ox) * stride + kx * dilation - pad.
            const int64_t column0 =
                out_at.col0 * p.stride_w + kx * p.dilation_w - p.pad_w - in_at.col0;
            const uint8_t* row = channel + (iy - in_at.row0) * in.shape.w;
            int32_t* sums = acc + oy * out_w;
            if (p.stride_w == 1) {
              for (int64_t ox = first; ox < last; ++ox)
                sums[ox] += (row[column0 + ox] - x_zp) * weight;
            } else {
              for (int64_t ox = first; ox < last; ++ox)
                sums[ox] += (row[column0 + ox * p.stride_w] - x_zp) * weight;
            }
          }
        }
      }
    }
    const Requantizer requantize = channel_requantizer(q, w, c);
    uint8_t* target = out.u8() + c * plane;
    for (int64_t i = 0; i < plane; ++i)
      target[i] = saturate(requantize(acc[i]) + q.out.zero_point, q.clamp_lo, q.clamp_hi);
  }
}

void linear_q_reference(const QuantizedLayer& q, const Tensor& in, const QuantizedWeights& w,
                        Tensor& out) {
  const int64_t features = in.shape.c * in.shape.h * in.shape.w;
  const int32_t x_zp = q.in[0].zero_point;
  for (int64_t c = 0; c < out.shape.c; ++c) {
    const QuantizedWeights wc = offset_channel(w, c, features);
    const int32_t w_zp = wc.zero_point[0];
    int32_t acc = wc.bias ? wc.bias[0] : 0;
    for (int64_t k = 0; k < features; ++k) acc += (in.u8()[k] - x_zp) * (wc.weight[k] - w_zp);
    out.u8()[c] =
        saturate(channel_requantizer(q, w, c)(acc) + q.out.zero_point, q.clamp_lo, q.clamp_hi);
  }
}

QnnpackAdd::QnnpackAdd(const QuantizedLayer& q) {
  // qnnpack's q8vadd parameters, in float32 (models/quantization.md 3.3).
  const float a_ratio = q.in[0].scale / q.out.scale, b_ratio = q.in[1].scale / q.out.scale;
  const int exponent =
      static_cast<int>(std::bit_cast<uint32_t>(std::max(a_ratio, b_ratio)) >> 23) - 127;
  shift = 21 - exponent;
  const float power = std::ldexp(1.0f, shift);
  a_mul = std::lrintf(a_ratio * power), b_mul = std::lrintf(b_ratio * power);
  offset = -(a_mul * q.in[0].zero_point + b_mul * q.in[1].zero_point);
}

void add_q_reference(const QuantizedLayer& q, const Tensor& a, const Tensor& b, Tensor& out) {
  const QnnpackAdd add(q);
  const int64_t mask = (int64_t{1} << add.shift) - 1, threshold = mask >> 1;
  const int64_t count = out.shape.elements();
  for (int64_t i = 0; i < count; ++i) {
    const int64_t acc = add.offset + a.u8()[i] * add.a_mul + b.u8()[i] * add.b_mul;
    const int64_t remainder = (acc & mask) - (acc < 0 ? 1 : 0);
    const int64_t rounded = (acc >> add.shift) + (remainder > threshold ? 1 : 0);
    out.u8()[i] = saturate(rounded + q.out.zero_point, q.clamp_lo, q.clamp_hi);
  }
}

void mul_q(const QuantizedLayer& q, const Tensor& a, const Tensor& b, Tensor& out) {
  const Requantizer requantize(q.mode, q.in[0].scale * q.in[1].scale * (1.0f / q.out.scale));
  // Either operand may be [N, C, 1, 1], broadcast over the other's rows and
  // columns (the product is the same either way round).
  const bool a_small = a.shape.elements() < b.shape.elements();
  const Tensor& map = a_small ? b : a;
  const Tensor& gate = a_small ? a : b;
  const int32_t map_zp = q.in[a_small ? 1 : 0].zero_point,
                gate_zp = q.in[a_small ? 0 : 1].zero_point;
  const bool broadcast = gate.shape.elements() != map.shape.elements();
  const int64_t plane = map.shape.h * map.shape.w, count = out.shape.elements();
  for (int64_t i = 0; i < count; ++i) {
    const int32_t product =
        (map.u8()[i] - map_zp) * (gate.u8()[broadcast ? i / plane : i] - gate_zp);
    out.u8()[i] = saturate(requantize(product) + q.out.zero_point, q.clamp_lo, q.clamp_hi);
  }
}

void concat_q(const QuantizedLayer& q, const std::vector<const Tensor*>& inputs,
              const std::vector<QuantParams>& input_params, Tensor& out) {
  const float inverse = 1.0f / q.out.scale;
  uint8_t* target = out.u8();
  for (size_t k = 0; k < inputs.size(); ++k) {
    const Tensor& in = *inputs[k];
    const QuantParams& from = input_params[k];
    const int64_t count = in.shape.elements();
    if (from == q.out) {
      std::copy(in.u8(), in.u8() + count, target);
    } else {
      for (int64_t i = 0; i < count; ++i) {
        const float real = static_cast<float>(in.u8()[i] - from.zero_point) * from.scale;
        target[i] = saturate(q.out.zero_point + rne(real * inverse), 0, 255);
      }
    }
    target += count;
  }
}

void global_avgpool_q(const QuantizedLayer& q, const Tensor& in, Tensor& out) {
  const int64_t plane = in.shape.h * in.shape.w;
  const Requantizer requantize(q.mode, q.in[0].scale / (q.out.scale * static_cast<float>(plane)));
  for (int64_t c = 0; c < in.shape.n * in.shape.c; ++c) {
    int32_t acc = 0;
    const uint8_t* values = in.u8() + c * plane;
    for (int64_t i = 0; i < plane; ++i) acc += values[i] - q.in[0].zero_point;
    out.u8()[c] = saturate(requantize(acc) + q.out.zero_point, q.clamp_lo, q.clamp_hi);
  }
}

void clamp_q(const QuantizedLayer& q, const Tensor& in, Tensor& out) {
  const int64_t count = out.shape.elements();
  for (int64_t i = 0; i < count; ++i) out.u8()[i] = saturate(in.u8()[i], q.clamp_lo, q.clamp_hi);
}

void lookup_q(const QuantizedLayer& q, Op op, const Tensor& in, Tensor& out) {
  uint8_t table[256];
  const float inverse = 1.0f / q.out.scale, zero_point = static_cast<float>(q.out.zero_point);
  for (int value = 0; value < 256; ++value) {
    const float x = q.in[0].scale * static_cast<float>(value - q.in[0].zero_point);
    const float gate = std::min(std::max(x + 3.0f, 0.0f), 6.0f);
    const float y = op == Op::hardswish ? (x * gate) / 6.0f : gate / 6.0f;
    const float scaled = inverse * y;  // then + zero point: two roundings, never an FMA
    const float t = std::min(std::max(scaled + zero_point, 0.0f), 255.0f);
    table[value] = saturate(rne(t), q.clamp_lo, q.clamp_hi);
  }
  const int64_t count = out.shape.elements();
  for (int64_t i = 0; i < count; ++i) out.u8()[i] = table[in.u8()[i]];
}

}  // namespace splitinfer
