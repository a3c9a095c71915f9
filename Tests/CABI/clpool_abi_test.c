/* Calls every function of clpool.h on one backend and checks the results against a float64
 * reference computed here, then checks the error paths (status code and message).
 *   cc -std=c11 -I Sources/CLPoolC/include Tests/CABI/clpool_abi_test.c -L DIR -lclpool-c -lm -lpthread
 *   ./a.out cpu|opencl|auto
 * Exit status: 0 every check passed, 1 a check failed, 77 the backend is unavailable here. */
#define _POSIX_C_SOURCE 200809L /* strdup */
#include "clpool.h"

#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures = 0;
static clpool_backend *backend;

#define CHECK(condition, ...)                           \
  do {                                                  \
    if (!(condition)) {                                 \
      failures++;                                       \
      fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
      fprintf(stderr, __VA_ARGS__);                     \
      fprintf(stderr, "\n");                            \
    }                                                   \
  } while (0)

#define CALL_OK(call) CHECK((call) == CLPOOL_OK, "%s: %s", #call, clpool_last_error())

/* Deterministic data in [-1, 1): a 64-bit LCG. */
static uint64_t state = 0x853c49e6748fea9bULL;
static double next_value(void) {
  state = state * 6364136223846793005ULL + 1442695040888963407ULL;
  return (double)(state >> 11) / (double)(1ULL << 53) * 2.0 - 1.0;
}
static double *random_values(size_t count) {
  double *values = malloc(count * sizeof(double));
  for (size_t i = 0; i < count; i++) values[i] = next_value();
  return values;
}

/* The same values in a storage type; the reference is computed from what was stored. */
static void *stored(const double *values, size_t count, clpool_type type) {
  if (type == CLPOOL_FLOAT64) {
    double *copy = malloc(count * sizeof(double));
    memcpy(copy, values, count * sizeof(double));
    return copy;
  }
  float *copy = malloc(count * sizeof(float));
  for (size_t i = 0; i < count; i++) copy[i] = (float)values[i];
  return copy;
}
static double load(const void *data, size_t i, clpool_type type) {
  return type == CLPOOL_FLOAT64 ? ((const double *)data)[i] : (double)((const float *)data)[i];
}
static const char *type_name(clpool_type type) { return type == CLPOOL_FLOAT64 ? "float64" : "float32"; }
/* SPEC.md's tolerances: float32 pooling 4e-6 of mean|x|, products 1e-5 relative; float64 1e-12. */
static double tolerance(clpool_type type) { return type == CLPOOL_FLOAT64 ? 1e-12 : 1e-5; }

/* x[n][c][s] of a [N,C,S] (channels-first) or [N,S,C] (channels-last) array. */
static size_t at(int channels_last, size_t n, size_t c, size_t s, size_t channels, size_t spatial) {
  return channels_last ? (n * spatial + s) * channels + c : (n * channels + c) * spatial + s;
}

static double relative_error(const void *out, const double *ref, size_t count, clpool_type type) {
  double difference = 0, norm = 0;
  for (size_t i = 0; i < count; i++) {
    double d = load(out, i, type) - ref[i];
    difference += d * d;
    norm += ref[i] * ref[i];
  }
  return sqrt(difference) / (norm > 0 ? sqrt(norm) : 1);
}

