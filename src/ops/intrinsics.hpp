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
