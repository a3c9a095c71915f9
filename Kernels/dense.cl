/*
 * Dense (fully connected) layer: y[n, m] = act(sum_k x[n, k] * W(k, m) + bias[m]).
 *
 * Algorithm. Register-blocked matrix product with no local memory and no barriers, so it suits
 * CPU drivers (where barriers are slow) and still coalesces on GPUs. Each work-item keeps a
 * ROWS x 16 tile of y in sixteen-wide accumulators (two acc8_t per row) and walks k once.
 *   dense_in_out  W stored [K, M] (Keras "in x out"): per k, two vector loads of W's row k feed
 *                 2 * ROWS vector fused multiply-adds with x[n, k] broadcast.
 *   an out-in W   stored [M, K] (PyTorch "out x in"): the host transposes W once into [K, M]
 *                 with `transpose` (a cheap O(K * M) pass) and then runs dense_in_out.
 *   dense_in_out_tiled  the GPU variant, at the end of this file: 64 x 64 tiles through local
 *                 memory, 4 x 4 per work-item.
 * Tiles on the right or bottom edge clamp their loads to the last valid row / column and skip
 * those stores, so any N, K, M >= 1 works.
 *
 * Order of operations (determinism and batch invariance). Every kernel computes each output the
 * same way: acc = fma(x[n, k], W[k, m], acc) for k = 0, 1, ... in order, from acc = 0, in blocks
 * of K_BLOCK steps whose sums fold into a total in order (one block: the block's sum is the
 * total); then + bias, then the activation; a NaN result is stored as the quiet NaN of no payload
 * (canonical_nan). fma rounds once, so the result does not depend on how a compiler would
 * contract a * b + c, on the kernel, the tile, or the batch a row came in.
 *
 * Storage (storage.h): x, W, bias and y are `real`; products accumulate in acc_t (float, or double
 * for double storage).
 *
 * Epilogue: bias (when has_bias != 0) and the element-wise activation are fused; softmax needs the
 * whole row and runs afterwards as softmax_rows (numerically stable: subtract the row max).
 *
 * Launch contract:
 *   dense_in_out  2-D global size (>= ceil(M / 16), >= ceil(N / ROWS)); work-items along
 *                 dimension 1 share a column strip of W, so a local size of (1, L) reuses it from
 *                 cache. dense_in_out_single_row: the same with ceil(N / ROWS) replaced by N.
 *   transpose     2-D global size (>= cols, >= rows) of the source [rows, cols]
 *   softmax_rows  1-D global size >= N
 */

#ifndef CLPOOL_STORAGE_H
#include "storage.h"
#endif

#ifndef ROWS
#define ROWS 6 /* rows of y per work-item in dense_in_out */
#endif
#ifndef K_BLOCK
#define K_BLOCK 256 /* k steps summed before folding into the totals (the CPU's CLPOOL_K_BLOCK) */
#endif
#define TILE 64   /* dense_in_out_tiled: output tile edge */
#define TILE_K 16 /* dense_in_out_tiled: k steps per local-memory stage */

/* The kernels' own assumptions (CLPOOL_BUILD_OPTIONS may set K_BLOCK; the host sets ROWS). */
#if ROWS < 1 || ROWS > 16
#error "ROWS must be from 1 to 16"
#endif
#if K_BLOCK < TILE_K || K_BLOCK % TILE_K != 0
#error "K_BLOCK must be a positive multiple of 16"
#endif

#define ACTIVATION_NONE 0
#define ACTIVATION_RELU 1
#define ACTIVATION_SIGMOID 2

/* relu keeps NaN (NaN < 0 is false), as frameworks do. */
inline acc_t activate(acc_t v, int activation) {
  if (activation == ACTIVATION_RELU) v = v < 0 ? (acc_t)0 : v;
  if (activation == ACTIVATION_SIGMOID) v = 1 / (1 + exp(-v));
  return canonical_nan(v);
}

/* Eight consecutive W entries of row k from column m0, clamping columns past the edge. */
inline acc8_t load_w8(__global const real *w_row, uint m0, uint m_dim) {
  if (m0 + 8 <= m_dim) return LOAD8(0, w_row + m0);
  acc_t lanes[8];
  for (uint j = 0; j < 8; ++j) lanes[j] = LOAD(min(m0 + j, m_dim - 1), w_row);
  return vload8(0, lanes);
}