static void check_pooling(clpool_type type, clpool_layout layout) {
  const int64_t n = 2, c = 3, h = 5, w = 7, spatial = h * w;
  int channels_last = layout == CLPOOL_CHANNELS_LAST;
  int64_t shape[4] = {n, c, h, w};
  if (channels_last) { shape[1] = h; shape[2] = w; shape[3] = c; }
  size_t count = (size_t)(n * c * spatial);
  double *values = random_values(count);
  /* Plane (0,1): a tie for the maximum at positions 4 and 9; plane (1,2): a NaN at position 6. */
  values[at(channels_last, 0, 1, 4, c, spatial)] = 2.0;
  values[at(channels_last, 0, 1, 9, c, spatial)] = 2.0;
  values[at(channels_last, 1, 2, 6, c, spatial)] = NAN;
  void *input = stored(values, count, type);
  void *average = calloc(n * c, 8), *maximum = calloc(n * c, 8);
  int64_t indices[6];
  CALL_OK(clpool_global_avg_pool(backend, type, input, shape, 4, layout, average));
  CALL_OK(clpool_global_max_pool(backend, type, input, shape, 4, layout, maximum, indices));
  for (int64_t plane = 0; plane < n * c; plane++) {
    double sum = 0, magnitude = 0, best = -INFINITY;
    int64_t best_at = -1;
    for (int64_t s = 0; s < spatial; s++) {
      double x = load(input, at(channels_last, plane / c, plane % c, s, c, spatial), type);
      sum += x;
      magnitude += fabs(x);
      /* The first maximum, or the first NaN, which stays once found. */
      if (best_at < 0 || (!isnan(best) && (isnan(x) || x > best))) { best = x; best_at = s; }
    }
    double mean = sum / spatial, got = load(average, plane, type);
    if (isnan(mean)) {
      CHECK(isnan(got), "%s %s avg plane %lld: %g, expected NaN", type_name(type), channels_last ? "nhwc" : "nchw", (long long)plane, got);
    } else {
      double bound = (type == CLPOOL_FLOAT64 ? 1e-12 : 4e-6) * magnitude / spatial;
      CHECK(fabs(got - mean) <= bound, "%s avg plane %lld: %.9g, expected %.9g", type_name(type), (long long)plane, got, mean);
    }
    got = load(maximum, plane, type);
    CHECK(isnan(best) ? isnan(got) : got == best, "%s max plane %lld: %g, expected %g", type_name(type), (long long)plane, got, best);
    CHECK(indices[plane] == best_at, "%s max index plane %lld: %lld, expected %lld", type_name(type), (long long)plane,
          (long long)indices[plane], (long long)best_at);
  }
  CHECK(indices[1] == 4, "the first of tied maxima is at 4, got %lld", (long long)indices[1]);
  CHECK(indices[5] == 6, "the NaN is at 6, got %lld", (long long)indices[5]);
  free(values); free(input); free(average); free(maximum);
}

/* Reference y = activation(x . W + b) for x [rows,k], W [k,m] (in-out) or [m,k] (out-in). */
static void reference_dense(const void *x, const void *wt, const void *b, clpool_type type, size_t rows, size_t k, size_t m,
                            clpool_weight_layout weight_layout, clpool_activation activation, double *y) {
  for (size_t r = 0; r < rows; r++) {
    for (size_t j = 0; j < m; j++) {
      double sum = b ? load(b, j, type) : 0;
      for (size_t i = 0; i < k; i++)
        sum += load(x, r * k + i, type) * load(wt, weight_layout == CLPOOL_IN_OUT ? i * m + j : j * k + i, type);
      if (activation == CLPOOL_ACTIVATION_RELU) sum = sum > 0 ? sum : 0;
      if (activation == CLPOOL_ACTIVATION_SIGMOID) sum = 1 / (1 + exp(-sum));
      y[r * m + j] = sum;
    }
    if (activation == CLPOOL_ACTIVATION_SOFTMAX) {
      double top = -INFINITY, total = 0;
      for (size_t j = 0; j < m; j++) top = fmax(top, y[r * m + j]);
      for (size_t j = 0; j < m; j++) total += (y[r * m + j] = exp(y[r * m + j] - top));
      for (size_t j = 0; j < m; j++) y[r * m + j] /= total;
    }
  }
}

