/*
 * Global average pooling (GAP) and global max pooling (GMP).
 *
 * Algorithm. Every (n, c) plane is a "row" of S = prod(spatial) elements: contiguous for
 * channels-first input [N, C, S...], strided by C for channels-last input [N, S..., C]. A row may be
 * split into `chunks` consecutive pieces of `chunk_len` elements (so a few huge planes still fill
 * the device): pass 1 writes one partial per (row, chunk) at partial[row * chunks + chunk], and
 * pass 2 (gap_combine / gmp_combine) folds each row's partials in chunk order. With chunks == 1
 * pass 1 writes the final value. The host chooses chunk_len from the plane size and the device
 * alone, never from the batch, so a sample's result is the same in any batch (batch invariance),
 * and the order of every floating-point operation depends on the shape and the device only
 * (bitwise deterministic).
 *
 * Precision. Sums run VEC-wide lanes over blocks of BLOCK elements, then add each block's sum into
 * a Kahan-compensated accumulator, so the rounding error grows with BLOCK / VEC + log2(VEC), not
 * with the plane size (SPEC: |mean - ref| <= 4e-6 * mean|x| for planes up to 2^26 elements). The
 * program must not be built with -cl-fast-relaxed-math or -cl-unsafe-math-optimizations, which
 * would let the compiler cancel the compensation (the host refuses them).
 *
 * Range. A sum of finite values can overflow although their mean fits (49 values of FLT_MAX). Every
 * mean goes through finish_mean: a non-finite sum is recomputed with each element scaled by 2^-64
 * (exact), which cannot overflow, and the mean scaled back. Infinities and NaN in the input still
 * give what IEEE arithmetic says (+inf; NaN for NaN or +inf with -inf). Normal data never takes
 * this path: the cost is one isfinite per plane.
 *
 * Max semantics (SPEC). NaN anywhere in a plane gives NaN; the index is the plane-relative,
 * row-major position of the first maximum, or of the first NaN if there is one, and a maximum is
 * the element there: a zero maximum has the sign of the first zero (-0 == +0, so which zero a
 * lane keeps would otherwise depend on the lanes). Comparisons are false for NaN, so NaN is
 * tracked on its own.
 *
 * Variants (the host picks one per device type and shape, by the rule in OpenCLPooling.swift):
 *   gap_rows / gmp_rows              one work-item per (row, chunk), contiguous rows, vloads
 *                                    (CPU drivers: no barriers, the loop vectorises)
 *   gap_rows_wg / gmp_rows_wg        `seg` work-items of a WG_SIZE work-group per (row, chunk),
 *                                    WG_SIZE / seg items per group, a local-memory tree per segment
 *                                    (GPUs: neighbouring work-items read neighbouring elements, no
 *                                    lane idles on a 7x7 plane)
 *   gap_channels_last / gmp_...      one work-item per (n, 8 channels, chunk), vector across C
 *   gap_combine / gmp_combine        pass 2: one work-item per row
 *   gap_ragged / gmp_ragged          a ragged batch: per-sample offsets and spatial sizes
 *
 * Storage (storage.h): data are `real` (half, float or double), arithmetic is acc_t (float, or
 * double for double storage). Partial sums between the passes stay acc_t, so half storage rounds
 * once, at the end.
 *
 * Portability. Positions of maxima are tracked in int8 vectors selected by int8 masks, never in
 * long8: Mesa rusticl 22.3 miscompiles select() on long2/4/8 (Tests/Fixtures/driver-bugs). The
 * host keeps every position a work-item tracks below 2^31.
 */

#ifndef CLPOOL_STORAGE_H
#include "storage.h"
#endif

#ifndef BLOCK
#define BLOCK 256 /* elements per Kahan block; a multiple of VEC */
#endif
#ifndef WG_SIZE
#define WG_SIZE 256 /* work-group size of the *_wg kernels; a power of two */
#endif
#define VEC 8 /* lanes of the vector kernels (acc8_t) */

/* The kernels' own assumptions about their tunables (CLPOOL_BUILD_OPTIONS may set BLOCK): a bad
 * value fails the build with this message rather than computing wrong sums. */
