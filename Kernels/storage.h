/*
 * Storage precision of the whole program, chosen by the host at build time:
 *   (default)        float storage, float arithmetic
 *   -DSTORAGE_HALF   half storage, float arithmetic. Only vload_half / vstore_half touch the
 *                    data, which are core OpenCL 1.2, so this needs no cl_khr_fp16 (which is about
 *                    half *arithmetic*, never used here).
 *   -DSTORAGE_DOUBLE double storage and arithmetic; needs cl_khr_fp64 (the host checks first).
 *
 * real       the element type of every buffer of data
 * acc_t      the arithmetic type (acc2_t, acc4_t, acc8_t its vectors; mask8_t what comparing two
 *            acc8_t gives)
 * LOAD(i, p)   element i of p as acc_t;   LOAD8(i, p)  the i-th 8-element vector of p as acc8_t
 * STORE(v, i, p)  p[i] = v, rounded to the nearest real (ties to even)
 * store_result(v, i, p)  STORE for a pooled result, every NaN stored as the quiet NaN of no
 *            payload, sign clear (half 0x7e00), as the CPU backend stores it: drivers' NAN, NaN
 *            payloads and what vstore_half makes of a NaN differ
 * INDEX_MASK8(m)  a mask8_t as the int8 mask that selects int8 positions (positions are never
 *            long8: see pool.cl, Portability)
 * ACC_MAX    the largest finite acc_t
 * ACC_NAN    the quiet NaN of no payload as acc_t (drivers' NAN differ: PoCL's is 0x7fffffff)
 *
 * Every kernel file includes this; the host puts it first in the program, so the include guard
 * makes the #include lines there dead (a driver compiling a string cannot open files).
 */
#ifndef CLPOOL_STORAGE_H
#define CLPOOL_STORAGE_H

#if defined(STORAGE_DOUBLE)
#pragma OPENCL EXTENSION cl_khr_fp64 : enable
typedef double real;
typedef double acc_t;
typedef double2 acc2_t;
typedef double4 acc4_t;
typedef double8 acc8_t;
typedef long8 mask8_t;
#define INDEX_MASK8(m) convert_int8(m)
#define ACC_MAX DBL_MAX
#define ACC_NAN as_double(0x7FF8000000000000UL)
#define LOAD(i, p) ((acc_t)(p)[i])
#define LOAD8(i, p) vload8((i), (p))
#define STORE(v, i, p) ((p)[i] = (real)(v))
#else
/* half and float storage: float arithmetic */
typedef float acc_t;
typedef float2 acc2_t;
typedef float4 acc4_t;
typedef float8 acc8_t;
typedef int8 mask8_t;
#define INDEX_MASK8(m) (m)
#define ACC_MAX FLT_MAX
#define ACC_NAN as_float(0x7FC00000U)
#if defined(STORAGE_HALF)
typedef half real;
#define LOAD(i, p) vload_half((size_t)(i), (p))
#define LOAD8(i, p) vload_half8((size_t)(i), (p))
#define STORE(v, i, p) vstore_half_rte((v), (size_t)(i), (p))
#else
typedef float real;
#define LOAD(i, p) ((acc_t)(p)[i])
#define LOAD8(i, p) vload8((i), (p))
#define STORE(v, i, p) ((p)[i] = (real)(v))
#endif
#endif

/* Every NaN an output can be is one NaN, the quiet NaN of no payload: where two NaNs meet in a
 * sum, which one an instruction keeps depends on its operand order, which differs between kernels
 * and tiles, so a NaN's payload would depend on the batch (SPEC: batch invariance). */
inline acc_t canonical_nan(acc_t v) { return isnan(v) ? ACC_NAN : v; }

inline void store_result(acc_t v, size_t i, __global real *p) {
#if defined(STORAGE_HALF)
  if (isnan(v))
    ((__global ushort *)p)[i] = (ushort)0x7E00;
  else
    STORE(v, i, p);
#else
  STORE(canonical_nan(v), i, p);
#endif
}

#endif /* CLPOOL_STORAGE_H */
