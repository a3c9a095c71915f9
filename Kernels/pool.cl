/*
 * Global average pooling (GAP) and global max pooling (GMP).
 *
 * Algorithm. Every (n, c) plane is a "row" of S = prod(spatial) elements: contiguous for
 * channels-first input [N, C, S...], strided by C for channels-last input [N, S..., C]. A row may be
 * split into `chunks` consecutive pieces of `chunk_len` elements (so a few huge planes still fill
 * the device): pass 1 writes one partial per (row, chunk) at partial[row * chunks + chunk], and
 * pass 2 (gap_combine / gmp_combine) folds each row's partials in chunk order. With chunks == 1
 * pass 1 writes the final value. The order of every floating-point operation depends on the shape
 * and launch geometry only, never on timing, so results are bitwise deterministic.
 *
 * Precision. Sums run VEC-wide lanes over blocks of BLOCK elements, then add each block's sum into
 * a Kahan-compensated accumulator, so the rounding error grows with BLOCK / VEC + log2(VEC), not
 * with the plane size (SPEC: |mean - ref| <= 4e-6 * mean|x| for planes up to 2^26 elements). The
 * program must not be built with -cl-fast-relaxed-math or -cl-unsafe-math-optimizations, which
 * would let the compiler cancel the compensation.
 *
 * Max semantics (SPEC). NaN anywhere in a plane gives NaN; the index is the plane-relative,
 * row-major position of the first maximum, or of the first NaN if there is one. fmax() ignores
 * NaN, so NaN is tracked on its own.
 *
 * Variants (the host picks one per device type and shape):
 *   gap_rows / gmp_rows              one work-item per (row, chunk), contiguous rows, vloads
 *                                    (CPU drivers: no barriers, the loop vectorises)
 *   gap_rows_wg / gmp_rows_wg        one work-group of WG_SIZE per (row, chunk), local-memory tree
 *                                    (GPUs: coalesced strided loads, parallel reduction)
 *   gap_channels_last / gmp_...      one work-item per (n, 8 channels, chunk), vector across C
 *   gap_combine / gmp_combine        pass 2: one work-item per row
 */

#ifndef BLOCK
#define BLOCK 256 /* elements per Kahan block; a multiple of VEC */
#endif
#ifndef WG_SIZE
#define WG_SIZE 256 /* work-group size of the *_wg kernels; a power of two */
#endif
#define VEC 8 /* lanes of the vector kernels (float8) */

/* ---------------------------------------------------------------- shared helpers */

/* Kahan-compensated accumulation: acc.x is the running sum, acc.y the lost low-order part. Once
 * the sum is infinite (or NaN) the compensation would be inf - inf = NaN and poison later adds,
 * so it is dropped: an infinite sum stays infinite, +inf and -inf still give NaN. */
inline float2 kahan_add(float2 acc, float value) {
  float y = value - acc.y;
  float t = acc.x + y;
  acc.y = isfinite(t) ? (t - acc.x) - y : 0.0f;
  acc.x = t;
  return acc;
}

inline float horizontal_sum(float8 v) {
  float4 a = v.lo + v.hi;
  float2 b = a.lo + a.hi;
  return b.x + b.y;
}

/* Is (value, index) a better max candidate than (best, best_index)? NaN beats numbers; among
 * equals (and among NaNs) the smaller index wins. */
inline bool max_is_better(float value, long index, float best, long best_index) {
  if (isnan(best)) return isnan(value) && index < best_index;
  if (isnan(value)) return true;
  return value > best || (value == best && index < best_index);
}

/* Sum of len contiguous elements. */
inline float sum_contiguous(__global const float *p, ulong len) {
  float2 acc = (float2)(0.0f, 0.0f);
  ulong i = 0;
  for (; i + BLOCK <= len; i += BLOCK) {
    float8 lanes = (float8)(0.0f);
    for (uint j = 0; j < BLOCK; j += VEC) lanes += vload8(0, p + i + j);
    acc = kahan_add(acc, horizontal_sum(lanes));
  }
  float8 lanes = (float8)(0.0f);
  for (; i + VEC <= len; i += VEC) lanes += vload8(0, p + i);
  float tail = horizontal_sum(lanes);
  for (; i < len; ++i) tail += p[i];
  return kahan_add(acc, tail).x;
}