#if BLOCK < VEC || BLOCK > 1024 || BLOCK % VEC != 0
#error "BLOCK must be a multiple of 8 from 8 to 1024"
#endif
#if WG_SIZE < 1 || WG_SIZE > 1024 || (WG_SIZE & (WG_SIZE - 1)) != 0
#error "WG_SIZE must be a power of two from 1 to 1024"
#endif

/* ---------------------------------------------------------------- shared helpers */

/* Kahan-compensated accumulation: sum.x is the running sum, sum.y the lost low-order part. Once
 * the sum is infinite (or NaN) the compensation would be inf - inf = NaN and poison later adds,
 * so it is dropped: an infinite sum stays infinite, +inf and -inf still give NaN. */
inline acc2_t kahan_add(acc2_t sum, acc_t value) {
  acc_t y = value - sum.y;
  acc_t t = sum.x + y;
  sum.y = isfinite(t) ? (t - sum.x) - y : (acc_t)0;
  sum.x = t;
  return sum;
}

inline acc_t horizontal_sum(acc8_t v) {
  acc4_t a = v.lo + v.hi;
  acc2_t b = a.lo + a.hi;
  return b.x + b.y;
}

/* Is (value, index) a better max candidate than (best, best_index)? NaN beats numbers; among
 * equals (and among NaNs) the smaller index wins. */
inline bool max_is_better(acc_t value, long index, acc_t best, long best_index) {
  if (isnan(best)) return isnan(value) && index < best_index;
  if (isnan(value)) return true;
  return value > best || (value == best && index < best_index);
}

/* The slow path of finish_mean: the mean of len elements spaced stride apart, each scaled by
 * 2^-64 before it is added (exact, and no sum of finite values can then overflow), blocked and
 * compensated as sum_contiguous is. The mean of finite values is at most the largest magnitude,
 * so a scaled-back mean that rounds past the largest finite value is that value. */
inline acc_t rescaled_mean(__global const real *p, ulong len, ulong stride) {
  const acc_t down = (acc_t)0x1p-64, up = (acc_t)0x1p64;
  acc2_t total = (acc2_t)(0);
  for (ulong i = 0; i < len; i += BLOCK) {
    ulong end = min(len, i + BLOCK);
    acc_t block = 0;
    for (ulong j = i; j < end; ++j) block += LOAD(j * stride, p) * down;
    total = kahan_add(total, block);
  }
  acc_t scaled = total.x / (acc_t)len;
  acc_t mean = scaled * up;
  if (isfinite(scaled) && !isfinite(mean)) mean = copysign(ACC_MAX, scaled);
  return mean;
}

/* The mean of a plane from its sum; `p` (the plane's first element), len and stride locate the
 * plane for the slow path, taken only when the sum is not finite. */
inline acc_t finish_mean(acc_t sum, __global const real *p, ulong len, ulong stride) {
  return isfinite(sum) ? sum / (acc_t)len : rescaled_mean(p, len, stride);
}

/* Sum of len contiguous elements. */
inline acc_t sum_contiguous(__global const real *p, ulong len) {
  acc2_t total = (acc2_t)(0);
  ulong i = 0;
  for (; i + BLOCK <= len; i += BLOCK) {
    acc8_t lanes = (acc8_t)(0);
    for (uint j = 0; j < BLOCK; j += VEC) lanes += LOAD8(0, p + i + j);
    total = kahan_add(total, horizontal_sum(lanes));
  }
  acc8_t lanes = (acc8_t)(0);
  for (; i + VEC <= len; i += VEC) lanes += LOAD8(0, p + i);
  acc_t tail = horizontal_sum(lanes);
  for (; i < len; ++i) tail += LOAD(i, p);
  return kahan_add(total, tail).x;
}

/* Max of len contiguous elements (NaN if any is NaN; a zero maximum has the sign of the first
 * zero); with want_index, also the index (relative to p) of the first maximum, or of the first NaN. The value pass is pure vector code; the index
 * pass rescans and usually stops early. */