/* lo/hi[r] = sum over k in [k_begin, k_end) of x_row[r][k] * W[k, m0 .. m0 + 16), one fma per k. */
inline void accumulate_tile(__global const real *const *x_row, __global const real *w,
                            uint k_begin, uint k_end, uint m0, uint m_dim, const uint rows,
                            acc8_t *lo, acc8_t *hi) {
  for (uint r = 0; r < ROWS; ++r) lo[r] = hi[r] = (acc8_t)(0);
  if (m0 + 16 <= m_dim) {
    for (uint k = k_begin; k < k_end; ++k) {
      __global const real *w_row = w + (ulong)k * m_dim + m0;
      acc8_t w_lo = LOAD8(0, w_row), w_hi = LOAD8(1, w_row);
      for (uint r = 0; r < rows; ++r) {
        acc8_t xv = (acc8_t)(LOAD(k, x_row[r]));
        lo[r] = fma(xv, w_lo, lo[r]);
        hi[r] = fma(xv, w_hi, hi[r]);
      }
    }
  } else {
    for (uint k = k_begin; k < k_end; ++k) {
      __global const real *w_row = w + (ulong)k * m_dim;
      acc8_t w_lo = load_w8(w_row, m0, m_dim), w_hi = load_w8(w_row, m0 + 8, m_dim);
      for (uint r = 0; r < rows; ++r) {
        acc8_t xv = (acc8_t)(LOAD(k, x_row[r]));
        lo[r] = fma(xv, w_lo, lo[r]);
        hi[r] = fma(xv, w_hi, hi[r]);
      }
    }
  }
}

/* The work-item's tile: `rows` rows of x from its first (rows past x_rows repeat the last), times
 * W's 16 columns from m0, into the first min(rows, x_rows) rows of y. `rows` is a literal at each
 * call site (ROWS or 1), so after inlining the loops over it unroll into registers. */
inline void dense_tile(__global const real *x, uint x_rows, __global const real *w,
                       __global const real *bias, __global real *y, uint k_dim, uint m_dim,
                       int has_bias, int activation, const uint rows, uint m0) {
  __global const real *x_row[ROWS];
  for (uint r = 0; r < rows; ++r) x_row[r] = x + (ulong)min(r, x_rows - 1) * k_dim;
  /* Up to K_BLOCK steps of k sum straight into the tile; longer sums run in blocks of K_BLOCK
   * folded into totals, so rounding error grows with the block length and the number of blocks,
   * not with K (SPEC: 1e-5 for any K). Two paths, because carrying the totals through short sums
   * measured 2x slower on PoCL. */
  acc8_t lo[ROWS], hi[ROWS];
  if (k_dim <= K_BLOCK) {
    accumulate_tile(x_row, w, 0, k_dim, m0, m_dim, rows, lo, hi);
  } else {
    acc8_t total_lo[ROWS], total_hi[ROWS];
    for (uint r = 0; r < rows; ++r) total_lo[r] = total_hi[r] = (acc8_t)(0);
    for (uint k_begin = 0; k_begin < k_dim; k_begin += K_BLOCK) {
      accumulate_tile(x_row, w, k_begin, min(k_begin + K_BLOCK, k_dim), m0, m_dim, rows, lo, hi);
      for (uint r = 0; r < rows; ++r) {
        total_lo[r] += lo[r];
        total_hi[r] += hi[r];
      }
    }
    for (uint r = 0; r < rows; ++r) {
      lo[r] = total_lo[r];
      hi[r] = total_hi[r];
    }
  }
  for (uint r = 0; r < rows && r < x_rows; ++r) {
    acc_t out[16];
    vstore8(lo[r], 0, out);
    vstore8(hi[r], 1, out);
    __global real *y_row = y + (ulong)r * m_dim;
    for (uint j = 0; j < 16 && m0 + j < m_dim; ++j) {
      acc_t value = out[j] + (has_bias ? LOAD(m0 + j, bias) : (acc_t)0);
      STORE(activate(value, activation), m0 + j, y_row);
    }
  }
}

__kernel void dense_in_out(__global const real *x, __global const real *w,
                           __global const real *bias, __global real *y, uint n_dim, uint k_dim,
                           uint m_dim, int has_bias, int activation) {
  uint m0 = (uint)get_global_id(0) * 16;
  uint r0 = (uint)get_global_id(1) * ROWS;
  if (m0 >= m_dim || r0 >= n_dim) return;
  dense_tile(x + (ulong)r0 * k_dim, min((uint)ROWS, n_dim - r0), w, bias, y + (ulong)r0 * m_dim,
             k_dim, m_dim, has_bias, activation, ROWS, m0);
}

/* The same with one row per work-item: for batches smaller than ROWS (batch-1 GEMV), where a
 * ROWS-high tile would mostly multiply clamped duplicate rows. */
__kernel void dense_in_out_single_row(__global const real *x, __global const real *w,
                                      __global const real *bias, __global real *y, uint n_dim,
                                      uint k_dim, uint m_dim, int has_bias, int activation) {
  uint m0 = (uint)get_global_id(0) * 16;
  uint r0 = (uint)get_global_id(1);
  if (m0 >= m_dim || r0 >= n_dim) return;
  dense_tile(x + (ulong)r0 * k_dim, 1, w, bias, y + (ulong)r0 * m_dim, k_dim, m_dim, has_bias,
             activation, 1, m0);
}

