#include "gemm.hpp"

#include <algorithm>
#include <cstring>
#include <type_traits>

#include "float_vector.hpp"

namespace splitinfer {
namespace {

// gemm_in_depth_order works on vectors of kLanes floats (GCC/Clang vector
// extensions, lowered to whatever the target has) and keeps a block of kRows
// output rows x up to kMaxVectors vectors of positions as sums in registers
// (24 of the 32 AVX-512 registers, 12 of the 16 of AVX or SSE); the rest
// hold a column's vectors and a broadcast weight.
constexpr int64_t kLanes = kGemmLanes;
#if SPLITINFER_FLOAT_AVX512 || SPLITINFER_GENERIC_LANES >= 16
constexpr int64_t kRows = 6, kMaxVectors = 4;
#else
constexpr int64_t kRows = 6, kMaxVectors = 2;
#endif
constexpr int64_t kPanel = kMaxVectors * kLanes;  // positions per block
// With two vectors per block (AVX2, SSE) the band's columns are read through
// a packed panel (gemm_all_panels): a block reuses each column vector for
// only kRows rows, and reading them in place from L2 bound the loop.
constexpr bool kPanelOrder = kMaxVectors == 2;
// Depth is taken kDepthStep at a time, positions a chunk at a time (its
// columns for a pass within kChunkBytes). A pass over a chunk goes block of
// rows by block of rows, each over every panel of the chunk: the block's
// weights for the pass (kRows x kDepthStep floats) stay in L1 while the
// chunk's columns come from L2, and deep layers' weights (megabytes) are read
// from memory once per chunk, not once per panel. Between passes the sums
// wait in `out` as float32, so each still adds its products in depth order.
constexpr int64_t kDepthStep = 256;
constexpr int64_t kChunkBytes = 128 << 10;
constexpr int64_t kFloatsPerLine = 64 / sizeof(float);  // a cache line
using Vector = FloatVector;

// The first `count` (< kLanes) floats at `from` into a vector, the other lanes 0,
// and back: one masked move where the target has them, not a memcpy call per k.
inline Vector load_first(const float* from, int64_t count) {
#if SPLITINFER_FLOAT_AVX512
  return reinterpret_cast<Vector>(
      _mm512_maskz_loadu_ps(static_cast<__mmask16>((1u << count) - 1), from));
#else
  Vector vector = {};
  for (int64_t lane = 0; lane < count; ++lane) vector[lane] = from[lane];
  return vector;
#endif
}

inline void store_first(float* to, Vector vector, int64_t count) {
#if SPLITINFER_FLOAT_AVX512
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
  const float* panel;             // kPanelOrder: column k of the block at panel + (k - k0) * kPanel
  const float* bias;              // [rows] or null
  float* out;                     // [rows, out_stride]
  int64_t rows, depth, column_stride, out_stride;
  Epilogue epilogue;  // applied as the last depth pass stores
};

// Rows [row0, row0 + kBlockRows) x positions [j, j + width) for depth
// [k0, k1), width = kVectors * kLanes or, with kPartial, less (the last
// vector's lanes past `width` compute on zeros and are not stored; its
// columns are read from `tail`). The sums start from the bias at k0 = 0 and
// from `out` after. The rows' weights are read through one pointer at fixed
// multiples of the depth, so the loop needs few registers besides its sums.
// With `prefetch` (the first panel of a chunk), the next block's weights for
// this pass are fetched while this one goes over the chunk.
template <int64_t kBlockRows, int64_t kVectors, bool kPartial, bool kOffsets, bool kPanelColumns>
__attribute__((noinline)) void gemm_block(const GemmArguments& a, int64_t row0, int64_t j,
                                          int64_t width, int64_t k0, int64_t k1, const float* tail,
                                          bool prefetch) {
  const int64_t last_width = kPartial ? width - (kVectors - 1) * kLanes : kLanes;
  const int64_t depth = a.depth;
  const auto load = [&](const float* from, int64_t v) {
    Vector vector;
    if (kPartial && v == kVectors - 1)
      vector = load_first(from, last_width);
    else
      std::memcpy(&vector, from, sizeof(Vector));
    return vector;
  };
  Vector sum[kBlockRows][kVectors];
#pragma GCC unroll 24
  for (int64_t r = 0; r < kBlockRows; ++r)
#pragma GCC unroll 4
    for (int64_t v = 0; v < kVectors; ++v)
      sum[r][v] = k0 == 0 ? broadcast(a.bias ? a.bias[row0 + r] : 0.0f)
                          : load(a.out + (row0 + r) * a.out_stride + j + v * kLanes, v);
  const float* weight = a.weight + row0 * depth;
  if (prefetch)
    for (int64_t r = 0; r < kRows && row0 + kBlockRows + r < a.rows; ++r)
      for (int64_t k = k0; k < k1; k += kFloatsPerLine)
        __builtin_prefetch(weight + (kBlockRows + r) * depth + k);
  const float* columns = a.columns + j;
  for (int64_t k = k0; k < k1; ++k) {
    const float* column = kPanelColumns
                              ? a.panel + (k - k0) * kPanel
                              : columns + (kOffsets ? a.column_offsets[k] : k * a.column_stride);
    Vector x[kVectors];
#pragma GCC unroll 4
    for (int64_t v = 0; v < kVectors; ++v)
      std::memcpy(&x[v],
                  kPartial && v == kVectors - 1 ? tail + (k - k0) * kLanes : column + v * kLanes,
                  sizeof(Vector));
    const float* w = weight + k;
#pragma GCC unroll 24
    for (int64_t r = 0; r < kBlockRows; ++r) {
      const Vector wr = broadcast(w[r * depth]);
#pragma GCC unroll 4
      for (int64_t v = 0; v < kVectors; ++v) sum[r][v] = multiply_add(sum[r][v], wr, x[v]);
    }
  }
#pragma GCC unroll 24
  for (int64_t r = 0; r < kBlockRows; ++r)
#pragma GCC unroll 4
    for (int64_t v = 0; v < kVectors; ++v) {
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

// gemm_block for `rows` (1 to kRows) rows and ceil(width / kLanes) vectors.
template <int64_t kBlockRows, bool kOffsets, bool kPanelColumns = false>
void gemm_block_of(const GemmArguments& a, int64_t rows, int64_t row0, int64_t j, int64_t width,
                   int64_t k0, int64_t k1, const float* tail, bool prefetch) {
  if constexpr (kBlockRows > 1)
    if (rows < kBlockRows)
      return gemm_block_of<kBlockRows - 1, kOffsets, kPanelColumns>(a, rows, row0, j, width, k0, k1,
                                                                    tail, prefetch);
  const bool partial = width % kLanes != 0;  // never with offsets: whole vectors
  const int64_t vectors = (width + kLanes - 1) / kLanes;
  const auto run = [&](auto vectors_constant) {
    constexpr int64_t kVectors = decltype(vectors_constant)::value;
    if constexpr (!kOffsets && !kPanelColumns)
      if (partial)
        return gemm_block<kBlockRows, kVectors, true, false, false>(a, row0, j, width, k0, k1, tail,
                                                                    prefetch);
    gemm_block<kBlockRows, kVectors, false, kOffsets, kPanelColumns>(a, row0, j, width, k0, k1,
                                                                     tail, prefetch);
  };
  static_assert(kMaxVectors <= 4);
  switch (vectors) {
    case 4:
      if constexpr (kMaxVectors >= 4) return run(std::integral_constant<int64_t, 4>{});
      break;
    case 3:
      if constexpr (kMaxVectors >= 3) return run(std::integral_constant<int64_t, 3>{});
      break;
    case 2:
      return run(std::integral_constant<int64_t, 2>{});
    default:
      return run(std::integral_constant<int64_t, 1>{});
  }
}

template <bool kOffsets>
void gemm_all_panels(const GemmArguments& a, int64_t positions) {
  // A last partial vector's columns, copied into whole vectors padded with
  // zeros for each depth pass: the blocks then load only whole vectors,
  // never past the columns (never with offsets: `positions` is then whole
  // vectors, which the caller's columns and out have room for).
  const int64_t partial_j = positions / kLanes * kLanes, partial_count = positions % kLanes;
  alignas(64) float tail[kOffsets ? 1 : kDepthStep * kLanes];
  alignas(64) float panel[kOffsets && kPanelOrder ? kDepthStep * kPanel : 1];
  // Positions are taken a chunk at a time, its columns for a pass within
  // kChunkBytes (in L2 while every block of rows reads them).
  const int64_t pass_depth = std::clamp<int64_t>(a.depth, 1, kDepthStep);
  const int64_t chunk_positions =
      std::max(kPanel, kChunkBytes / (pass_depth * int64_t{sizeof(float)}) / kPanel * kPanel);
  for (int64_t k0 = 0; k0 < std::max<int64_t>(a.depth, 1); k0 += kDepthStep) {
    const int64_t k1 = std::min(a.depth, k0 + kDepthStep);
    if (!kOffsets && partial_count != 0)
      for (int64_t k = k0; k < k1; ++k) {
        float* to = tail + (k - k0) * kLanes;
        const float* from = a.columns + k * a.column_stride + partial_j;
        std::copy(from, from + partial_count, to);
        std::fill(to + partial_count, to + kLanes, 0.0f);
      }
    if constexpr (kOffsets && kPanelOrder) {
      // Panel by panel: its columns for the pass copied once into `panel`
      // (in L1, read in order) and every block of rows over it, the
      // blocks' weights for the pass from L2.
      GemmArguments packed = a;
      packed.panel = panel;
      for (int64_t j = 0; j < positions; j += kPanel) {
        const int64_t width = std::min(kPanel, positions - j);  // whole vectors
        for (int64_t k = k0; k < k1; ++k) {
          const float* from = a.columns + a.column_offsets[k] + j;
          float* to = panel + (k - k0) * kPanel;
          for (int64_t v = 0; v < width; v += kLanes) std::memcpy(to + v, from + v, sizeof(Vector));
        }
        for (int64_t row0 = 0; row0 < a.rows; row0 += kRows)
          gemm_block_of<kRows, true, true>(packed, std::min(kRows, a.rows - row0), row0, j, width,
                                           k0, k1, tail, false);
      }
      continue;
    }
    for (int64_t chunk = 0; chunk < positions; chunk += chunk_positions) {
      const int64_t chunk_end = std::min(positions, chunk + chunk_positions);
      for (int64_t row0 = 0; row0 < a.rows; row0 += kRows)
        for (int64_t j = chunk; j < chunk_end; j += kPanel) {
          const int64_t width = std::min(kPanel, chunk_end - j);
          gemm_block_of<kRows, kOffsets>(a, std::min(kRows, a.rows - row0), row0, j, width, k0, k1,
                                         tail, j == chunk);
        }
    }
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
  const GemmArguments a{weight, columns, column_offsets, nullptr, bias, out, rows,
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