/* Max of len contiguous elements (NaN if any is NaN); with want_index, also the index (relative
 * to p) of the first maximum, or of the first NaN. The value pass is pure vector code; the index
 * pass rescans and usually stops early. */
inline float max_contiguous(__global const float *p, ulong len, bool want_index, long *out_index) {
  float8 best = (float8)(-INFINITY);
  int8 nan_seen = (int8)(0);
  ulong i = 0;
  for (; i + VEC <= len; i += VEC) {
    float8 v = vload8(0, p + i);
    best = select(best, v, v > best); /* false for NaN: NaN is tracked on its own */
    nan_seen |= isnan(v);
  }
  float4 a = select(best.lo, best.hi, best.hi > best.lo);
  float2 b = select(a.lo, a.hi, a.hi > a.lo);
  float result = b.y > b.x ? b.y : b.x;
  bool has_nan = any(nan_seen);
  for (; i < len; ++i) {
    float v = p[i];
    has_nan |= isnan(v);
    result = v > result ? v : result;
  }
  if (has_nan) result = NAN;
  long index = 0;
  if (want_index) {
    if (has_nan) {
      while (!isnan(p[index])) ++index;
    } else {
      while (p[index] != result) ++index;
    }
  }
  *out_index = index;
  return result;
}

/* Sum of one channel's len elements spaced stride apart. */
inline float sum_strided(__global const float *p, ulong len, ulong stride) {
  float2 acc = (float2)(0.0f, 0.0f);
  ulong i = 0;
  for (; i + BLOCK <= len; i += BLOCK) {
    float block = 0.0f;
    for (uint j = 0; j < BLOCK; ++j) block += p[(i + j) * stride];
    acc = kahan_add(acc, block);
  }
  float tail = 0.0f;
  for (; i < len; ++i) tail += p[i * stride];
  return kahan_add(acc, tail).x;
}

inline float max_strided(__global const float *p, ulong len, ulong stride, long *out_index) {
  float best = p[0];
  long best_index = 0;
  for (ulong i = 1; i < len; ++i) {
    float v = p[i * stride];
    if (max_is_better(v, (long)i, best, best_index)) { best = v; best_index = (long)i; }
  }
  *out_index = best_index;
  return best;
}

/* Item `item` of the rows x chunks grid: a pointer to its chunk's first element, the chunk's
 * offset in the row and its length. */
inline __global const float *row_chunk(__global const float *x, ulong item, ulong row_len,
                                       ulong chunk_len, uint chunks, ulong *begin, ulong *len) {
  ulong row = item / chunks, chunk = item % chunks;
  *begin = chunk * chunk_len;
  *len = min(chunk_len, row_len - *begin);
  return x + row * row_len + *begin;
}

/* ------------------------------------------------- per-work-item, contiguous rows */

/* Launch: 1-D, global size >= rows * chunks (extra work-items return). Each work-item reduces
 * elements [chunk * chunk_len, min(row_len, (chunk + 1) * chunk_len)) of its row and writes
 * sum / divisor (divisor = row_len when chunks == 1, else 1). */
__kernel void gap_rows(__global const float *x, __global float *out, ulong rows, ulong row_len,
                       ulong chunk_len, uint chunks, float divisor) {
  ulong item = get_global_id(0);
  if (item >= rows * chunks) return;
  ulong begin, len;
  __global const float *p = row_chunk(x, item, row_len, chunk_len, chunks, &begin, &len);
  out[item] = sum_contiguous(p, len) / divisor;
}

/* Launch as gap_rows. Writes the max and, when indices is not NULL, the row-relative index. */
__kernel void gmp_rows(__global const float *x, __global float *out, __global long *indices,
                       ulong rows, ulong row_len, ulong chunk_len, uint chunks) {
  ulong item = get_global_id(0);
  if (item >= rows * chunks) return;
  ulong begin, len;
  __global const float *p = row_chunk(x, item, row_len, chunk_len, chunks, &begin, &len);
  long index;
  out[item] = max_contiguous(p, len, indices != 0, &index);
  if (indices) indices[item] = (long)begin + index;
}

/* ------------------------------------------------- work-group tree, contiguous rows */

/* Launch: 1-D, local size WG_SIZE, global size rows * chunks * WG_SIZE; work-group g reduces
 * chunk g % chunks of row g / chunks with strided (coalesced) loads, then a local-memory tree. */
