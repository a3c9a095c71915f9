/* Picks the kernels' instruction set once, from cpuid (and CLPOOL_CPU_ISA), and forwards each
 * entry point of clpool_cpu.h to it. */
#include <stdlib.h>
#include <string.h>

#include "clpool_cpu.h"

#if defined(__x86_64__)
#include <cpuid.h>
#endif

#define DECLARE(suffix)                                                                                  \
  void sum_items_##suffix(int, const void *, size_t, size_t, size_t, size_t, void *);                  \
  void max_items_##suffix(int, const void *, size_t, size_t, size_t, size_t, void *, int64_t *);       \
  void sum_channels_##suffix(int, const void *, size_t, size_t, size_t, size_t, void *, size_t, int);  \
  void max_channels_##suffix(int, const void *, size_t, size_t, size_t, size_t, void *, int64_t *, size_t, int); \
  void fold_##suffix(int, int, const void *, const int64_t *, size_t, size_t, size_t, void *, int64_t *, const void *, int, size_t); \
  double rescaled_mean_##suffix(int, const void *, size_t, size_t);                                   \
  void convert_##suffix(int, const void *, int, int, void *, size_t);                                \
  void transpose_##suffix(int, const void *, size_t, size_t, void *);                                 \
  void activate_##suffix(int, void *, size_t, size_t, int);                                            \
  void gemm_##suffix(int, const void *, const void *, const void *, void *, size_t, size_t, size_t, size_t, size_t, size_t); \
  void gemm_block_##suffix(int, const void *, const void *, void *, size_t, size_t, size_t, size_t, size_t, size_t, size_t); \
  void fold_blocks_##suffix(int, const void *, size_t, size_t, const void *, size_t, void *); \
  double read_bytes_##suffix(const void *, size_t);
DECLARE(baseline)
#if defined(__x86_64__)
DECLARE(avx2)
DECLARE(avx512)
#endif

/* AVX2, FMA and F16C in the CPU, and AVX state enabled by the OS (XGETBV); then AVX-512 F, VL,
 * BW and DQ with its state (opmask and the upper ZMM registers) enabled too. */
static int detect(void) {
#if defined(__x86_64__)
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return CLPOOL_ISA_BASELINE;
  int fma = (c >> 12) & 1, osxsave = (c >> 27) & 1, avx = (c >> 28) & 1, f16c = (c >> 29) & 1;
  if (!(fma && osxsave && avx && f16c)) return CLPOOL_ISA_BASELINE;
  unsigned low, high;
  __asm__ volatile("xgetbv" : "=a"(low), "=d"(high) : "c"(0));
  if ((low & 6) != 6) return CLPOOL_ISA_BASELINE;
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d) || !((b >> 5) & 1)) return CLPOOL_ISA_BASELINE;
  const char *wanted = getenv("CLPOOL_CPU_ISA");
  if (wanted && strcmp(wanted, "baseline") == 0) return CLPOOL_ISA_BASELINE;
  if (wanted && strcmp(wanted, "avx2") == 0) return CLPOOL_ISA_AVX2;
  int avx512 = ((b >> 16) & 1) && ((b >> 17) & 1) && ((b >> 30) & 1) && ((b >> 31) & 1); /* F, DQ, BW, VL */
  if (avx512 && (low & 0xE6) == 0xE6) return CLPOOL_ISA_AVX512;
  return CLPOOL_ISA_AVX2;
#else
  return CLPOOL_ISA_BASELINE;
#endif
}

int clpool_cpu_isa(void) {
  static int isa = -1; /* a race here only computes the same answer twice */
  int known = __atomic_load_n(&isa, __ATOMIC_RELAXED);
  if (known < 0) {
    known = detect();
    __atomic_store_n(&isa, known, __ATOMIC_RELAXED);
  }
  return known;
}

const char *clpool_cpu_isa_name(void) {
  switch (clpool_cpu_isa()) {
  case CLPOOL_ISA_AVX512: return "AVX-512 (F, VL, BW, DQ) + AVX2, FMA, F16C";
  case CLPOOL_ISA_AVX2: return "AVX2+FMA+F16C";
  default: return "baseline x86-64 (SSE2)";
  }
}