/* out[c, r] = in[r, c] for in [rows, cols]. */
__kernel void transpose(__global const real *in, __global real *out, uint rows, uint cols) {
  uint c = (uint)get_global_id(0), r = (uint)get_global_id(1);
  if (c < cols && r < rows) STORE(LOAD((ulong)r * cols + c, in), (ulong)c * rows + r, out);
}

/* softmax over each row of y [N, M], in place: exp(v - max) / sum. */
__kernel void softmax_rows(__global real *y, uint n_dim, uint m_dim) {
  uint row = (uint)get_global_id(0);
  if (row >= n_dim) return;
  __global real *p = y + (ulong)row * m_dim;
  acc_t top = -INFINITY;
  for (uint j = 0; j < m_dim; ++j) top = fmax(top, LOAD(j, p)); /* NaN reaches every output via sum */
  acc_t sum = 0;
  for (uint j = 0; j < m_dim; ++j) sum += exp(LOAD(j, p) - top);
  for (uint j = 0; j < m_dim; ++j) STORE(canonical_nan(exp(LOAD(j, p) - top) / sum), j, p);
}

/* ------------------------------------------------- work-group tiled variant (GPUs) */

/* The same product for GPUs: each work-group of 16 x 16 work-items computes a 64 x 64 tile of y,
 * each work-item a 4 x 4 block of it (register blocking), stepping k by 16 through tiles of x
 * [64 x 16] and W [16 x 64] staged in local memory (two barriers per step; cheap on a GPU, slow
 * on CPU drivers, which get dense_in_out instead). Loads outside the matrices read 0 and stores
 * outside are skipped, so any N, K, M >= 1 works.
 * Launch: 2-D, local size (16, 16), global size (ceil(M / 64) * 16, ceil(N / 64) * 16). */
__kernel __attribute__((reqd_work_group_size(16, 16, 1)))
void dense_in_out_tiled(__global const real *x, __global const real *w,
                        __global const real *bias, __global real *y, uint n_dim, uint k_dim,
                        uint m_dim, int has_bias, int activation) {
  __local acc_t x_tile[TILE][TILE_K];
  __local acc_t w_tile[TILE_K][TILE];
  uint tx = (uint)get_local_id(0), ty = (uint)get_local_id(1);
  uint row0 = (uint)get_group_id(1) * TILE, col0 = (uint)get_group_id(0) * TILE;
  uint linear = ty * 16 + tx; /* 0..255: each work-item stages 4 elements of each tile */
  acc_t acc[4][4], total[4][4];
  for (uint i = 0; i < 4; ++i)
    for (uint j = 0; j < 4; ++j) acc[i][j] = total[i][j] = 0;
  for (uint k0 = 0; k0 < k_dim; k0 += TILE_K) {
    if (k0 % K_BLOCK == 0) { /* fold each K_BLOCK of k, as dense_tile does (0 + acc = acc) */
      for (uint i = 0; i < 4; ++i)
        for (uint j = 0; j < 4; ++j) {
          total[i][j] += acc[i][j];
          acc[i][j] = 0;
        }
    }
    for (uint e = linear; e < TILE * TILE_K; e += 256) {
      uint r = e / TILE_K, c = e % TILE_K; /* x tile: row r, column c */
      /* -0 pads k: fma(-0, 0, acc) is acc for every acc, -0 included (a +0 pad would make it +0) */
      x_tile[r][c] = (row0 + r < n_dim && k0 + c < k_dim) ? LOAD((ulong)(row0 + r) * k_dim + k0 + c, x) : -(acc_t)0;
      uint kr = e / TILE, mc = e % TILE; /* W tile: row kr, column mc (coalesced along M) */
      w_tile[kr][mc] = (k0 + kr < k_dim && col0 + mc < m_dim) ? LOAD((ulong)(k0 + kr) * m_dim + col0 + mc, w) : (acc_t)0;
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    for (uint kk = 0; kk < TILE_K; ++kk) {
      acc_t xv[4], wv[4];
      for (uint i = 0; i < 4; ++i) xv[i] = x_tile[ty + 16 * i][kk];
      for (uint j = 0; j < 4; ++j) wv[j] = w_tile[kk][tx + 16 * j];
      for (uint i = 0; i < 4; ++i)
        for (uint j = 0; j < 4; ++j) acc[i][j] = fma(xv[i], wv[j], acc[i][j]);
    }
    barrier(CLK_LOCAL_MEM_FENCE);
  }
  for (uint i = 0; i < 4; ++i) {
    uint row = row0 + ty + 16 * i;
    if (row >= n_dim) continue;
    for (uint j = 0; j < 4; ++j) {
      uint col = col0 + tx + 16 * j;
      if (col >= m_dim) continue;
      acc_t sum = k_dim <= K_BLOCK ? acc[i][j] : total[i][j] + acc[i][j]; /* one block: the chain itself, as dense_tile */
      STORE(activate(sum + (has_bias ? LOAD(col, bias) : (acc_t)0), activation), (ulong)row * m_dim + col, y);
    }
  }
}
