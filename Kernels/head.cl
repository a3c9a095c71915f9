/*
 * The fused classifier head: y = act(mean_spatial(x) · W + bias), in one launch.
 *
 * Built in one program after pool.cl and dense.cl (the host concatenates the three; so does
 * scripts/lint-kernels), reusing their sum_contiguous / sum_strided / finish_mean and dense_tile,
 * so neither the reduction nor the matrix product exists twice.
 *
 * Algorithm. Work-group (g, b) owns the ROWS batch rows starting at b * ROWS. Phase 1: its
 * work-items pool those rows' C planes (blocked Kahan sums, then finish_mean) into the work-group's
 * own region of the device scratch buffer `pooled`; the [N, C] intermediate never reaches the
 * host. A barrier with a global-memory fence makes the rows visible to the whole work-group.
 * Phase 2: the work-items compute the ROWS x 16 tiles of y from those rows and W, column strips
 * from g * 16 * local size on, stepping by the whole grid's width. When the grid has several column
 * groups (small batches, so every core has work), each pools its rows again, into its own region:
 * cheap next to the product, one launch, and no work-group ever reads what another writes (one
 * shared region was a read-write race, which Oclgrind reported). A partial last tile pools only
 * its real rows (the tile reads the last one again for the rest); batches smaller than ROWS run
 * head_avg_single_row, one row per work-group. A row's result depends on that row alone: the same
 * in any batch.
 *
 * Storage (storage.h): x, W, bias, y and `pooled` are `real`, so the pooled rows round as an
 * unfused GAP's output would; sums run in acc_t.
 *
 * W is [C, M] (in-out); the host transposes an out-in weight first.
 *
 * Launch: 2-D, global (G * L, ceil(N / ROWS)), local (L, 1), for G column groups of L
 * work-items; `pooled` holds at least G * ceil(N / ROWS) * ROWS * C elements.
 * head_avg_single_row: the same with ROWS replaced by 1.
 */

#ifndef CLPOOL_STORAGE_H
#include "storage.h"
#endif

/* From pool.cl and dense.cl (declared here so this file also compiles, and lints, on its own). */
#ifndef ROWS
#define ROWS 6 /* dense.cl's default; the host passes -DROWS to the whole program */
#endif
acc_t sum_contiguous(__global const real *p, ulong len);
acc_t sum_strided(__global const real *p, ulong len, ulong stride);
acc_t finish_mean(acc_t sum, __global const real *p, ulong len, ulong stride);
void dense_tile(__global const real *x, uint x_rows, __global const real *w,
                __global const real *bias, __global real *y, uint k_dim, uint m_dim, int has_bias,
                int activation, const uint rows, uint m0);

/* The kernels' shared body: `rows` batch rows per work-group (a literal at each call site, so the
 * tile unrolls into registers). */
inline void head_rows(__global const real *x, __global const real *w, __global const real *bias,
                      __global real *y, __global real *pooled, uint n_dim, uint channels,
                      ulong spatial, uint m_dim, int has_bias, int activation, int channels_last,
                      const uint rows) {
  uint lid = (uint)get_local_id(0), size = (uint)get_local_size(0);
  uint r0 = (uint)get_group_id(1) * rows;
  uint present = min(rows, n_dim - r0); /* the last tile may be partial: pool only real rows */
  __global real *mine =
      pooled + ((ulong)get_group_id(1) * get_num_groups(0) + get_group_id(0)) * rows * channels;
  for (uint i = lid; i < present * channels; i += size) {
    uint r = i / channels, c = i % channels;
    ulong n = r0 + r;
    __global const real *plane = channels_last ? x + n * spatial * channels + c
                                               : x + (n * channels + c) * spatial;
    ulong stride = channels_last ? channels : 1;
    acc_t sum = channels_last ? sum_strided(plane, spatial, stride) : sum_contiguous(plane, spatial);
    STORE(finish_mean(sum, plane, spatial, stride), (ulong)r * channels + c, mine);
  }
  barrier(CLK_GLOBAL_MEM_FENCE);
  uint strip_step = (uint)get_global_size(0) * 16;
  for (uint m0 = (uint)get_global_id(0) * 16; m0 < m_dim; m0 += strip_step)
    dense_tile(mine, present, w, bias, y + (ulong)r0 * m_dim, channels, m_dim, has_bias,
               activation, rows, m0);
}

__kernel void head_avg(__global const real *x, __global const real *w,
                       __global const real *bias, __global real *y, __global real *pooled,
                       uint n_dim, uint channels, ulong spatial, uint m_dim, int has_bias,
                       int activation, int channels_last) {
  head_rows(x, w, bias, y, pooled, n_dim, channels, spatial, m_dim, has_bias, activation,
            channels_last, ROWS);
}

/* For batches smaller than ROWS: one row per work-group (grid dimension 1 is N), so no tile
 * multiplies clamped duplicate rows. */
__kernel void head_avg_single_row(__global const real *x, __global const real *w,
                                  __global const real *bias, __global real *y,
                                  __global real *pooled, uint n_dim, uint channels,
                                  ulong spatial, uint m_dim, int has_bias, int activation,
                                  int channels_last) {
  head_rows(x, w, bias, y, pooled, n_dim, channels, spatial, m_dim, has_bias, activation,
            channels_last, 1);
}
