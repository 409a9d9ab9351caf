// splitinfer_kernel_bench: the core's peak and the kernels' rates against it.
//
//   splitinfer_kernel_bench [Google Benchmark options, e.g. --benchmark_format=json]
//
// peak/fp32_fma: a register-resident loop of independent fused multiply-adds
//   on the widest float vectors the CPU has (AVX-512, else AVX2, else 4-lane
//   vectors); counter "gmacs" = float lanes multiplied and added per ns.
// peak/int8_vnni: the same with AVX-512 VNNI's vpdpbusd (4 u8 x s8 products
//   summed into each int32 lane, 64 per instruction); skipped without VNNI.
// peak/int8_avx2_madd: AVX2's vpmaddwd and vpaddd (16 int16 products each),
//   the int8 kernels' instructions on CPUs without VNNI.
// conv/<layer>: conv2d() on the float32 shapes of resnet18's 3x3 stages and
//   mobilenet_v2's pointwise and depthwise layers, the whole map on one
//   core; counter "gmacs" = the layer's multiply-adds per ns.
// conv_q/<layer>: conv2d_q() on mobilenet_v2's int8 depthwise shapes (and a
//   pointwise one) and resnet18's 3x3 stages, the same counter.
// jobs/bench runs it and prints each rate as a fraction of the peaks.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <random>
#include <vector>

