#include "gemm.hpp"

#include <algorithm>
#include <cstring>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace splitinfer {
namespace {

// gemm_in_depth_order works on vectors of kLanes floats (GCC/Clang vector
// extensions, lowered to whatever the target has) and keeps a block of
// output rows x up to kMaxVectors vectors of positions as sums in registers:
// kSums of the 32 AVX-512 registers (16 for AVX or SSE), the rest hold a
// column's vectors and a broadcast weight.
constexpr int64_t kLanes = kGemmLanes;
#if defined(__AVX512F__)
constexpr int64_t kSums = 24;
#else
constexpr int64_t kSums = 12;
#endif
constexpr int64_t kMaxVectors = 4;
// Depth is taken kDepthStep at a time: a pass keeps the columns it reads
// (kDepthStep x kMaxVectors vectors, 64 KiB with AVX-512) in the L2 cache
// while every block of rows goes over them. Between passes the sums wait in
// `out` as float32, so each still adds its products in depth order.
constexpr int64_t kDepthStep = 256;
constexpr int64_t kFloatsPerLine = 64 / sizeof(float);  // a cache line
typedef float Vector __attribute__((vector_size(kLanes * sizeof(float))));

// The first `count` (< kLanes) floats at `from` into a vector, the other lanes 0,
// and back: one masked move where the target has them, not a memcpy call per k.
inline Vector load_first(const float* from, int64_t count) {
#if defined(__AVX512F__)
  return reinterpret_cast<Vector>(
      _mm512_maskz_loadu_ps(static_cast<__mmask16>((1u << count) - 1), from));
#else
  Vector vector = {};
  for (int64_t lane = 0; lane < count; ++lane) vector[lane] = from[lane];
  return vector;
#endif
}

inline void store_first(float* to, Vector vector, int64_t count) {
#if defined(__AVX512F__)
  _mm512_mask_storeu_ps(to, static_cast<__mmask16>((1u << count) - 1),
                        reinterpret_cast<__m512>(vector));
#else
  for (int64_t lane = 0; lane < count; ++lane) to[lane] = vector[lane];
#endif
}

struct GemmArguments {
  const float* weight;            // [rows, depth]
  const float* columns;           // [depth, column_stride], or read at column_offsets
  const int64_t* column_offsets;  // null, or column k at columns + column_offsets[k]
  const float* bias;              // [rows] or null
  float* out;                     // [rows, out_stride]
  int64_t rows, depth, column_stride, out_stride;
  Epilogue epilogue;  // applied as the last depth pass stores
};

// std::max(x, 0.0f) and std::min(x, 6.0f), lane by lane: NaN and -0.0 pass
// through as the activation layer passes them.
inline Vector epilogue_of(Epilogue epilogue, Vector value) {
  if (epilogue == Epilogue::none) return value;
  value = value < 0.0f ? Vector{} : value;
  if (epilogue == Epilogue::relu6) value = 6.0f < value ? Vector{} + 6.0f : value;
  return value;
}

// Rows [row0, row0 + kRows) x positions [j, j + width) for depth [k0, k1),
// width = kVectors * kLanes or, with kPartial, less (the last vector's lanes
// past `width` compute on zeros and are not stored). The sums start from the
// bias at k0 = 0 and from `out` after. A last block of fewer rows repeats its
// last row and stores only the real ones.
template <int64_t kVectors, bool kPartial, bool kOffsets>
void gemm_block(const GemmArguments& a, int64_t row0, int64_t j, int64_t width, int64_t k0,
                int64_t k1, const float* tail) {
  constexpr int64_t kRows = kSums / kVectors;
  const int64_t last_width = kPartial ? width - (kVectors - 1) * kLanes : kLanes;
  const int64_t real_rows = std::min(kRows, a.rows - row0);
  const auto load = [&](const float* from, int64_t v) {
    Vector vector;
    if (kPartial && v == kVectors - 1)
      vector = load_first(from, last_width);
    else
      std::memcpy(&vector, from, sizeof(Vector));
    return vector;
  };
  Vector sum[kRows][kVectors];
  const float* weight_row[kRows];
#pragma GCC unroll 24
  for (int64_t r = 0; r < kRows; ++r) {
    const int64_t row = row0 + std::min(r, real_rows - 1);
    weight_row[r] = a.weight + row * a.depth;
#pragma GCC unroll 4
    for (int64_t v = 0; v < kVectors; ++v)
      sum[r][v] = k0 == 0 ? Vector{} + (a.bias ? a.bias[row] : 0.0f)
                          : load(a.out + row * a.out_stride + j + v * kLanes, v);
  }
  // The next block's weights for this depth pass are fetched while this one
  // computes: they come from L3 or memory when the weights outgrow L2.
  for (int64_t r = 0; r < kRows && row0 + kRows + r < a.rows; ++r)
    for (int64_t k = k0; k < k1; k += kFloatsPerLine)
      __builtin_prefetch(weight_row[0] + (kRows + r) * a.depth + k);
  for (int64_t k = k0; k < k1; ++k) {
    const float* column = a.columns + (kOffsets ? a.column_offsets[k] : k * a.column_stride) + j;
    Vector x[kVectors];
#pragma GCC unroll 4
    for (int64_t v = 0; v < kVectors; ++v)
      std::memcpy(&x[v],
                  kPartial && v == kVectors - 1 ? tail + (k - k0) * kLanes : column + v * kLanes,
                  sizeof(Vector));
#pragma GCC unroll 24
    for (int64_t r = 0; r < kRows; ++r) {
      const float w = weight_row[r][k];
#pragma GCC unroll 4
      for (int64_t v = 0; v < kVectors; ++v) sum[r][v] += w * x[v];
    }
  }
#pragma GCC unroll 24
  for (int64_t r = 0; r < kRows; ++r)
#pragma GCC unroll 4
    for (int64_t v = 0; v < kVectors; ++v) {
      if (r >= real_rows) break;
      float* to = a.out + (row0 + r) * a.out_stride + j + v * kLanes;
      // By value: a sum whose address escaped would live on the stack, stored
      // again at every masked load (which may read any memory).
      const Vector value = k1 == a.depth ? epilogue_of(a.epilogue, sum[r][v]) : sum[r][v];
      if (kPartial && v == kVectors - 1)
        store_first(to, value, last_width);
      else
        std::memcpy(to, &value, sizeof(Vector));
    }
}

// Every block of rows over positions [j, j + width), width <= kMaxVectors * kLanes,
// for depth [k0, k1).
template <int64_t kVectors, bool kPartial, bool kOffsets>
void gemm_panel(const GemmArguments& a, int64_t j, int64_t width, int64_t k0, int64_t k1) {
  constexpr int64_t kRows = kSums / kVectors;
  // A last partial vector's columns, copied into whole vectors padded with
  // zeros: the blocks then load only whole vectors, never past the columns.
  alignas(64) float tail[kPartial ? kDepthStep * kLanes : 1];
  static_assert(!(kPartial && kOffsets), "offset columns are read as whole vectors");
  if constexpr (kPartial) {
    const int64_t offset = j + (kVectors - 1) * kLanes, count = width - (kVectors - 1) * kLanes;
    for (int64_t k = k0; k < k1; ++k) {
      float* to = tail + (k - k0) * kLanes;
      std::copy(a.columns + k * a.column_stride + offset,
                a.columns + k * a.column_stride + offset + count, to);
      std::fill(to + count, to + kLanes, 0.0f);
    }
  }
  for (int64_t row0 = 0; row0 < a.rows; row0 += kRows)
    gemm_block<kVectors, kPartial, kOffsets>(a, row0, j, width, k0, k1, tail);
}

// A panel of kVectors vectors, the last one partial when `partial` (never
// with column offsets: `width` is then whole vectors, which the caller's
// columns and out have room for).
template <int64_t kVectors, bool kOffsets>
void gemm_panel_of(const GemmArguments& a, bool partial, int64_t j, int64_t width, int64_t k0,
                   int64_t k1) {
  if constexpr (!kOffsets)
    if (partial) return gemm_panel<kVectors, true, false>(a, j, width, k0, k1);
  gemm_panel<kVectors, false, kOffsets>(a, j, width, k0, k1);
}

template <bool kOffsets>
void gemm_panel_any(const GemmArguments& a, int64_t j, int64_t width, int64_t k0, int64_t k1) {
  const bool partial = width % kLanes != 0;
  switch ((width + kLanes - 1) / kLanes) {
    case 4:
      return gemm_panel_of<4, kOffsets>(a, partial, j, width, k0, k1);
    case 3:
      return gemm_panel_of<3, kOffsets>(a, partial, j, width, k0, k1);
    case 2:
      return gemm_panel_of<2, kOffsets>(a, partial, j, width, k0, k1);
    default:
      return gemm_panel_of<1, kOffsets>(a, partial, j, width, k0, k1);
  }
}

template <bool kOffsets>
void gemm_all_panels(const GemmArguments& a, int64_t positions) {
  constexpr int64_t kPanel = kMaxVectors * kLanes;
  for (int64_t j = 0; j < positions; j += kPanel) {
    const int64_t width = std::min(kPanel, positions - j);
    if (a.depth == 0) {
      gemm_panel_any<kOffsets>(a, j, width, 0, 0);
      continue;
    }
    for (int64_t k0 = 0; k0 < a.depth; k0 += kDepthStep)
      gemm_panel_any<kOffsets>(a, j, width, k0, std::min(a.depth, k0 + kDepthStep));
  }
}

}  // namespace