inline acc_t max_contiguous(__global const real *p, ulong len, bool want_index, long *out_index) {
  acc8_t best = (acc8_t)(-INFINITY);
  mask8_t nan_seen = (mask8_t)(0);
  ulong i = 0;
  for (; i + VEC <= len; i += VEC) {
    acc8_t v = LOAD8(0, p + i);
    best = select(best, v, v > best); /* false for NaN: NaN is tracked on its own */
    nan_seen |= isnan(v);
  }
  acc4_t a = select(best.lo, best.hi, best.hi > best.lo);
  acc2_t b = select(a.lo, a.hi, a.hi > a.lo);
  acc_t result = b.y > b.x ? b.y : b.x;
  bool has_nan = any(nan_seen);
  for (; i < len; ++i) {
    acc_t v = LOAD(i, p);
    has_nan |= isnan(v);
    result = v > result ? v : result;
  }
  if (has_nan) result = ACC_NAN;
  long index = 0;
  if (has_nan && want_index) {
    while (!isnan(LOAD(index, p))) ++index;
  } else if (!has_nan && (want_index || result == 0)) {
    while (LOAD(index, p) != result) ++index;
    result = LOAD(index, p); /* a zero maximum has its first zero's sign, whichever lane met which first */
  }
  *out_index = index;
  return result;
}

/* Sum of one channel's len elements spaced stride apart. */
inline acc_t sum_strided(__global const real *p, ulong len, ulong stride) {
  acc2_t total = (acc2_t)(0);
  ulong i = 0;
  for (; i + BLOCK <= len; i += BLOCK) {
    acc_t block = 0;
    for (uint j = 0; j < BLOCK; ++j) block += LOAD((i + j) * stride, p);
    total = kahan_add(total, block);
  }
  acc_t tail = 0;
  for (; i < len; ++i) tail += LOAD(i * stride, p);
  return kahan_add(total, tail).x;
}

/* The `lanes` (1..VEC) adjacent channels at p as one vector; lanes past the last repeat it.
 * (Built lane by lane: gathering into a private array and vload8-ing it crashed PoCL 3.1 with
 * half storage when work-items of one group took different branches here.) */
inline acc8_t load_channels(__global const real *p, ulong lanes) {
  if (lanes == VEC) return LOAD8(0, p);
  ulong last = lanes - 1;
  acc8_t v;
  v.s0 = LOAD(0, p);
  v.s1 = LOAD(min(1ul, last), p);
  v.s2 = LOAD(min(2ul, last), p);
  v.s3 = LOAD(min(3ul, last), p);
  v.s4 = LOAD(min(4ul, last), p);
  v.s5 = LOAD(min(5ul, last), p);
  v.s6 = LOAD(min(6ul, last), p);
  v.s7 = LOAD(min(7ul, last), p);
  return v;
}

/* Sums of `lanes` (<= VEC) adjacent channels over len positions spaced `channels` apart (p at the
 * first channel of the first position): one vector load per position, each lane blocked and
 * Kahan-folded. sums[j] for j >= lanes is scratch. */
inline void sum_channel_group(__global const real *p, ulong len, ulong channels, ulong lanes,
                              acc_t *sums) {
  acc2_t total[VEC];
  for (int j = 0; j < VEC; ++j) total[j] = (acc2_t)(0);
  for (ulong i = 0; i < len; i += BLOCK) {
    ulong end = min((ulong)BLOCK, len - i);
    acc8_t block = (acc8_t)(0);
    for (ulong j = 0; j < end; ++j) block += load_channels(p + (i + j) * channels, lanes);
    acc_t block_lanes[VEC];
    vstore8(block, 0, block_lanes);
    for (int j = 0; j < VEC; ++j) total[j] = kahan_add(total[j], block_lanes[j]);
  }
  for (int j = 0; j < VEC; ++j) sums[j] = total[j].x;
}

/* Maxima and first-max positions of `lanes` (<= VEC) adjacent channels, laid out as for
 * sum_channel_group; len < 2^31 (the host's chunking). Positions are int8, selected by the int8
 * masks of the comparisons (see Portability above). */