__kernel void gap_rows_wg(__global const float *x, __global float *out, ulong rows, ulong row_len,
                          ulong chunk_len, uint chunks, float divisor) {
  __local float partial[WG_SIZE];
  ulong group = get_group_id(0);
  uint lid = (uint)get_local_id(0);
  if (group >= rows * chunks) return; /* whole work-group: no barrier is skipped by part of it */
  ulong begin, len;
  __global const float *p = row_chunk(x, group, row_len, chunk_len, chunks, &begin, &len);
  float2 acc = (float2)(0.0f, 0.0f);
  for (ulong i = lid; i < len; i += WG_SIZE) acc = kahan_add(acc, p[i]);
  partial[lid] = acc.x;
  barrier(CLK_LOCAL_MEM_FENCE);
  for (uint stride = WG_SIZE / 2; stride > 0; stride /= 2) {
    if (lid < stride) partial[lid] += partial[lid + stride];
    barrier(CLK_LOCAL_MEM_FENCE);
  }
  if (lid == 0) out[group] = partial[0] / divisor;
}

/* Launch as gap_rows_wg. */
__kernel void gmp_rows_wg(__global const float *x, __global float *out, __global long *indices,
                          ulong rows, ulong row_len, ulong chunk_len, uint chunks) {
  __local float best_value[WG_SIZE];
  __local long best_index[WG_SIZE];
  ulong group = get_group_id(0);
  uint lid = (uint)get_local_id(0);
  if (group >= rows * chunks) return; /* whole work-group: no barrier is skipped by part of it */
  ulong begin, len;
  __global const float *p = row_chunk(x, group, row_len, chunk_len, chunks, &begin, &len);
  /* Work-items past the end start from element 0, a valid candidate that cannot change the
   * answer: ties keep the smaller index. */
  float best = p[0];
  long index = 0;
  for (ulong i = lid; i < len; i += WG_SIZE) {
    float v = p[i];
    if (max_is_better(v, (long)i, best, index)) { best = v; index = (long)i; }
  }
  best_value[lid] = best;
  best_index[lid] = index;
  barrier(CLK_LOCAL_MEM_FENCE);
  for (uint stride = WG_SIZE / 2; stride > 0; stride /= 2) {
    if (lid < stride &&
        max_is_better(best_value[lid + stride], best_index[lid + stride], best_value[lid],
                      best_index[lid])) {
      best_value[lid] = best_value[lid + stride];
      best_index[lid] = best_index[lid + stride];
    }
    barrier(CLK_LOCAL_MEM_FENCE);
  }
  if (lid == 0) {
    out[group] = best_value[0];
    if (indices) indices[group] = (long)begin + best_index[0];
  }
}

/* ------------------------------------------------- channels-last */

/* Launch: 2-D, global size (>= ceil(channels / 8), >= batch * chunks). Work-item (g, b) reduces
 * channels [8g, 8g + 8) of sample b / chunks over spatial positions of chunk b % chunks; the 8
 * channels of one position are contiguous, so each step is one vector load. */
__kernel void gap_channels_last(__global const float *x, __global float *out, ulong batch,
                                ulong channels, ulong spatial, ulong chunk_len, uint chunks,
                                float divisor) {
  ulong c0 = get_global_id(0) * VEC;
  ulong sample_chunk = get_global_id(1);
  if (c0 >= channels || sample_chunk >= batch * chunks) return;
  ulong n = sample_chunk / chunks, chunk = sample_chunk % chunks;
  ulong begin = chunk * chunk_len;
  ulong len = min(chunk_len, spatial - begin);
  __global const float *p = x + (n * spatial + begin) * channels + c0;
  if (c0 + VEC <= channels) {
    float2 acc[VEC];
    for (int j = 0; j < VEC; ++j) acc[j] = (float2)(0.0f, 0.0f);
    ulong i = 0;
    for (; i < len; i += BLOCK) {
      ulong end = min((ulong)BLOCK, len - i);
      float8 block = (float8)(0.0f);
      for (ulong j = 0; j < end; ++j) block += vload8(0, p + (i + j) * channels);
      float lanes[VEC];
      vstore8(block, 0, lanes);
      for (int j = 0; j < VEC; ++j) acc[j] = kahan_add(acc[j], lanes[j]);
    }
    for (uint j = 0; j < VEC; ++j)
      out[((n * channels) + c0 + j) * chunks + chunk] = acc[j].x / divisor;
  } else {
    for (ulong c = c0; c < channels; ++c)
      out[((n * channels) + c) * chunks + chunk] = sum_strided(p + (c - c0), len, channels) / divisor;
  }
}

