#pragma once
// <immintrin.h> for the x86 kernels. GCC 12's AVX-512 headers start masked
// builtins (unpack, max, ...) from an "undefined" vector and then warn that
// it is uninitialized (GCC bug 105593, fixed in GCC 13): not ours to fix.
#if defined(__x86_64__) || defined(__i386__)
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop
#else
#include <immintrin.h>
#endif
#endif

#if defined(__AVX512F__)
#include <algorithm>
#include <cstdint>

namespace splitinfer {
// Lanes [begin, end) of a 16-lane mask (clipped to [0, 16)).
inline __mmask16 lanes16(int64_t begin, int64_t end) {
  begin = std::clamp<int64_t>(begin, 0, 16), end = std::clamp<int64_t>(end, 0, 16);
  return end <= begin ? 0 : static_cast<__mmask16>(((1u << end) - 1) & ~((1u << begin) - 1));
}
}  // namespace splitinfer
#endif