static void check_dense(clpool_type type, clpool_weight_layout weight_layout, clpool_activation activation) {
  const size_t rows = 3, k = 17, m = 5;
  double *xv = random_values(rows * k), *wv = random_values(k * m), *bv = random_values(m);
  void *x = stored(xv, rows * k, type), *wt = stored(wv, k * m, type), *b = stored(bv, m, type);
  int64_t x_shape[2] = {rows, k};
  int64_t w_shape[2] = {weight_layout == CLPOOL_IN_OUT ? k : m, weight_layout == CLPOOL_IN_OUT ? m : k};
  void *y = calloc(rows * m, 8);
  double ref[15];
  CALL_OK(clpool_dense(backend, type, x, x_shape, 2, wt, w_shape, 2, weight_layout, b, activation, y));
  reference_dense(x, wt, b, type, rows, k, m, weight_layout, activation, ref);
  double error = relative_error(y, ref, rows * m, type);
  CHECK(error <= tolerance(type), "%s dense (layout %d, activation %d): relative error %g", type_name(type), weight_layout, activation, error);
  /* Without a bias. */
  CALL_OK(clpool_dense(backend, type, x, x_shape, 2, wt, w_shape, 2, weight_layout, NULL, activation, y));
  reference_dense(x, wt, NULL, type, rows, k, m, weight_layout, activation, ref);
  error = relative_error(y, ref, rows * m, type);
  CHECK(error <= tolerance(type), "%s dense without bias: relative error %g", type_name(type), error);
  free(xv); free(wv); free(bv); free(x); free(wt); free(b); free(y);
}

static void check_head(clpool_type type, clpool_layout layout) {
  const size_t n = 2, c = 6, spatial = 3 * 3, m = 4;
  int channels_last = layout == CLPOOL_CHANNELS_LAST;
  int64_t shape[4] = {n, c, 3, 3};
  if (channels_last) { shape[1] = 3; shape[3] = c; }
  int64_t w_shape[2] = {c, m};
  double *fv = random_values(n * c * spatial), *wv = random_values(c * m), *bv = random_values(m);
  void *features = stored(fv, n * c * spatial, type), *wt = stored(wv, c * m, type), *b = stored(bv, m, type);
  double pooled[12], ref[8];
  for (size_t plane = 0; plane < n * c; plane++) {
    double sum = 0;
    for (size_t s = 0; s < spatial; s++) sum += load(features, at(channels_last, plane / c, plane % c, s, c, spatial), type);
    pooled[plane] = sum / spatial;
  }
  /* The reference pools in float64 and applies the dense layer to those means. */
  void *pooled_stored = stored(pooled, n * c, CLPOOL_FLOAT64);
  void *y = calloc(n * m, 8);
  CALL_OK(clpool_head(backend, type, features, shape, 4, layout, wt, w_shape, 2, CLPOOL_IN_OUT, b, CLPOOL_ACTIVATION_SOFTMAX, y));
  double wd[24], bd[4];
  for (size_t i = 0; i < c * m; i++) wd[i] = load(wt, i, type);
  for (size_t i = 0; i < m; i++) bd[i] = load(b, i, type);
  reference_dense(pooled_stored, wd, bd, CLPOOL_FLOAT64, n, c, m, CLPOOL_IN_OUT, CLPOOL_ACTIVATION_SOFTMAX, ref);
  double error = relative_error(y, ref, n * m, type);
  CHECK(error <= tolerance(type), "%s head (%s): relative error %g", type_name(type), channels_last ? "nhwc" : "nchw", error);
  free(fv); free(wv); free(bv); free(features); free(wt); free(b); free(pooled_stored); free(y);
}

