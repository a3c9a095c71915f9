/*
 * Dense (fully connected) layer: y[n, m] = act(sum_k x[n, k] * W(k, m) + bias[m]).
 *
 * Algorithm. Register-blocked matrix product, no local memory and no barriers, so it suits CPU
 * drivers and still coalesces on GPUs. Each work-item owns a small tile of y in registers and
 * walks k once; the sum over k runs in float32 in a fixed order (deterministic).
 *   dense_in_out  W stored [K, M] (Keras "in x out"): a tile is ROWS rows x 8 consecutive
 *                 columns; one float8 load of W's row k feeds ROWS vector multiply-adds.
 *   dense_out_in  W stored [M, K] (PyTorch "out x in"): a tile is ROWS rows x COLS columns; rows of
 *                 x and of W are both contiguous in k, so each output is a float8 dot product.
 * Tiles on the right or bottom edge clamp their loads to the last valid row / column and skip
 * those stores, so any N, K, M >= 1 works.
 *
 * Epilogue: bias (when has_bias != 0) and the element-wise activation are fused; softmax needs the
 * whole row and runs afterwards as softmax_rows (numerically stable: subtract the row max).
 *
 * Launch contract:
 *   dense_in_out  2-D global size (>= ceil(M / 8), >= ceil(N / ROWS))
 *   dense_out_in  2-D global size (>= ceil(M / COLS), >= ceil(N / ROWS))
 *   softmax_rows  1-D global size >= N
 */

#ifndef ROWS
#define ROWS 4 /* rows of y per work-item */
#endif
#ifndef COLS
#define COLS 2 /* columns of y per work-item in dense_out_in */
#endif

#define ACTIVATION_NONE 0
#define ACTIVATION_RELU 1
#define ACTIVATION_SIGMOID 2

/* relu keeps NaN (NaN < 0 is false), as frameworks do. */
inline float activate(float v, int activation) {
  if (activation == ACTIVATION_RELU) return v < 0.0f ? 0.0f : v;
  if (activation == ACTIVATION_SIGMOID) return 1.0f / (1.0f + exp(-v));
  return v;
}

inline void store_output(__global float *y, __global const float *bias, int has_bias,
                         int activation, uint row, uint col, uint m_dim, float value) {
  if (has_bias) value += bias[col];
  y[(ulong)row * m_dim + col] = activate(value, activation);
}

__kernel void dense_in_out(__global const float *x, __global const float *w,
                           __global const float *bias, __global float *y, uint n_dim, uint k_dim,
                           uint m_dim, int has_bias, int activation) {
  uint m0 = get_global_id(0) * 8;
  uint r0 = get_global_id(1) * ROWS;
  if (m0 >= m_dim || r0 >= n_dim) return;
  uint valid_cols = min(8u, m_dim - m0);
  __global const float *x_row[ROWS];
  for (int r = 0; r < ROWS; ++r) x_row[r] = x + (ulong)min(r0 + r, n_dim - 1) * k_dim;
  float8 acc[ROWS];
  for (int r = 0; r < ROWS; ++r) acc[r] = (float8)(0.0f);
  if (valid_cols == 8) {
    for (uint k = 0; k < k_dim; ++k) {
      float8 wv = vload8(0, w + (ulong)k * m_dim + m0);
      for (int r = 0; r < ROWS; ++r) acc[r] += x_row[r][k] * wv;
    }
  } else {
    for (uint k = 0; k < k_dim; ++k) {
      float wk[8];
      for (uint j = 0; j < 8; ++j) wk[j] = w[(ulong)k * m_dim + m0 + min(j, valid_cols - 1)];
      float8 wv = vload8(0, wk);
      for (int r = 0; r < ROWS; ++r) acc[r] += x_row[r][k] * wv;
    }
  }
  for (int r = 0; r < ROWS && r0 + r < n_dim; ++r) {
    float out[8];
    vstore8(acc[r], 0, out);
    for (uint j = 0; j < valid_cols; ++j)
      store_output(y, bias, has_bias, activation, r0 + r, m0 + j, m_dim, out[j]);
  }
}

inline float horizontal_sum8(float8 v) {
  float4 a = v.lo + v.hi;
  float2 b = a.lo + a.hi;
  return b.x + b.y;
}

__kernel void dense_out_in(__global const float *x, __global const float *w,
                           __global const float *bias, __global float *y, uint n_dim, uint k_dim,
                           uint m_dim, int has_bias, int activation) {
  uint c0 = get_global_id(0) * COLS;
  uint r0 = get_global_id(1) * ROWS;
  if (c0 >= m_dim || r0 >= n_dim) return;
  __global const float *x_row[ROWS];
  __global const float *w_row[COLS];
  for (int r = 0; r < ROWS; ++r) x_row[r] = x + (ulong)min(r0 + r, n_dim - 1) * k_dim;
  for (int c = 0; c < COLS; ++c) w_row[c] = w + (ulong)min(c0 + c, m_dim - 1) * k_dim;
  float8 acc[ROWS][COLS];
  for (int r = 0; r < ROWS; ++r)
    for (int c = 0; c < COLS; ++c) acc[r][c] = (float8)(0.0f);
  uint k = 0;
  for (; k + 8 <= k_dim; k += 8) {
    float8 wv[COLS];
    for (int c = 0; c < COLS; ++c) wv[c] = vload8(0, w_row[c] + k);
    for (int r = 0; r < ROWS; ++r) {
      float8 xv = vload8(0, x_row[r] + k);
      for (int c = 0; c < COLS; ++c) acc[r][c] += xv * wv[c];
    }
  }
  for (int r = 0; r < ROWS && r0 + r < n_dim; ++r) {
    for (int c = 0; c < COLS && c0 + c < m_dim; ++c) {
      float sum = horizontal_sum8(acc[r][c]);
      for (uint t = k; t < k_dim; ++t) sum += x_row[r][t] * w_row[c][t];
      store_output(y, bias, has_bias, activation, r0 + r, c0 + c, m_dim, sum);
    }
  }
}

/* softmax over each row of y [N, M], in place: exp(v - max) / sum. */
__kernel void softmax_rows(__global float *y, uint n_dim, uint m_dim) {
  uint row = get_global_id(0);
  if (row >= n_dim) return;
  __global float *p = y + (ulong)row * m_dim;
  float top = -INFINITY;
  for (uint j = 0; j < m_dim; ++j) top = fmax(top, p[j]); /* NaN reaches every output via sum */
  float sum = 0.0f;
  for (uint j = 0; j < m_dim; ++j) sum += exp(p[j] - top);
  for (uint j = 0; j < m_dim; ++j) p[j] = exp(p[j] - top) / sum;
}