inline void max_channel_group(__global const real *p, ulong len, ulong channels, ulong lanes,
                              acc_t *maxima, long *positions) {
  acc8_t best = (acc8_t)(-INFINITY);
  int8 best_index = (int8)(0);
  int8 first_nan = (int8)(-1);
  for (ulong i = 0; i < len; ++i) {
    acc8_t v = load_channels(p + i * channels, lanes);
    int8 position = (int8)((int)i);
    mask8_t better = v > best; /* false for NaN, tracked on its own; a later equal (+0 after -0) loses */
    best_index = select(best_index, position, INDEX_MASK8(better));
    first_nan = select(first_nan, position, INDEX_MASK8(isnan(v)) & (first_nan < 0));
    best = select(best, v, better);
  }
  int found[VEC], nans[VEC];
  vstore8(best, 0, maxima);
  vstore8(best_index, 0, found);
  vstore8(first_nan, 0, nans);
  for (int j = 0; j < VEC; ++j) {
    positions[j] = found[j];
    if (nans[j] >= 0) {
      maxima[j] = ACC_NAN;
      positions[j] = nans[j];
    }
  }
}

/* Item `item` of the rows x chunks grid: a pointer to its chunk's first element, the chunk's
 * offset in the row and its length. */
inline __global const real *row_chunk(__global const real *x, ulong item, ulong row_len,
                                      ulong chunk_len, uint chunks, ulong *begin, ulong *len) {
  ulong row = item / chunks, chunk = item % chunks;
  *begin = chunk * chunk_len;
  *len = min(chunk_len, row_len - *begin);
  return x + row * row_len + *begin;
}

/* Pass 1's output for a sum: with one chunk the mean (row at the plane's first element, spaced
 * stride apart), stored; otherwise the partial sum, kept in acc_t for pass 2. */
inline void store_sum(__global real *out, __global acc_t *partial, ulong slot, acc_t sum,
                      uint chunks, __global const real *row, ulong row_len, ulong stride) {
  if (chunks == 1)
    store_result(finish_mean(sum, row, row_len, stride), slot, out);
  else
    partial[slot] = sum;
}

/* ------------------------------------------------- per-work-item, contiguous rows */

/* Launch: 1-D, global size >= rows * chunks (extra work-items return). Each work-item reduces
 * elements [chunk * chunk_len, min(row_len, (chunk + 1) * chunk_len)) of its row and writes
 * store_sum's result (out when chunks == 1, else partial). */
__kernel void gap_rows(__global const real *x, __global real *out, __global acc_t *partial,
                       ulong rows, ulong row_len, ulong chunk_len, uint chunks) {
  ulong item = get_global_id(0);
  if (item >= rows * chunks) return;
  ulong begin, len;
  __global const real *p = row_chunk(x, item, row_len, chunk_len, chunks, &begin, &len);
  store_sum(out, partial, item, sum_contiguous(p, len), chunks, p, row_len, 1);
}

/* Launch as gap_rows. Writes the max and, when indices is not NULL, the row-relative index (the
 * max of reals is a real, so the partials of several chunks are stored in out itself). */
__kernel void gmp_rows(__global const real *x, __global real *out, __global long *indices,
                       ulong rows, ulong row_len, ulong chunk_len, uint chunks) {
  ulong item = get_global_id(0);
  if (item >= rows * chunks) return;
  ulong begin, len;
  __global const real *p = row_chunk(x, item, row_len, chunk_len, chunks, &begin, &len);
  long index;
  store_result(max_contiguous(p, len, indices != 0, &index), item, out);
  if (indices) indices[item] = (long)begin + index;
}

/* ------------------------------------------------- work-group segments, contiguous rows */

/* Launch: 1-D, local size WG_SIZE, global size ceil(rows * chunks / (WG_SIZE / seg)) * WG_SIZE,
 * seg a power of two <= WG_SIZE. Segment s of work-group g (its `seg` consecutive work-items)
 * reduces item g * (WG_SIZE / seg) + s = (row, chunk): lane l reads elements l, l + seg, ... of
 * the chunk (neighbouring work-items, neighbouring addresses), then a local-memory tree folds the
 * segment's lanes. Every work-item reaches every barrier: past the last item they add nothing. */
