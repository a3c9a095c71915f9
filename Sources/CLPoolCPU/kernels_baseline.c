/* The CPU kernels for any CPU the binary runs on: baseline x86-64 (SSE2) or another architecture
 * (kernels.inc). */
/* 32-byte vectors pass between static inline functions only, never across an ABI boundary: the
 * compiler's note that SSE2 passes them differently from AVX does not apply. */
#pragma clang diagnostic ignored "-Wpsabi"
#define FN(name) name##_baseline
#define HAS_FMA 0
#define HAS_F16C 0
#include "kernels.inc"
