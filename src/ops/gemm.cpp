#include "gemm.hpp"

#include <algorithm>
#include <cstring>

namespace splitinfer {
namespace {

// gemm_in_depth_order works on vectors of kLanes floats (GCC/Clang vector
// extensions, lowered to whatever the target has) and keeps kBlockRows x
// kBlockVectors of them as sums in registers: 16 of the 32 AVX-512 registers,
// 8 of the 16 AVX or SSE registers.
#if defined(__AVX512F__)
constexpr int64_t kLanes = 16, kBlockRows = 8;
#elif defined(__AVX__)
constexpr int64_t kLanes = 8, kBlockRows = 4;
#else
constexpr int64_t kLanes = 4, kBlockRows = 4;
#endif
constexpr int64_t kBlockVectors = 2;
typedef float Vector __attribute__((vector_size(kLanes * sizeof(float))));

// Rows [row0, row0 + kBlockRows) x positions [j, j + width) of
// gemm_in_depth_order, width = kVectors * kLanes or, for a last partial
// vector, less (its lanes past `width` compute on zeros and are not stored).
// A last block of fewer rows repeats its last row and stores only the real ones.
template <int64_t kVectors, bool kPartial>
void gemm_block(const float* weight, const float* columns, const float* bias, float* out,
                int64_t rows, int64_t depth, int64_t positions, int64_t row0, int64_t j,
                int64_t width) {
  const int64_t bytes = kPartial ? width * static_cast<int64_t>(sizeof(float)) : sizeof(Vector);
  Vector sum[kBlockRows][kVectors];
  int64_t weight_offset[kBlockRows];
#pragma GCC unroll 8
  for (int64_t r = 0; r < kBlockRows; ++r) {
    const int64_t row = std::min(row0 + r, rows - 1);
    weight_offset[r] = row * depth;
#pragma GCC unroll 8
    for (int64_t v = 0; v < kVectors; ++v) sum[r][v] = Vector{} + (bias ? bias[row] : 0.0f);
  }
  for (int64_t k = 0; k < depth; ++k) {
    const float* column = columns + k * positions + j;
    Vector x[kVectors] = {};
#pragma GCC unroll 8
    for (int64_t v = 0; v < kVectors; ++v) std::memcpy(&x[v], column + v * kLanes, bytes);
#pragma GCC unroll 8
    for (int64_t r = 0; r < kBlockRows; ++r) {
      const float w = weight[weight_offset[r] + k];
#pragma GCC unroll 8
      for (int64_t v = 0; v < kVectors; ++v) sum[r][v] += w * x[v];
    }
  }
  for (int64_t r = 0; r < std::min(kBlockRows, rows - row0); ++r)
    for (int64_t v = 0; v < kVectors; ++v)
      std::memcpy(out + (row0 + r) * positions + j + v * kLanes, &sum[r][v], bytes);
}

}  // namespace

// out[rows, positions] = bias + weight[rows, depth] * columns[depth, positions].
// Every output element is summed the same way, whatever the number of
// positions and wherever the element sits among them: it starts from its bias
// and adds weight * column for k = 0, 1, ..., depth-1 in order, always in a
// vector lane (so the compiler's choice of fused multiply-add is the same for
// all). So an output tile equals the same rows and columns of the whole map
// bit for bit, which the distributed engine relies on. A GEMM library cannot
// promise that: Eigen picks its blocking, micro-kernel and summation order
// from the matrix sizes, and tiles differed from the whole map in the last bits.
void gemm_in_depth_order(const float* weight, const float* columns, const float* bias, float* out,
                         int64_t rows, int64_t depth, int64_t positions) {
  // The block at (row0, j), as wide as the positions left allow; returns its width.
  const auto block_at = [&](int64_t row0, int64_t j) -> int64_t {
    const int64_t left = positions - j;
    if (left >= kBlockVectors * kLanes) {
      gemm_block<kBlockVectors, false>(weight, columns, bias, out, rows, depth, positions, row0, j,
                                       kBlockVectors * kLanes);
      return kBlockVectors * kLanes;
    }
    if (left >= kLanes) {
      gemm_block<1, false>(weight, columns, bias, out, rows, depth, positions, row0, j, kLanes);
      return kLanes;
    }
    gemm_block<1, true>(weight, columns, bias, out, rows, depth, positions, row0, j, left);
    return left;
  };
  // Any order of the blocks gives the same sums. The outer loop runs over the
  // larger matrix, so the blocks of the smaller one are read again from cache.
  if (rows > positions) {  // weight [rows, depth] is the larger
    for (int64_t row0 = 0; row0 < rows; row0 += kBlockRows)
      for (int64_t j = 0; j < positions;) j += block_at(row0, j);
  } else {
    for (int64_t j = 0, width = 0; j < positions; j += width)
      for (int64_t row0 = 0; row0 < rows; row0 += kBlockRows) width = block_at(row0, j);
  }
}

}  // namespace splitinfer
