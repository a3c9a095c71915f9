/* The CPU kernels for x86-64 with AVX-512 (F, VL, BW, DQ) beside AVX2, FMA and F16C
 * (kernels.inc): the product runs on 16-float (8-double) vectors, which group outputs differently
 * but keep every output's chain; channels-first pooling runs the AVX2 build's 8-lane operations
 * (a plane's lanes are its add order), with 32 vector registers and mask registers to hold them;
 * channels-last pooling runs 16-float (8-double) vectors of channels. Every build gives the AVX2
 * build's bits (InstructionSetTests). */
#if defined(__x86_64__)
#include <immintrin.h>

/* 64-byte vectors pass between static inline functions only, never across an ABI boundary. */
#pragma clang diagnostic ignored "-Wpsabi"
#define FN(name) name##_avx512
#define HAS_FMA 1
#define HAS_F16C 1
#define WIDE_VECTORS 1
#pragma clang attribute push(__attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma,f16c"))), apply_to = function)
#include "kernels.inc"
#pragma clang attribute pop
#endif
