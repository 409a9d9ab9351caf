#pragma once
// Matrix product with a fixed summation order, the kernel under conv2d and
// linear: out[rows, positions] = bias + weight[rows, depth] * columns[depth, positions].
// Every output element starts from its bias and adds weight * column for
// k = 0, 1, ..., depth-1 in order, whatever the matrix sizes, so a part of the
// output (a tile, a range of channels or neurons) equals the same part of the
// whole bit for bit. The distributed engine relies on that; a GEMM library
// picks its blocking and summation order from the sizes and cannot promise it.
#include <cstdint>

namespace splitinfer {

// An activation applied to each output element as it is stored (a relu or
// relu6 layer fused into the layer before it): the same comparisons as the
// activation layer's, so the bits are those of computing it apart.
enum class Epilogue { none, relu, relu6 };

// The floats in one of the float32 kernels' vectors on this target, and
// which intrinsics they use (SPLITINFER_FLOAT_AVX512: 16 lanes with AVX-512
// masks; SPLITINFER_FLOAT_AVX: 8 lanes with AVX's). A build with
// -DSPLITINFER_GENERIC_LANES=N uses N-float vectors in plain vector code,
// no intrinsics: a test of a wider target's lane logic on this one.
#if defined(SPLITINFER_GENERIC_LANES)
inline constexpr int64_t kGemmLanes = SPLITINFER_GENERIC_LANES;
#define SPLITINFER_FLOAT_AVX512 0
#define SPLITINFER_FLOAT_AVX 0
#elif defined(__AVX512F__)
inline constexpr int64_t kGemmLanes = 16;
#define SPLITINFER_FLOAT_AVX512 1
#define SPLITINFER_FLOAT_AVX 1
#elif defined(__AVX__)
inline constexpr int64_t kGemmLanes = 8;
#define SPLITINFER_FLOAT_AVX512 0
#define SPLITINFER_FLOAT_AVX 1
#else
inline constexpr int64_t kGemmLanes = 4;
#define SPLITINFER_FLOAT_AVX512 0
#define SPLITINFER_FLOAT_AVX 0
#endif

// `columns` and `out` may be parts of wider matrices: rows `column_stride` and
// `out_stride` floats apart (0: `positions`).
void gemm_in_depth_order(const float* weight, const float* columns, const float* bias, float* out,
                         int64_t rows, int64_t depth, int64_t positions, int64_t column_stride = 0,
                         int64_t out_stride = 0, Epilogue epilogue = Epilogue::none);

// The same product with column k read at columns + column_offsets[k] (the
// positions follow it contiguously): a convolution's columns are then its
// input shifted by each tap, with no im2col copy. Whole vectors are read and
// written: `positions` rounded up to kGemmLanes floats must be readable in
// every column and writable in every row of `out`; the lanes past
// `positions` hold whatever those columns hold.
void gemm_in_depth_order_at_offsets(const float* weight, const float* columns,
                                    const int64_t* column_offsets, const float* bias, float* out,
                                    int64_t rows, int64_t depth, int64_t positions,
                                    int64_t out_stride, Epilogue epilogue = Epilogue::none);

// `epilogue` on `count` floats in place (for kernels that store without gemm).
void apply_epilogue(Epilogue epilogue, float* values, int64_t count);

}  // namespace splitinfer