// out[rows, positions] = bias + weight[rows, depth] * columns[depth, positions].
// Every output element is summed the same way, whatever the number of
// positions and wherever the element sits among them: it starts from its bias
// and adds weight * column for k = 0, 1, ..., depth-1 in order, always in a
// vector lane (so the compiler's choice of fused multiply-add is the same for
// all), and a partial sum kept in `out` between depth passes is the float32 it
// was in the register. So an output tile equals the same rows and columns of
// the whole map bit for bit, which the distributed engine relies on. A GEMM
// library cannot promise that: Eigen picks its blocking, micro-kernel and
// summation order from the matrix sizes, and tiles differed from the whole map
// in the last bits.
void gemm_in_depth_order(const float* weight, const float* columns, const float* bias, float* out,
                         int64_t rows, int64_t depth, int64_t positions, int64_t column_stride,
                         int64_t out_stride, Epilogue epilogue) {
  const GemmArguments a{weight,
                        columns,
                        nullptr,
                        bias,
                        out,
                        rows,
                        depth,
                        column_stride ? column_stride : positions,
                        out_stride ? out_stride : positions,
                        epilogue};
  gemm_all_panels<false>(a, positions);
}

void gemm_in_depth_order_at_offsets(const float* weight, const float* columns,
                                    const int64_t* column_offsets, const float* bias, float* out,
                                    int64_t rows, int64_t depth, int64_t positions,
                                    int64_t out_stride, Epilogue epilogue) {
  const GemmArguments a{weight, columns, column_offsets, bias,    out, rows,
                        depth,  0,       out_stride,     epilogue};
  gemm_all_panels<true>(a, (positions + kLanes - 1) / kLanes * kLanes);
}

void apply_epilogue(Epilogue epilogue, float* values, int64_t count) {
  if (epilogue == Epilogue::none) return;
  for (int64_t i = 0; i < count; ++i) {
    float value = std::max(values[i], 0.0f);
    if (epilogue == Epilogue::relu6) value = std::min(value, 6.0f);
    values[i] = value;
  }
}

}  // namespace splitinfer