static void check_class_activation_map(clpool_type type, clpool_layout layout, clpool_weight_layout weight_layout) {
  const size_t c = 6, h = 3, w = 4, m = 5, k = 2;
  int channels_last = layout == CLPOOL_CHANNELS_LAST;
  int64_t shape[3] = {c, h, w};
  if (channels_last) { shape[0] = h; shape[1] = w; shape[2] = c; }
  int64_t w_shape[2] = {weight_layout == CLPOOL_IN_OUT ? c : m, weight_layout == CLPOOL_IN_OUT ? m : c};
  double *fv = random_values(c * h * w), *wv = random_values(c * m);
  void *features = stored(fv, c * h * w, type), *wt = stored(wv, c * m, type);
  void *map = calloc(h * w, 8);
  double ref[12];
  CALL_OK(clpool_class_activation_map(backend, type, features, shape, 3, layout, wt, w_shape, 2, weight_layout, k, map));
  for (size_t s = 0; s < h * w; s++) {
    ref[s] = 0;
    for (size_t ch = 0; ch < c; ch++)
      ref[s] += load(wt, weight_layout == CLPOOL_IN_OUT ? ch * m + k : k * c + ch, type) * load(features, at(channels_last, 0, ch, s, c, h * w), type);
  }
  double error = relative_error(map, ref, h * w, type);
  CHECK(error <= tolerance(type), "%s cam (%s, weight layout %d): relative error %g", type_name(type), channels_last ? "nhwc" : "nchw",
        weight_layout, error);
  free(fv); free(wv); free(features); free(wt); free(map);
}

static void check_float16_pooling(void) {
#ifdef __FLT16_MAX__
  int64_t shape[3] = {1, 2, 9};
  _Float16 input[18], output[2];
  for (int i = 0; i < 18; i++) input[i] = (_Float16)(i * 0.25);
  CALL_OK(clpool_global_avg_pool(backend, CLPOOL_FLOAT16, input, shape, 3, CLPOOL_CHANNELS_FIRST, output));
  CHECK(fabs((double)output[0] - 1.0) <= 2e-3 && fabs((double)output[1] - 3.25) <= 2e-3 * 3.25, "float16 avg: %g %g, expected 1 3.25",
        (double)output[0], (double)output[1]);
#endif
}

/* A call that must fail with `status` and a message containing `words`. */
static void expect_error(int got, int status, const char *words, const char *what) {
  const char *message = clpool_last_error();
  CHECK(got == status, "%s: status %s (%s), expected %s", what, clpool_status_name(got), message, clpool_status_name(status));
  CHECK(strstr(message, words) != NULL, "%s: message \"%s\" lacks \"%s\"", what, message, words);
  CHECK(strchr(message, '\n') == NULL, "%s: message is not one line: %s", what, message);
}

static void *read_error_on_new_thread(void *result) {
  *(const char **)result = strdup(clpool_last_error());
  return NULL;
}