#include "conv2d.hpp"
#include "linear.hpp"
#include "pool.hpp"
#include "quantized.hpp"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace splitinfer {
namespace {

constexpr int kChains = 24;  // independent accumulators: latency 4 x 2 pipes needs 8
constexpr int64_t kSteps = 1 << 16;

#if defined(__x86_64__)
__attribute__((target("avx512f"))) void fma_avx512(int64_t steps, float* sink) {
  __m512 acc[kChains];
  for (int i = 0; i < kChains; ++i) acc[i] = _mm512_set1_ps(0.001f * static_cast<float>(i));
  const __m512 a = _mm512_set1_ps(0.999f), b = _mm512_set1_ps(0.0001f);
  for (int64_t s = 0; s < steps; ++s)
#pragma GCC unroll 24
    for (int i = 0; i < kChains; ++i) acc[i] = _mm512_fmadd_ps(acc[i], a, b);
  float lanes[16];
  __m512 total = acc[0];
  for (int i = 1; i < kChains; ++i) total = _mm512_add_ps(total, acc[i]);
  _mm512_storeu_ps(lanes, total);
  *sink = lanes[0];
}

__attribute__((target("avx2,fma"))) void fma_avx2(int64_t steps, float* sink) {
  __m256 acc[kChains / 2];
  for (int i = 0; i < kChains / 2; ++i) acc[i] = _mm256_set1_ps(0.001f * static_cast<float>(i));
  const __m256 a = _mm256_set1_ps(0.999f), b = _mm256_set1_ps(0.0001f);
  for (int64_t s = 0; s < steps; ++s)
#pragma GCC unroll 12
    for (int i = 0; i < kChains / 2; ++i) acc[i] = _mm256_fmadd_ps(acc[i], a, b);
  float lanes[8];
  __m256 total = acc[0];
  for (int i = 1; i < kChains / 2; ++i) total = _mm256_add_ps(total, acc[i]);
  _mm256_storeu_ps(lanes, total);
  *sink = lanes[0];
}

// Twelve named accumulators (an array of them stays on the stack around the
// asm): vpdpbusd's latency of about 5 cycles times its 2 per cycle needs 10.
__attribute__((target("avx512f,avx512vnni"))) void vnni_avx512(int64_t steps, int32_t* sink) {
  __m512i c0 = _mm512_set1_epi32(0), c1 = _mm512_set1_epi32(1), c2 = _mm512_set1_epi32(2),
          c3 = _mm512_set1_epi32(3), c4 = _mm512_set1_epi32(4), c5 = _mm512_set1_epi32(5),
          c6 = _mm512_set1_epi32(6), c7 = _mm512_set1_epi32(7), c8 = _mm512_set1_epi32(8),
          c9 = _mm512_set1_epi32(9), c10 = _mm512_set1_epi32(10), c11 = _mm512_set1_epi32(11);
  const __m512i a = _mm512_set1_epi8(3), b = _mm512_set1_epi8(-2);
  for (int64_t s = 0; s < steps; ++s) {
    // As the int8 kernels do (quantized_fast.cpp): GCC 12 copies the
    // intrinsic's accumulator around every vpdpbusd.
#define SPLITINFER_DPBUSD(acc) asm("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(a), "v"(b))
    SPLITINFER_DPBUSD(c0);
    SPLITINFER_DPBUSD(c1);
    SPLITINFER_DPBUSD(c2);
    SPLITINFER_DPBUSD(c3);
    SPLITINFER_DPBUSD(c4);
    SPLITINFER_DPBUSD(c5);
    SPLITINFER_DPBUSD(c6);
    SPLITINFER_DPBUSD(c7);
    SPLITINFER_DPBUSD(c8);
    SPLITINFER_DPBUSD(c9);
    SPLITINFER_DPBUSD(c10);
    SPLITINFER_DPBUSD(c11);
#undef SPLITINFER_DPBUSD
  }
  const __m512i total = _mm512_add_epi32(
      _mm512_add_epi32(_mm512_add_epi32(_mm512_add_epi32(c0, c1), _mm512_add_epi32(c2, c3)),
                       _mm512_add_epi32(_mm512_add_epi32(c4, c5), _mm512_add_epi32(c6, c7))),
      _mm512_add_epi32(_mm512_add_epi32(c8, c9), _mm512_add_epi32(c10, c11)));
  int32_t lanes[16];
  _mm512_storeu_si512(lanes, total);
  *sink = lanes[0];
}

// AVX2's vpmaddwd (two int16 products summed into each int32 lane, 16 per
// instruction) and a vpaddd: what the AVX2 int8 kernels do per channel pair.
// Both in volatile asm: the vpmaddwd's operands never change, and GCC
// would otherwise compute it once before the loop (the loop then measured
// adds and the stack, not the multiplier). Ten chains (latency 3 + 1).
constexpr int kMaddChains = 10;  // c0 .. c9
__attribute__((target("avx2"))) void madd_avx2(int64_t steps, int32_t* sink) {
  __m256i c0 = _mm256_set1_epi32(0), c1 = _mm256_set1_epi32(1), c2 = _mm256_set1_epi32(2),
          c3 = _mm256_set1_epi32(3), c4 = _mm256_set1_epi32(4), c5 = _mm256_set1_epi32(5),
          c6 = _mm256_set1_epi32(6), c7 = _mm256_set1_epi32(7), c8 = _mm256_set1_epi32(8),
          c9 = _mm256_set1_epi32(9);
  const __m256i a = _mm256_set1_epi16(3), b = _mm256_set1_epi16(-2);
  for (int64_t s = 0; s < steps; ++s) {
#define SPLITINFER_MADD(acc)                                \
  do {                                                      \
    __m256i product;                                        \
    asm volatile("vpmaddwd %3, %2, %1\n\tvpaddd %1, %0, %0" \
                 : "+x"(acc), "=&x"(product)                \
                 : "x"(a), "x"(b));                         \
  } while (0)
    SPLITINFER_MADD(c0);
    SPLITINFER_MADD(c1);
    SPLITINFER_MADD(c2);
    SPLITINFER_MADD(c3);
    SPLITINFER_MADD(c4);
    SPLITINFER_MADD(c5);
    SPLITINFER_MADD(c6);
    SPLITINFER_MADD(c7);
    SPLITINFER_MADD(c8);
    SPLITINFER_MADD(c9);
#undef SPLITINFER_MADD
  }
  const __m256i total = _mm256_add_epi32(
      _mm256_add_epi32(_mm256_add_epi32(_mm256_add_epi32(c0, c1), _mm256_add_epi32(c2, c3)),
                       _mm256_add_epi32(_mm256_add_epi32(c4, c5), _mm256_add_epi32(c6, c7))),
      _mm256_add_epi32(c8, c9));
  int32_t lanes[8];
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(lanes), total);
  *sink = lanes[0];
}
#endif

// 4-lane vectors, lowered to whatever the target has.
void fma_generic(int64_t steps, float* sink) {
  typedef float Vector __attribute__((vector_size(16)));
  Vector acc[kChains / 2];
  for (int i = 0; i < kChains / 2; ++i) acc[i] = Vector{} + 0.001f * static_cast<float>(i);
  const Vector a = Vector{} + 0.999f, b = Vector{} + 0.0001f;
  for (int64_t s = 0; s < steps; ++s)
    for (int i = 0; i < kChains / 2; ++i) acc[i] = acc[i] * a + b;
  *sink = acc[0][0];
}