/* Launch as gap_channels_last. */
__kernel void gmp_channels_last(__global const float *x, __global float *out,
                                __global long *indices, ulong batch, ulong channels,
                                ulong spatial, ulong chunk_len, uint chunks) {
  ulong c0 = get_global_id(0) * VEC;
  ulong sample_chunk = get_global_id(1);
  if (c0 >= channels || sample_chunk >= batch * chunks) return;
  ulong n = sample_chunk / chunks, chunk = sample_chunk % chunks;
  ulong begin = chunk * chunk_len;
  ulong len = min(chunk_len, spatial - begin);
  __global const float *p = x + (n * spatial + begin) * channels + c0;
  ulong lanes = min((ulong)VEC, channels - c0);
  if (lanes == VEC) {
    float8 best = (float8)(-INFINITY);
    long8 best_index = (long8)(0);
    long8 first_nan = (long8)(-1);
    for (ulong i = 0; i < len; ++i) {
      float8 v = vload8(0, p + i * channels);
      long8 position = (long8)((long)i);
      best_index = select(best_index, position, convert_long8(v > best));
      first_nan = select(first_nan, position, convert_long8(isnan(v)) & (first_nan < 0));
      best = fmax(best, v);
    }
    float values[VEC];
    long positions[VEC], nans[VEC];
    vstore8(best, 0, values);
    vstore8(best_index, 0, positions);
    vstore8(first_nan, 0, nans);
    for (uint j = 0; j < VEC; ++j) {
      ulong slot = ((n * channels) + c0 + j) * chunks + chunk;
      out[slot] = nans[j] >= 0 ? NAN : values[j];
      if (indices) indices[slot] = (long)begin + (nans[j] >= 0 ? nans[j] : positions[j]);
    }
  } else {
    for (ulong j = 0; j < lanes; ++j) {
      ulong slot = ((n * channels) + c0 + j) * chunks + chunk;
      long index;
      out[slot] = max_strided(p + j, len, channels, &index);
      if (indices) indices[slot] = (long)begin + index;
    }
  }
}

/* ------------------------------------------------- pass 2 */

/* Launch: 1-D, global size >= rows. Folds partial[row * chunks + k], k = 0..chunks-1, in order. */
__kernel void gap_combine(__global const float *partial, __global float *out, ulong rows,
                          uint chunks, float divisor) {
  ulong row = get_global_id(0);
  if (row >= rows) return;
  float2 acc = (float2)(0.0f, 0.0f);
  for (uint k = 0; k < chunks; ++k) acc = kahan_add(acc, partial[row * chunks + k]);
  out[row] = acc.x / divisor;
}

/* Launch as gap_combine; partial_indices are row-relative already. */
__kernel void gmp_combine(__global const float *partial, __global const long *partial_indices,
                          __global float *out, __global long *indices, ulong rows, uint chunks) {
  ulong row = get_global_id(0);
  if (row >= rows) return;
  float best = partial[row * chunks];
  long best_index = partial_indices[row * chunks];
  for (uint k = 1; k < chunks; ++k) {
    float v = partial[row * chunks + k];
    long index = partial_indices[row * chunks + k];
    if (max_is_better(v, index, best, best_index)) { best = v; best_index = index; }
  }
  out[row] = best;
  if (indices) indices[row] = best_index;
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
__kernel void gap_backward(__global const float *dz, __global float *dx, ulong count,
                           ulong channels, ulong spatial, int channels_last) {
  ulong i = get_global_id(0);
  if (i >= count) return;
  ulong position;
  ulong plane = plane_of(i, channels, spatial, channels_last, &position);
  dx[i] = dz[plane] / (float)spatial;
}

/* dx = dz at each plane's first-maximum position (from the forward pass), 0 elsewhere. */
__kernel void gmp_backward(__global const float *dz, __global const long *indices,
                           __global float *dx, ulong count, ulong channels, ulong spatial,
                           int channels_last) {
  ulong i = get_global_id(0);
  if (i >= count) return;
  ulong position;
  ulong plane = plane_of(i, channels, spatial, channels_last, &position);
  dx[i] = (long)position == indices[plane] ? dz[plane] : 0.0f;
}