static void check_errors(void) {
  float x[64] = {0}, y[64];
  int64_t rank2[2] = {4, 4}, negative[4] = {1, -2, 2, 2}, huge[4] = {INT64_MAX / 2, 4, 2, 2}, empty[4] = {1, 2, 0, 3};
  int64_t good[4] = {1, 2, 2, 2}, w_shape[2] = {2, 3};
  expect_error(clpool_global_avg_pool(backend, CLPOOL_FLOAT32, x, rank2, 2, CLPOOL_CHANNELS_FIRST, y), CLPOOL_ERROR_INVALID_ARGUMENT,
               "rank 2", "rank-2 pooling");
  expect_error(clpool_global_avg_pool(backend, CLPOOL_FLOAT32, x, negative, 4, CLPOOL_CHANNELS_FIRST, y), CLPOOL_ERROR_INVALID_ARGUMENT,
               "negative", "negative dimension");
  expect_error(clpool_global_max_pool(backend, CLPOOL_FLOAT32, x, huge, 4, CLPOOL_CHANNELS_FIRST, y, NULL), CLPOOL_ERROR_INVALID_ARGUMENT,
               "more elements", "overflowing shape");
  /* A 2^40-plane output is refused before anything is read or allocated. */
  int64_t vast[3] = {1, (int64_t)1 << 40, 1};
  expect_error(clpool_global_avg_pool(backend, CLPOOL_FLOAT32, x, vast, 3, CLPOOL_CHANNELS_FIRST, y), CLPOOL_ERROR_OUT_OF_MEMORY,
               "more than this host's memory", "vast output");
  int64_t unaddressable[3] = {1, 1, (int64_t)1 << 61};
  expect_error(clpool_global_avg_pool(backend, CLPOOL_FLOAT64, x, unaddressable, 3, CLPOOL_CHANNELS_FIRST, y),
               CLPOOL_ERROR_OUT_OF_MEMORY, "more bytes than memory can address", "unaddressable input");
  expect_error(clpool_global_avg_pool(backend, CLPOOL_FLOAT32, x, empty, 4, CLPOOL_CHANNELS_FIRST, y), CLPOOL_ERROR_INVALID_ARGUMENT,
               "empty spatial extent", "empty plane");
  expect_error(clpool_global_avg_pool(backend, CLPOOL_FLOAT32, NULL, good, 4, CLPOOL_CHANNELS_FIRST, y), CLPOOL_ERROR_INVALID_ARGUMENT,
               "NULL", "NULL input");
  expect_error(clpool_global_avg_pool(backend, CLPOOL_FLOAT32, x, NULL, 4, CLPOOL_CHANNELS_FIRST, y), CLPOOL_ERROR_INVALID_ARGUMENT,
               "NULL", "NULL shape");
  expect_error(clpool_global_avg_pool(backend, CLPOOL_FLOAT32, x, good, -1, CLPOOL_CHANNELS_FIRST, y), CLPOOL_ERROR_INVALID_ARGUMENT,
               "rank -1", "negative rank");
  expect_error(clpool_global_avg_pool(NULL, CLPOOL_FLOAT32, x, good, 4, CLPOOL_CHANNELS_FIRST, y), CLPOOL_ERROR_INVALID_ARGUMENT,
               "backend is NULL", "NULL backend");
  expect_error(clpool_global_avg_pool(backend, (clpool_type)9, x, good, 4, CLPOOL_CHANNELS_FIRST, y), CLPOOL_ERROR_INVALID_ARGUMENT,
               "storage type 9", "unknown type");
  expect_error(clpool_global_avg_pool(backend, CLPOOL_FLOAT32, x, good, 4, (clpool_layout)5, y), CLPOOL_ERROR_INVALID_ARGUMENT,
               "layout 5", "unknown layout");
  expect_error(clpool_global_avg_pool(backend, CLPOOL_FLOAT32, (char *)x + 1, good, 4, CLPOOL_CHANNELS_FIRST, y),
               CLPOOL_ERROR_INVALID_ARGUMENT, "aligned", "misaligned input");
  int64_t x_shape[2] = {2, 3};
  expect_error(clpool_dense(backend, CLPOOL_FLOAT32, x, x_shape, 2, x, w_shape, 2, CLPOOL_IN_OUT, NULL, CLPOOL_ACTIVATION_NONE, y),
               CLPOOL_ERROR_INVALID_ARGUMENT, "2x3", "mismatched dense");
  expect_error(clpool_dense(backend, CLPOOL_FLOAT32, x, x_shape, 2, x, x_shape, 2, CLPOOL_IN_OUT, NULL, (clpool_activation)7, y),
               CLPOOL_ERROR_INVALID_ARGUMENT, "activation 7", "unknown activation");
  int64_t head_shape[4] = {1, 3, 2, 2}, cam_shape[3] = {2, 2, 2};
  expect_error(clpool_head(backend, CLPOOL_FLOAT32, x, head_shape, 4, CLPOOL_CHANNELS_FIRST, x, w_shape, 2, CLPOOL_IN_OUT, NULL,
                           CLPOOL_ACTIVATION_NONE, y),
               CLPOOL_ERROR_INVALID_ARGUMENT, "2x3", "mismatched head");
  expect_error(clpool_class_activation_map(backend, CLPOOL_FLOAT32, x, cam_shape, 3, CLPOOL_CHANNELS_FIRST, x, w_shape, 2, CLPOOL_IN_OUT,
                                           3, y),
               CLPOOL_ERROR_INVALID_ARGUMENT, "class 3 is out of range", "class out of range");
  clpool_backend *other = (clpool_backend *)1;
  expect_error(clpool_backend_create("gpu", NULL, &other), CLPOOL_ERROR_INVALID_CONFIGURATION, "valid values", "unknown backend");
  CHECK(other == NULL, "a failed create leaves *out NULL");
  expect_error(clpool_backend_create("cpu", NULL, NULL), CLPOOL_ERROR_INVALID_ARGUMENT, "out is NULL", "NULL out");

  /* The message is per thread: a new thread has seen no error. */
  const char *elsewhere = NULL;
  pthread_t thread;
  pthread_create(&thread, NULL, read_error_on_new_thread, &elsewhere);
  pthread_join(thread, NULL);
  CHECK(elsewhere && elsewhere[0] == 0, "another thread sees this thread's error: \"%s\"", elsewhere ? elsewhere : "(null)");
  free((void *)elsewhere);
  CHECK(strcmp(clpool_status_name(CLPOOL_ERROR_OPENCL), "CLPOOL_ERROR_OPENCL") == 0, "status name");
  CHECK(strcmp(clpool_status_name(42), "CLPOOL_ERROR_UNKNOWN") == 0, "unknown status name");
  clpool_backend_destroy(NULL);
}