// Times `loop` (kSteps steps of `macs_per_step` multiply-adds each).
template <typename Sink>
void time_peak(benchmark::State& state, void (*loop)(int64_t, Sink*), int64_t macs_per_step,
               const char* label) {
  Sink sink{};
  for (auto _ : state) {
    loop(kSteps, &sink);
    benchmark::DoNotOptimize(sink);
  }
  state.SetLabel(label);
  state.counters["gmacs"] = benchmark::Counter(1e-9 * static_cast<double>(macs_per_step * kSteps),
                                               benchmark::Counter::kIsIterationInvariantRate);
}

void peak_fp32_fma(benchmark::State& state) {
#if defined(__x86_64__)
  if (__builtin_cpu_supports("avx512f"))
    return time_peak(state, fma_avx512, 16 * kChains, "AVX-512");
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
    return time_peak(state, fma_avx2, 8 * (kChains / 2), "AVX2");
#endif
  time_peak(state, fma_generic, 4 * (kChains / 2), "4-lane vectors");
}

void peak_int8_vnni(benchmark::State& state) {
#if defined(__x86_64__)
  if (__builtin_cpu_supports("avx512vnni"))
    return time_peak(state, vnni_avx512, 64 * 12, "AVX-512 VNNI vpdpbusd");
#endif
  state.SkipWithError("this CPU has no AVX-512 VNNI");
}

void peak_int8_avx2(benchmark::State& state) {
#if defined(__x86_64__)
  if (__builtin_cpu_supports("avx2"))
    return time_peak(state, madd_avx2, 16 * kMaddChains, "AVX2 vpmaddwd + vpaddd");
#endif
  state.SkipWithError("this CPU has no AVX2");
}

// The convolution of a conv/ or conv_q/ benchmark's args: in channels,
// size, out channels, kernel, stride, groups (padding: half the kernel).
struct BenchConv {
  Conv2dParams p;
  int64_t in_c, out_c, out_size;
  Shape in_shape, out_shape;
};

BenchConv bench_conv(const benchmark::State& state) {
  BenchConv c;
  const int64_t size = state.range(1);
  c.in_c = state.range(0), c.out_c = state.range(2);
  c.p.kernel_h = c.p.kernel_w = state.range(3);
  c.p.stride_h = c.p.stride_w = state.range(4);
  c.p.pad_h = c.p.pad_w = c.p.kernel_h / 2;
  c.p.groups = state.range(5);
  c.out_size = window_output_size(size, c.p.kernel_h, c.p.stride_h, c.p.pad_h, 1);
  c.in_shape = Shape{1, c.in_c, size, size};
  c.out_shape = Shape{1, c.out_c, c.out_size, c.out_size};
  return c;
}

// One float32 convolution on the whole map.
void conv(benchmark::State& state) {
  const BenchConv c = bench_conv(state);
  const Conv2dParams& p = c.p;
  const int64_t in_c = c.in_c, out_c = c.out_c, out_size = c.out_size;
  const Shape &in_shape = c.in_shape, &out_shape = c.out_shape;
  std::mt19937 random(0);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  const auto filled = [&](int64_t count) {
    std::vector<float> values(count);
    for (float& v : values) v = uniform(random);
    return values;
  };
  std::vector<float> input = filled(in_shape.elements());
  const std::vector<float> weight = filled(out_c * in_c / p.groups * p.kernel_h * p.kernel_w);
  const std::vector<float> bias = filled(out_c);
  std::vector<float> output(out_shape.elements());
  std::vector<float> scratch(conv2d_scratch_bytes(p, in_shape, out_shape) / sizeof(float) + 1);
  Tensor in{in_shape, DType::f32, input.data()}, out{out_shape, DType::f32, output.data()};
  for (auto _ : state) {
    conv2d(p, in, Placement::whole(in_shape), weight.data(), bias.data(), out,
           Placement::whole(out_shape), scratch.data(), 0, -1, Epilogue::relu);
    benchmark::ClobberMemory();
  }
  const double macs = static_cast<double>(weight.size()) * out_size * out_size;
  state.counters["gmacs"] =
      benchmark::Counter(1e-9 * macs, benchmark::Counter::kIsIterationInvariantRate);
}

