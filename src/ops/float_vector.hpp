#pragma once
// The float vectors of the float32 kernels (gemm.cpp, conv2d.cpp): GCC/Clang
// vector extensions of kGemmLanes floats, lowered to whatever the target
// has, and their multiply-add, fused or not the same way in every vector and
// scalar: where the target has fused multiply-adds (__FMA__) every product
// is added with one rounding, else with two. The files using it are compiled
// with -ffp-contract=off, so the compiler never fuses on its own (GCC fused
// some of the GEMM's block shapes and not others, and a tile of a map then
// differed from the whole map in the last bit).
#include <cstdint>
#include <utility>

#include "gemm.hpp"

#if defined(__AVX__)
#include <immintrin.h>
#endif

namespace splitinfer {

typedef float FloatVector __attribute__((vector_size(kGemmLanes * sizeof(float))));

// sum + w * x, lane by lane.
inline FloatVector multiply_add(FloatVector sum, FloatVector w, FloatVector x) {
#if defined(__FMA__) && SPLITINFER_FLOAT_AVX512
  return reinterpret_cast<FloatVector>(_mm512_fmadd_ps(
      reinterpret_cast<__m512>(w), reinterpret_cast<__m512>(x), reinterpret_cast<__m512>(sum)));
#elif defined(__FMA__) && SPLITINFER_FLOAT_AVX
  return reinterpret_cast<FloatVector>(_mm256_fmadd_ps(
      reinterpret_cast<__m256>(w), reinterpret_cast<__m256>(x), reinterpret_cast<__m256>(sum)));
#else
  return sum + w * x;
#endif
}

// sum + w * x, rounded as one lane of the vector multiply_add().
inline float multiply_add(float sum, float w, float x) {
#if defined(__FMA__) && SPLITINFER_FLOAT_AVX
  return __builtin_fmaf(w, x, sum);
#else
  return sum + w * x;
#endif
}

// `value` in every lane (FloatVector{} + value would add 0.0f, turning -0.0f into +0.0f).
inline FloatVector broadcast(float value) {
#if SPLITINFER_FLOAT_AVX512
  return reinterpret_cast<FloatVector>(_mm512_set1_ps(value));
#elif SPLITINFER_FLOAT_AVX
  return reinterpret_cast<FloatVector>(_mm256_set1_ps(value));
#else
  FloatVector vector;
  for (int64_t lane = 0; lane < kGemmLanes; ++lane) vector[lane] = value;
  return vector;
#endif
}

// An activation fused into a float32 kernel's stores, lane by lane with the
// comparisons of std::max(x, 0.0f) and std::min(x, 6.0f) (apply_epilogue):
// NaN and -0.0 pass through as the activation layer passes them.
inline FloatVector epilogue_of(Epilogue epilogue, FloatVector value) {
  if (epilogue == Epilogue::none) return value;
  value = value < 0.0f ? FloatVector{} : value;
  if (epilogue == Epilogue::relu6) value = 6.0f < value ? broadcast(6.0f) : value;
  return value;
}

}  // namespace splitinfer