static void check_devices(void) {
  size_t length = 0;
  CALL_OK(clpool_devices(NULL, 0, &length));
  char *json = malloc(length + 1);
  size_t again = 0;
  CALL_OK(clpool_devices(json, length + 1, &again));
  CHECK(again == length && json[0] == '[' && json[length - 1] == ']' && strlen(json) == length, "devices JSON: %.*s", (int)length, json);
  free(json);
}

int main(int argc, char **argv) {
  const char *choice = argc > 1 ? argv[1] : "cpu";
  int status = clpool_backend_create(choice, NULL, &backend);
  if (status == CLPOOL_ERROR_UNAVAILABLE || (status != CLPOOL_OK && strcmp(choice, "opencl") == 0)) {
    printf("skip %s: %s\n", choice, clpool_last_error());
    return 77;
  }
  if (status != CLPOOL_OK) {
    fprintf(stderr, "FAIL clpool_backend_create(%s): %s\n", choice, clpool_last_error());
    return 1;
  }
  CHECK(strchr(clpool_backend_label(backend), ':') != NULL, "label \"%s\"", clpool_backend_label(backend));
  clpool_type types[2] = {CLPOOL_FLOAT32, CLPOOL_FLOAT64};
  for (int t = 0; t < 2; t++) {
    clpool_type type = types[t];
    double probe[1];
    int64_t probe_shape[3] = {1, 1, 1};
    if (type == CLPOOL_FLOAT64 &&
        clpool_global_avg_pool(backend, type, (double[1]){1}, probe_shape, 3, CLPOOL_CHANNELS_FIRST, probe) == CLPOOL_ERROR_UNAVAILABLE) {
      printf("skip float64 on %s: %s\n", clpool_backend_label(backend), clpool_last_error());
      continue;
    }
    for (int layout = 0; layout < 2; layout++) {
      check_pooling(type, (clpool_layout)layout);
      check_head(type, (clpool_layout)layout);
      for (int weight_layout = 0; weight_layout < 2; weight_layout++)
        check_class_activation_map(type, (clpool_layout)layout, (clpool_weight_layout)weight_layout);
    }
    for (int weight_layout = 0; weight_layout < 2; weight_layout++)
      for (int activation = 0; activation < 4; activation++)
        check_dense(type, (clpool_weight_layout)weight_layout, (clpool_activation)activation);
  }
  check_float16_pooling();
  check_errors();
  check_devices();
  printf("%s: %s (%s)\n", failures ? "FAILED" : "ok", clpool_backend_label(backend), failures ? "see above" : "every check passed");
  clpool_backend_destroy(backend);
  return failures ? 1 : 0;
}