// One int8 convolution on the whole map (conv2d_q, PyTorch requantization,
// symmetric weights as qnnpack's, activations after a ReLU6).
void conv_q(benchmark::State& state) {
  const BenchConv c = bench_conv(state);
  const Conv2dParams& p = c.p;
  const int64_t in_c = c.in_c, out_c = c.out_c, out_size = c.out_size;
  const Shape &in_shape = c.in_shape, &out_shape = c.out_shape;
  std::mt19937 random(0);
  std::uniform_int_distribution<int> byte(0, 255), weight_byte(-127, 127), bias_value(-5000, 5000);
  std::vector<uint8_t> input(in_shape.elements()), output(out_shape.elements());
  for (uint8_t& v : input) v = static_cast<uint8_t>(byte(random));
  std::vector<int8_t> weight(out_c * in_c / p.groups * p.kernel_h * p.kernel_w);
  for (int8_t& v : weight) v = static_cast<int8_t>(weight_byte(random));
  std::vector<int32_t> bias(out_c);
  for (int32_t& v : bias) v = bias_value(random);
  const float w_scale = 0.01f;
  const int32_t w_zp = 0;
  QuantizedLayer q;
  q.in = {QuantParams{0.02f, 0}};
  q.out = QuantParams{0.05f, 0};
  QuantizedWeights w;
  w.weight = weight.data();
  w.bias = bias.data();
  w.scale = &w_scale;
  w.zero_point = &w_zp;
  Tensor in{in_shape, DType::u8, input.data()}, out{out_shape, DType::u8, output.data()};
  for (auto _ : state) {
    conv2d_q(q, p, in, Placement::whole(in_shape), w, out, Placement::whole(out_shape));
    benchmark::ClobberMemory();
  }
  const double macs = static_cast<double>(weight.size()) * out_size * out_size;
  state.counters["gmacs"] =
      benchmark::Counter(1e-9 * macs, benchmark::Counter::kIsIterationInvariantRate);
}

// One float32 linear layer, one input row: args inputs, outputs. Its
// weights (megabytes) come from wherever the last iteration left them.
void linear_layer(benchmark::State& state) {
  const int64_t inputs = state.range(0), outputs = state.range(1);
  std::mt19937 random(0);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  std::vector<float> x(inputs), weight(inputs * outputs), bias(outputs), y(outputs);
  for (float& v : x) v = uniform(random);
  for (float& v : weight) v = uniform(random);
  for (float& v : bias) v = uniform(random);
  const Tensor in{Shape{1, inputs, 1, 1, 2}, DType::f32, x.data()};
  Tensor out{Shape{1, outputs, 1, 1, 2}, DType::f32, y.data()};
  for (auto _ : state) {
    linear(in, weight.data(), bias.data(), out);
    benchmark::ClobberMemory();
  }
  state.counters["gmacs"] = benchmark::Counter(1e-9 * static_cast<double>(weight.size()),
                                               benchmark::Counter::kIsIterationInvariantRate);
}

// One float32 3x3 stride-2 max pool (ceil mode, as squeezenet1_1's): args
// channels, size. Counter: output elements per second (9 taps each).
void pool(benchmark::State& state) {
  PoolParams p;
  p.kernel_h = p.kernel_w = 3;
  p.stride_h = p.stride_w = 2;
  p.ceil_mode = true;
  const int64_t channels = state.range(0), size = state.range(1);
  const int64_t out_size = pool_output_size(size, 3, 2, 0, 1, true);
  const Shape in_shape{1, channels, size, size}, out_shape{1, channels, out_size, out_size};
  std::mt19937 random(0);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  std::vector<float> input(in_shape.elements()), output(out_shape.elements());
  for (float& v : input) v = uniform(random);
  Tensor in{in_shape, DType::f32, input.data()}, out{out_shape, DType::f32, output.data()};
  for (auto _ : state) {
    maxpool(p, in, Placement::whole(in_shape), out, Placement::whole(out_shape));
    benchmark::ClobberMemory();
  }
  state.counters["outputs"] = benchmark::Counter(static_cast<double>(output.size()),
                                                 benchmark::Counter::kIsIterationInvariantRate);
}