/* The product and pooling run the AVX-512 build where there is one (FORWARD_AVX512): the product's
 * wider vectors and pooling's extra registers give the AVX2 build's bits (kernels_avx512.c). The
 * other kernels, never an operation's main cost, run the AVX2 build there too. */
#if defined(__x86_64__)
#define FORWARD(call, ...)                                          \
  if (clpool_cpu_isa() != CLPOOL_ISA_BASELINE) return call##_avx2(__VA_ARGS__); \
  return call##_baseline(__VA_ARGS__)
#define FORWARD_AVX512(call, ...)                                  \
  if (clpool_cpu_isa() == CLPOOL_ISA_AVX512) return call##_avx512(__VA_ARGS__); \
  FORWARD(call, __VA_ARGS__)
#else
#define FORWARD(call, ...) return call##_baseline(__VA_ARGS__)
#define FORWARD_AVX512 FORWARD
#endif

void clpool_sum_items(int type, const void *x, size_t length, size_t chunk_length, size_t first, size_t count,
                      void *out) {
  FORWARD_AVX512(sum_items, type, x, length, chunk_length, first, count, out);
}

void clpool_max_items(int type, const void *x, size_t length, size_t chunk_length, size_t first, size_t count,
                      void *out, int64_t *indices) {
  FORWARD_AVX512(max_items, type, x, length, chunk_length, first, count, out, indices);
}

void clpool_sum_channels(int type, const void *x, size_t channels, size_t positions, size_t c0, size_t width,
                         void *out, size_t out_stride, int final) {
  FORWARD_AVX512(sum_channels, type, x, channels, positions, c0, width, out, out_stride, final);
}

void clpool_max_channels(int type, const void *x, size_t channels, size_t positions, size_t c0, size_t width,
                         void *out, int64_t *indices, size_t out_stride, int final) {
  FORWARD_AVX512(max_channels, type, x, channels, positions, c0, width, out, indices, out_stride, final);
}

void clpool_fold(int type, int average, const void *partials, const int64_t *partial_indices, size_t planes,
                 size_t chunks, size_t length, void *out, int64_t *indices, const void *x, int channels_last,
                 size_t channels) {
  FORWARD(fold, type, average, partials, partial_indices, planes, chunks, length, out, indices, x, channels_last, channels);
}

double clpool_rescaled_mean(int type, const void *p, size_t count, size_t stride) {
  FORWARD(rescaled_mean, type, p, count, stride);
}

void clpool_convert(int from, const void *source, int swap_bytes, int to, void *destination, size_t count) {
  FORWARD(convert, from, source, swap_bytes, to, destination, count);
}

void clpool_gemm(int type, const void *x, const void *w, const void *bias, void *y, size_t k, size_t m,
                 size_t row_begin, size_t row_end, size_t column_begin, size_t column_end) {
  FORWARD_AVX512(gemm, type, x, w, bias, y, k, m, row_begin, row_end, column_begin, column_end);
}

void clpool_gemm_block(int type, const void *x, const void *w, void *partial, size_t k, size_t m, size_t row_begin,
                       size_t row_end, size_t column_begin, size_t column_end, size_t block) {
  FORWARD_AVX512(gemm_block, type, x, w, partial, k, m, row_begin, row_end, column_begin, column_end, block);
}

void clpool_fold_blocks(int type, const void *partials, size_t blocks, size_t count, const void *bias, size_t m,
                        void *y) {
  FORWARD(fold_blocks, type, partials, blocks, count, bias, m, y);
}

void clpool_transpose(int type, const void *source, size_t rows, size_t cols, void *destination) {
  FORWARD(transpose, type, source, rows, cols, destination);
}

void clpool_activate(int type, void *y, size_t rows, size_t cols, int activation) {
  FORWARD(activate, type, y, rows, cols, activation);
}

double clpool_read_bytes(const void *p, size_t bytes) { FORWARD_AVX512(read_bytes, p, bytes); }
