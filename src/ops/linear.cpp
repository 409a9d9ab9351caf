#include "linear.hpp"

#include <algorithm>
#include <cstdint>

#include "gemm.hpp"
#include "intrinsics.hpp"

namespace splitinfer {

void linear_reference(const Tensor& in, const float* weight, const float* bias, Tensor& out) {
  const int64_t inputs = in.shape.elements() / in.shape.n;
  const int64_t outputs = out.shape.elements() / out.shape.n;
  for (int64_t n = 0; n < out.shape.n; ++n)
    for (int64_t o = 0; o < outputs; ++o) {
      float sum = bias ? bias[o] : 0.0f;
      for (int64_t i = 0; i < inputs; ++i) sum += weight[o * inputs + i] * in.f32()[n * inputs + i];
      out.f32()[n * outputs + o] = sum;
    }
}

namespace {

#if SPLITINFER_FLOAT_AVX512 && defined(__FMA__)
// r[k] lane l <- r[l] lane k: pairs of rows interleaved, then pairs of
// pairs (64-bit), then 128-bit blocks twice.
inline void transpose16(__m512 (&r)[16]) {
  __m512 t[16];
#pragma GCC unroll 8
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  // u[4i + k], block j: column 4j + k of rows 4i..4i+3.
  __m512 u[16];
#pragma GCC unroll 4
  for (int i = 0; i < 4; ++i) {
    const __m512d a = _mm512_castps_pd(t[4 * i]), b = _mm512_castps_pd(t[4 * i + 1]);
    const __m512d c = _mm512_castps_pd(t[4 * i + 2]), d = _mm512_castps_pd(t[4 * i + 3]);
    u[4 * i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
    u[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
    u[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d));
    u[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d));
  }
  // Column 4j + k: block i of it is block j of u[4i + k].
#pragma GCC unroll 4
  for (int k = 0; k < 4; ++k) {
    const __m512 v0 = _mm512_shuffle_f32x4(u[k], u[4 + k], 0x44);
    const __m512 v1 = _mm512_shuffle_f32x4(u[k], u[4 + k], 0xee);
    const __m512 v2 = _mm512_shuffle_f32x4(u[8 + k], u[12 + k], 0x44);
    const __m512 v3 = _mm512_shuffle_f32x4(u[8 + k], u[12 + k], 0xee);
    r[k] = _mm512_shuffle_f32x4(v0, v2, 0x88);
    r[4 + k] = _mm512_shuffle_f32x4(v0, v2, 0xdd);
    r[8 + k] = _mm512_shuffle_f32x4(v1, v3, 0x88);
    r[12 + k] = _mm512_shuffle_f32x4(v1, v3, 0xdd);
  }
}

// One input row through the layer with 16 neurons per vector, kBlocks
// vectors at once: each step transposes 16 neurons' next 16 weights in
// registers and adds their products in input order, from the bias, one
// rounding each (fused), as gemm_in_depth_order() adds them with one column
// and its lanes idle.
template <int kBlocks>
void neuron_blocks(const float* weight, const float* x, const float* bias, float* out,
                   int64_t first, int64_t outputs, int64_t inputs) {
  __m512 sum[kBlocks];
  int64_t rows[kBlocks];
#pragma GCC unroll 4
  for (int b = 0; b < kBlocks; ++b) {
    const int64_t o = first + 16 * b;
    rows[b] = std::clamp<int64_t>(outputs - o, 0, 16);
    sum[b] = bias ? _mm512_maskz_loadu_ps(lanes16(0, rows[b]), bias + o) : _mm512_setzero_ps();
  }
  for (int64_t i = 0; i < inputs; i += 16) {
    const int64_t count = std::min<int64_t>(16, inputs - i);
    const __mmask16 columns = lanes16(0, count);
#pragma GCC unroll 4
    for (int b = 0; b < kBlocks; ++b) {
      __m512 w[16];
#pragma GCC unroll 16
      for (int l = 0; l < 16; ++l)
        w[l] = l < rows[b]
                   ? _mm512_maskz_loadu_ps(columns, weight + (first + 16 * b + l) * inputs + i)
                   : _mm512_setzero_ps();
      transpose16(w);
      if (count == 16) {
#pragma GCC unroll 16
        for (int k = 0; k < 16; ++k)
          sum[b] = _mm512_fmadd_ps(w[k], _mm512_set1_ps(x[i + k]), sum[b]);
      } else {
        for (int k = 0; k < count; ++k)
          sum[b] = _mm512_fmadd_ps(w[k], _mm512_set1_ps(x[i + k]), sum[b]);
      }
    }
  }
#pragma GCC unroll 4
  for (int b = 0; b < kBlocks; ++b)
    _mm512_mask_storeu_ps(out + first + 16 * b, lanes16(0, rows[b]), sum[b]);
}
#endif

}  // namespace

void linear(const Tensor& in, const float* weight, const float* bias, Tensor& out) {
  const int64_t inputs = in.shape.elements() / in.shape.n;
  const int64_t outputs = out.shape.elements() / out.shape.n;
  // Each neuron summed in input order from its bias, so a range of neurons
  // (a node's share) equals the same range of all of them.
#if SPLITINFER_FLOAT_AVX512 && defined(__FMA__)
  for (int64_t n = 0; n < out.shape.n; ++n) {
    const float* x = in.f32() + n * inputs;
    float* y = out.f32() + n * outputs;
    int64_t first = 0;
    for (; first + 32 < outputs; first += 32)
      neuron_blocks<2>(weight, x, bias, y, first, outputs, inputs);
    if (outputs - first > 16)
      neuron_blocks<2>(weight, x, bias, y, first, outputs, inputs);
    else
      neuron_blocks<1>(weight, x, bias, y, first, outputs, inputs);
  }
#else
  // The input as a [inputs, 1] column.
  for (int64_t n = 0; n < out.shape.n; ++n)
    gemm_in_depth_order(weight, in.f32() + n * inputs, bias, out.f32() + n * outputs, outputs,
                        inputs, 1);
#endif
}

}  // namespace splitinfer