BENCHMARK(peak_fp32_fma)->Name("peak/fp32_fma");
BENCHMARK(peak_int8_vnni)->Name("peak/int8_vnni");
BENCHMARK(peak_int8_avx2)->Name("peak/int8_avx2_madd");
// resnet18's 3x3 convolutions, one per stage (stride 1), and a stride-2 one.
BENCHMARK(conv)->Name("conv/resnet18_3x3_64x56")->Args({64, 56, 64, 3, 1, 1});
BENCHMARK(conv)->Name("conv/resnet18_3x3_128x28")->Args({128, 28, 128, 3, 1, 1});
BENCHMARK(conv)->Name("conv/resnet18_3x3_256x14")->Args({256, 14, 256, 3, 1, 1});
BENCHMARK(conv)->Name("conv/resnet18_3x3_512x7")->Args({512, 7, 512, 3, 1, 1});
BENCHMARK(conv)->Name("conv/resnet18_3x3_s2_64x56")->Args({64, 56, 128, 3, 2, 1});
// mobilenet_v2: an expansion, a projection and a depthwise layer.
BENCHMARK(conv)->Name("conv/mobilenet_v2_1x1_24x56_144")->Args({24, 56, 144, 1, 1, 1});
BENCHMARK(conv)->Name("conv/mobilenet_v2_1x1_144x56_24")->Args({144, 56, 24, 1, 1, 1});
BENCHMARK(conv)->Name("conv/mobilenet_v2_1x1_576x14_96")->Args({576, 14, 96, 1, 1, 1});
BENCHMARK(conv)->Name("conv/mobilenet_v2_dw3x3_144x56")->Args({144, 56, 144, 3, 1, 144});
BENCHMARK(conv)->Name("conv/mobilenet_v2_dw3x3_s2_144x56")->Args({144, 56, 144, 3, 2, 144});
BENCHMARK(conv)->Name("conv/mobilenet_v2_dw3x3_576x14")->Args({576, 14, 576, 3, 1, 576});
// squeezenet1_1's max pools.
// mobilenet_v2's int8 depthwise layers, and pointwise ones (an expansion
// from a shallow depth, a projection, and a deep one).
BENCHMARK(conv_q)->Name("conv_q/mobilenet_v2_dw3x3_32x112")->Args({32, 112, 32, 3, 1, 32});
BENCHMARK(conv_q)->Name("conv_q/mobilenet_v2_dw3x3_s2_96x112")->Args({96, 112, 96, 3, 2, 96});
BENCHMARK(conv_q)->Name("conv_q/mobilenet_v2_dw3x3_144x56")->Args({144, 56, 144, 3, 1, 144});
BENCHMARK(conv_q)->Name("conv_q/mobilenet_v2_dw3x3_s2_144x56")->Args({144, 56, 144, 3, 2, 144});
BENCHMARK(conv_q)->Name("conv_q/mobilenet_v2_dw3x3_192x28")->Args({192, 28, 192, 3, 1, 192});
BENCHMARK(conv_q)->Name("conv_q/mobilenet_v2_dw3x3_s2_192x28")->Args({192, 28, 192, 3, 2, 192});
BENCHMARK(conv_q)->Name("conv_q/mobilenet_v2_dw3x3_576x14")->Args({576, 14, 576, 3, 1, 576});
BENCHMARK(conv_q)->Name("conv_q/mobilenet_v2_dw3x3_s2_576x14")->Args({576, 14, 576, 3, 2, 576});
BENCHMARK(conv_q)->Name("conv_q/mobilenet_v2_dw3x3_960x7")->Args({960, 7, 960, 3, 1, 960});
BENCHMARK(conv_q)->Name("conv_q/mobilenet_v2_1x1_16x112_96")->Args({16, 112, 96, 1, 1, 1});
BENCHMARK(conv_q)->Name("conv_q/mobilenet_v2_1x1_144x56_24")->Args({144, 56, 24, 1, 1, 1});
BENCHMARK(conv_q)->Name("conv_q/mobilenet_v2_1x1_576x14_96")->Args({576, 14, 96, 1, 1, 1});
// resnet18's int8 3x3 stages (a 14x14 map is three blocks of 64 positions and
// one of 4; a 7x7 map one block of 49).
BENCHMARK(conv_q)->Name("conv_q/resnet18_3x3_64x56")->Args({64, 56, 64, 3, 1, 1});
BENCHMARK(conv_q)->Name("conv_q/resnet18_3x3_128x28")->Args({128, 28, 128, 3, 1, 1});
BENCHMARK(conv_q)->Name("conv_q/resnet18_3x3_256x14")->Args({256, 14, 256, 3, 1, 1});
BENCHMARK(conv_q)->Name("conv_q/resnet18_3x3_512x7")->Args({512, 7, 512, 3, 1, 1});
BENCHMARK(conv_q)->Name("conv_q/resnet18_7x7_s2_3x224")->Args({3, 224, 64, 7, 2, 1});

BENCHMARK(linear_layer)->Name("linear/mobilenet_v2_classifier_1280_1000")->Args({1280, 1000});

BENCHMARK(pool)->Name("maxpool/squeezenet1_1_3x3_s2_64x111")->Args({64, 111});
BENCHMARK(pool)->Name("maxpool/squeezenet1_1_3x3_s2_256x27")->Args({256, 27});

}  // namespace
}  // namespace splitinfer

BENCHMARK_MAIN();