__kernel void gap_rows_wg(__global const real *x, __global real *out, __global acc_t *partial,
                          ulong rows, ulong row_len, ulong chunk_len, uint chunks, uint seg) {
  __local acc_t lane_sums[WG_SIZE];
  uint lid = (uint)get_local_id(0);
  uint lane = lid & (seg - 1);
  ulong item = get_group_id(0) * (WG_SIZE / seg) + lid / seg;
  bool active = item < rows * chunks;
  ulong begin = 0, len = 0;
  __global const real *p = x;
  acc2_t total = (acc2_t)(0);
  if (active) {
    p = row_chunk(x, item, row_len, chunk_len, chunks, &begin, &len);
    for (ulong i = lane; i < len; i += seg) total = kahan_add(total, LOAD(i, p));
  }
  lane_sums[lid] = total.x;
  barrier(CLK_LOCAL_MEM_FENCE);
  for (uint stride = seg / 2; stride > 0; stride /= 2) {
    if (lane < stride) lane_sums[lid] += lane_sums[lid + stride];
    barrier(CLK_LOCAL_MEM_FENCE);
  }
  if (active && lane == 0) store_sum(out, partial, item, lane_sums[lid], chunks, p, row_len, 1);
}

/* Launch as gap_rows_wg. */
__kernel void gmp_rows_wg(__global const real *x, __global real *out, __global long *indices,
                          ulong rows, ulong row_len, ulong chunk_len, uint chunks, uint seg) {
  __local acc_t best_value[WG_SIZE];
  __local long best_index[WG_SIZE];
  uint lid = (uint)get_local_id(0);
  uint lane = lid & (seg - 1);
  ulong item = get_group_id(0) * (WG_SIZE / seg) + lid / seg;
  bool active = item < rows * chunks;
  /* Lanes past the end keep -inf at index len: no candidate loses to them (ties keep the smaller
   * index, and any value, NaN included, beats -inf or equals it at a smaller index). */
  acc_t best = -INFINITY;
  long index = LONG_MAX;
  ulong begin = 0;
  if (active) {
    ulong len;
    __global const real *p = row_chunk(x, item, row_len, chunk_len, chunks, &begin, &len);
    for (ulong i = lane; i < len; i += seg) {
      acc_t v = LOAD(i, p);
      if (max_is_better(v, (long)i, best, index)) { best = v; index = (long)i; }
    }
  }
  best_value[lid] = best;
  best_index[lid] = index;
  barrier(CLK_LOCAL_MEM_FENCE);
  for (uint stride = seg / 2; stride > 0; stride /= 2) {
    if (lane < stride &&
        max_is_better(best_value[lid + stride], best_index[lid + stride], best_value[lid],
                      best_index[lid])) {
      best_value[lid] = best_value[lid + stride];
      best_index[lid] = best_index[lid + stride];
    }
    barrier(CLK_LOCAL_MEM_FENCE);
  }
  if (active && lane == 0) {
    store_result(best_value[lid], item, out);
    if (indices) indices[item] = (long)begin + best_index[lid];
  }
}

/* ------------------------------------------------- channels-last */

/* What work-item (g, b) of a channels-last kernel reduces: channels [c0, c0 + lanes) of sample n
 * over positions [begin, begin + length) (its chunk). False for the work-items past the edges. */
typedef struct {
  ulong n, chunk, c0, lanes, begin, length;
} channel_chunk;

bool channel_chunk_of(ulong batch, ulong channels, ulong spatial, ulong chunk_len, uint chunks,
                      channel_chunk *w) {
  w->c0 = get_global_id(0) * VEC;
  ulong sample_chunk = get_global_id(1);
  if (w->c0 >= channels || sample_chunk >= batch * chunks) return false;
  w->n = sample_chunk / chunks;
  w->chunk = sample_chunk % chunks;
  w->begin = w->chunk * chunk_len;
  w->lanes = min((ulong)VEC, channels - w->c0);
  w->length = min(chunk_len, spatial - w->begin);
  return true;
}

