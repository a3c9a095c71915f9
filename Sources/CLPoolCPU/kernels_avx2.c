/* The CPU kernels for x86-64 with AVX2, FMA and F16C (kernels.inc). */
#if defined(__x86_64__)
#include <immintrin.h>

#define FN(name) name##_avx2
#define HAS_FMA 1
#define HAS_F16C 1
#pragma clang attribute push(__attribute__((target("avx2,fma,f16c"))), apply_to = function)
#include "kernels.inc"
#pragma clang attribute pop
#endif