/* Launch: 2-D, global size (>= ceil(channels / 8), >= batch * chunks). Work-item (g, b) reduces
 * channels [8g, 8g + 8) of sample b / chunks over spatial positions of chunk b % chunks; output
 * slots are (n * channels + c) * chunks + chunk, as for the row kernels. */
__kernel void gap_channels_last(__global const real *x, __global real *out,
                                __global acc_t *partial, ulong batch, ulong channels,
                                ulong spatial, ulong chunk_len, uint chunks) {
  channel_chunk w;
  if (!channel_chunk_of(batch, channels, spatial, chunk_len, chunks, &w)) return;
  __global const real *plane = x + w.n * spatial * channels + w.c0;
  acc_t sums[VEC];
  sum_channel_group(plane + w.begin * channels, w.length, channels, w.lanes, sums);
  for (ulong j = 0; j < w.lanes; ++j)
    store_sum(out, partial, ((w.n * channels) + w.c0 + j) * chunks + w.chunk, sums[j], chunks,
              plane + j, spatial, channels);
}

/* Launch as gap_channels_last. */
__kernel void gmp_channels_last(__global const real *x, __global real *out,
                                __global long *indices, ulong batch, ulong channels,
                                ulong spatial, ulong chunk_len, uint chunks) {
  channel_chunk w;
  if (!channel_chunk_of(batch, channels, spatial, chunk_len, chunks, &w)) return;
  acc_t maxima[VEC];
  long positions[VEC];
  max_channel_group(x + (w.n * spatial + w.begin) * channels + w.c0, w.length, channels, w.lanes,
                    maxima, positions);
  for (ulong j = 0; j < w.lanes; ++j) {
    ulong slot = ((w.n * channels) + w.c0 + j) * chunks + w.chunk;
    store_result(maxima[j], slot, out);
    if (indices) indices[slot] = (long)w.begin + positions[j];
  }
}

/* ------------------------------------------------- pass 2 */

/* Launch: 1-D, global size >= rows. Folds partial[row * chunks + k], k = 0..chunks-1, in order,
 * and stores the mean over row_len elements. x locates each row for finish_mean's slow path:
 * channels-first rows are contiguous; channels-last row (n, c) starts at x + n * row_len *
 * channels + c with stride channels. */
__kernel void gap_combine(__global const acc_t *partial, __global real *out, ulong rows,
                          uint chunks, ulong row_len, __global const real *x, ulong channels,
                          int channels_last) {
  ulong row = get_global_id(0);
  if (row >= rows) return;
  acc2_t total = (acc2_t)(0);
  for (uint k = 0; k < chunks; ++k) total = kahan_add(total, partial[row * chunks + k]);
  __global const real *start =
      channels_last ? x + (row / channels) * row_len * channels + row % channels : x + row * row_len;
  store_result(finish_mean(total.x, start, row_len, channels_last ? channels : 1), row, out);
}

/* Launch as gap_combine; partial_indices are row-relative already. */
__kernel void gmp_combine(__global const real *partial, __global const long *partial_indices,
                          __global real *out, __global long *indices, ulong rows, uint chunks) {
  ulong row = get_global_id(0);
  if (row >= rows) return;
  acc_t best = LOAD(row * chunks, partial);
  long best_index = partial_indices[row * chunks];
  for (uint k = 1; k < chunks; ++k) {
    acc_t v = LOAD(row * chunks + k, partial);
    long index = partial_indices[row * chunks + k];
    if (max_is_better(v, index, best, best_index)) { best = v; best_index = index; }
  }
  store_result(best, row, out);
  if (indices) indices[row] = best_index;
}

/* ------------------------------------------------- ragged batches */

/* A batch whose samples differ in spatial size: sample n starts at element offsets[n] of x and
 * has spatial[n] positions (channels-first: C contiguous planes of spatial[n] elements;
 * channels-last: spatial[n] positions of C contiguous channels; fewer than 2^31). One launch pools
 * every sample over its own extent; planes are not chunked.
 * Launch: 2-D, global size (>= channels, or >= ceil(channels / 8) when channels_last, >= batch).
 * Work-item (g, n) writes out[n * channels + c] for plane c = g, or channels [8g, 8g + 8). */
__kernel void gap_ragged(__global const real *x, __global const ulong *offsets,
                         __global const ulong *spatial, __global real *out, ulong batch,
                         ulong channels, int channels_last) {
  ulong g = get_global_id(0), n = get_global_id(1);
  ulong c0 = channels_last ? g * VEC : g;
  if (c0 >= channels || n >= batch) return;
  ulong len = spatial[n];
  if (!channels_last) {
    __global const real *plane = x + offsets[n] + c0 * len;
    store_result(finish_mean(sum_contiguous(plane, len), plane, len, 1), n * channels + c0, out);
    return;
  }
  ulong lanes = min((ulong)VEC, channels - c0);
  acc_t sums[VEC];
  __global const real *first = x + offsets[n] + c0;
  sum_channel_group(first, len, channels, lanes, sums);
  for (ulong j = 0; j < lanes; ++j)
    store_result(finish_mean(sums[j], first + j, len, channels), n * channels + c0 + j, out);
}

/* Launch as gap_ragged; indices (when not NULL) are positions within the sample's plane. */
__kernel void gmp_ragged(__global const real *x, __global const ulong *offsets,
                         __global const ulong *spatial, __global real *out,
                         __global long *indices, ulong batch, ulong channels, int channels_last) {
  ulong g = get_global_id(0), n = get_global_id(1);
  ulong c0 = channels_last ? g * VEC : g;
  if (c0 >= channels || n >= batch) return;
  ulong len = spatial[n];
  if (!channels_last) {
    long index;
    store_result(max_contiguous(x + offsets[n] + c0 * len, len, indices != 0, &index), n * channels + c0, out);
    if (indices) indices[n * channels + c0] = index;
    return;
  }
  ulong lanes = min((ulong)VEC, channels - c0);
  acc_t maxima[VEC];
  long positions[VEC];
  max_channel_group(x + offsets[n] + c0, len, channels, lanes, maxima, positions);
  for (ulong j = 0; j < lanes; ++j) {
    store_result(maxima[j], n * channels + c0 + j, out);
    if (indices) indices[n * channels + c0 + j] = positions[j];
  }
}

/* ------------------------------------------------- backward passes */

/* Backward of global pooling: one work-item per input element, each written exactly once (no
 * atomics, deterministic). Element i of the input lies in plane n * channels + c at spatial
 * position s: channels-first i = (n * C + c) * S + s, channels-last i = (n * S + s) * C + c.
 * Launch: 1-D, global size >= count (the input's element count). */
inline ulong plane_of(ulong i, ulong channels, ulong spatial, int channels_last, ulong *position) {
  if (channels_last) {
    ulong sample_position = i / channels;
    *position = sample_position % spatial;
    return (sample_position / spatial) * channels + i % channels;
  }
  *position = i % spatial;
  return i / spatial;
}

/* dx = dz / S, broadcast over each plane. */
__kernel void gap_backward(__global const real *dz, __global real *dx, ulong count,
                           ulong channels, ulong spatial, int channels_last) {
  ulong i = get_global_id(0);
  if (i >= count) return;
  ulong position;
  ulong plane = plane_of(i, channels, spatial, channels_last, &position);
  STORE(LOAD(plane, dz) / (acc_t)spatial, i, dx);
}

/* dx = dz at each plane's first-maximum position (from the forward pass), 0 elsewhere. */
__kernel void gmp_backward(__global const real *dz, __global const long *indices,
                           __global real *dx, ulong count, ulong channels, ulong spatial,
                           int channels_last) {
  ulong i = get_global_id(0);
  if (i >= count) return;
  ulong position;
  ulong plane = plane_of(i, channels, spatial, channels_last, &position);
  STORE((long)position == indices[plane] ? LOAD(plane, dz) : (acc_t)0, i, dx);
}
