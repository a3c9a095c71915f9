/*
 * kernels: the CPU backend's pooling kernels (Sources/CLPoolCPU) on every core, each timed pass
 * next to a plain read of the same number of DRAM-resident bytes in the same process, so that
 * "share of the read" is measured under the same bandwidth. On this machine bandwidth moves
 * between 30 and 80 GB/s from one minute to the next, more than the effects a kernel change has;
 * `clpool bench` and bench/compare, which time whole calls against a membw run of their own, show
 * those effects only across many rounds.
 *
 * Work is split as Sources/CLPool/CPU does (clpool_parallel; channels-last, one call per sample
 * and 2048-channel tile; channels-first, all planes of a sample per call; each task a slice of
 * the batch), planes of one chunk (spatial <= 65536).
 * Every pass, kernel or read, takes the copy of the input touched longest ago (--copies copies of
 * about --mib MiB each), and the passes of a round rotate in order. A round's ratio is the read's
 * median time over the kernel's; the result is the median over rounds.
 *
 *   kernels [--rounds R] [--passes P] [--mib M] [--copies K] [--offset B] [--json] [--case LAYOUT:C:SPATIAL:TYPE]...
 *     LAYOUT nchw | nhwc, TYPE float16 | float32 | float64; without --case, the default suite:
 *     bench/compare's pooling shapes, both layouts, float32, and the ResNet-50 shape in float16 and
 *     float64. Prints a Markdown table, or one JSON object with --json.
 *   Each copy starts --offset bytes (default 16) past a 2 MiB boundary: where malloc puts a large
 *   array's data, NumPy's and Swift's arrays included (Swift's at 48), so that the kernels are
 *   measured on the alignment users give them (an unaligned float16 row once ran at half the
 *   speed of an aligned one; BENCHMARKS.md).
 *   Build it with clang (for the kernels' target attributes) from this file and every .c file in
 *   Sources/CLPoolCPU, with -O2 -pthread -ISources/CLPoolCPU/include -lm, as the README shows;
 *   bench/compare builds it into bench/out/kernels.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "clpool_cpu.h"

#define CHANNEL_TILE 2048 /* CPUPooling.channelTile */
#define MAX_CASES 64
#define MAX_PASSES 64

typedef struct {
  int channels_last;
  size_t channels, spatial;
  int type;
} case_t;

enum { READ, AVERAGE, MAXIMUM, OPERATIONS };

typedef struct {
  const case_t *shape;
  const unsigned char *x;
  unsigned char *out;
  size_t batch, element, tasks;
  int operation;
  double sums[256]; /* per task: the read's sum, kept so it is not optimized away */
} pass_t;

static double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static size_t element_bytes(int type) { return type == CLPOOL_F16 ? 2 : type == CLPOOL_F32 ? 4 : 8; }

static const char *type_name(int type) {
  return type == CLPOOL_F16 ? "float16" : type == CLPOOL_F32 ? "float32" : "float64";
}

static void run_task(void *context, size_t task) {
  pass_t *pass = context;
  const case_t *shape = pass->shape;
  size_t sample = shape->channels * shape->spatial * pass->element;
  size_t begin = pass->batch * task / pass->tasks, end = pass->batch * (task + 1) / pass->tasks;
  if (pass->operation == READ) {
    pass->sums[task] = clpool_read_bytes(pass->x + begin * sample, (end - begin) * sample);
    return;
  }
  size_t out_element = pass->element;
  for (size_t n = begin; n < end; ++n) {
    const unsigned char *x = pass->x + n * sample;
    unsigned char *out = pass->out + n * shape->channels * out_element;
    if (!shape->channels_last) {
      size_t first = n * shape->channels;
      if (pass->operation == AVERAGE)
        clpool_sum_items(shape->type, pass->x, shape->spatial, shape->spatial, first, shape->channels, pass->out + first * out_element);
      else
        clpool_max_items(shape->type, pass->x, shape->spatial, shape->spatial, first, shape->channels, pass->out + first * out_element, NULL);
      continue;
    }
    for (size_t c0 = 0; c0 < shape->channels; c0 += CHANNEL_TILE) {
      size_t width = shape->channels - c0 < CHANNEL_TILE ? shape->channels - c0 : CHANNEL_TILE;
      if (pass->operation == AVERAGE)
        clpool_sum_channels(shape->type, x, shape->channels, shape->spatial, c0, width, out + c0 * out_element, 1, 1);
      else
        clpool_max_channels(shape->type, x, shape->channels, shape->spatial, c0, width, out + c0 * out_element, NULL, 1, 1);
    }
  }
}

static int compare_doubles(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double median(double *values, size_t count) {
  qsort(values, count, sizeof *values, compare_doubles);
  return count % 2 ? values[count / 2] : (values[count / 2 - 1] + values[count / 2]) / 2;
}

/* Values uniform in [-1, 3) in the storage type, from a fixed generator. */
static void fill(unsigned char *x, size_t count, int type) {
  uint64_t state = 0x9E3779B97F4A7C15ull;
  double *chunk = malloc(65536 * sizeof *chunk);
  for (size_t done = 0; done < count; done += 65536) {
    size_t n = count - done < 65536 ? count - done : 65536;
    for (size_t i = 0; i < n; ++i) {
      state = state * 6364136223846793005ull + 1442695040888963407ull;
      chunk[i] = (double)(state >> 11) / 9007199254740992.0 * 4 - 1;
    }
    if (type == CLPOOL_F64)
      memcpy(x + done * 8, chunk, n * 8);
    else
      clpool_convert(CLPOOL_F64, chunk, 0, type, x + done * element_bytes(type), n);
  }
  free(chunk);
}

typedef struct {
  double read_gbps, share[OPERATIONS]; /* medians over rounds */
  size_t batch;
} result_t;

static result_t measure(const case_t *shape, int rounds, int passes, size_t mib, int copies, size_t offset) {
  size_t element = element_bytes(shape->type);
  size_t sample = shape->channels * shape->spatial * element;
  size_t threads = (size_t)sysconf(_SC_NPROCESSORS_ONLN), batch = (mib << 20) / sample;
  if (batch < 2 * threads) batch = 2 * threads;
  size_t bytes = batch * sample, stride = (offset + bytes + (1u << 21) - 1) & ~(size_t)((1u << 21) - 1);
  unsigned char *all = mmap(NULL, stride * copies, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (all == MAP_FAILED) {
    fprintf(stderr, "kernels: cannot map %zu bytes\n", stride * copies);
    exit(1);
  }
#ifdef MADV_HUGEPAGE
  madvise(all, stride * copies, MADV_HUGEPAGE); /* as bench/membw.c, the ceiling bench/compare uses */
#endif
  for (int k = 0; k < copies; ++k) fill(all + k * stride + offset, batch * shape->channels * shape->spatial, shape->type);
  pass_t pass = {.shape = shape, .out = malloc(batch * shape->channels * element), .batch = batch, .element = element};
  pass.tasks = threads * 4 < 256 ? threads * 4 : 256;
  if (pass.tasks > batch) pass.tasks = batch;
  result_t result = {.batch = batch};
  double shares[OPERATIONS][MAX_PASSES], reads[MAX_PASSES];
  int next = 0;
  for (int round = 0; round < rounds; ++round) {
    double times[OPERATIONS][MAX_PASSES];
    for (int p = 0; p < passes; ++p)
      for (int o = 0; o < OPERATIONS; ++o) {
        pass.operation = (o + p) % OPERATIONS;
        pass.x = all + (size_t)next * stride + offset;
        next = (next + 1) % copies;
        double start = now_seconds();
        clpool_parallel(pass.tasks, threads, run_task, &pass);
        times[pass.operation][p] = now_seconds() - start;
      }
    double read = median(times[READ], passes);
    reads[round] = bytes / read / 1e9;
    for (int o = 0; o < OPERATIONS; ++o) shares[o][round] = read / median(times[o], passes);
  }
  result.read_gbps = median(reads, rounds);
  for (int o = 0; o < OPERATIONS; ++o) result.share[o] = median(shares[o], rounds);
  munmap(all, stride * copies);
  free(pass.out);
  return result;
}

static int parse_case(const char *text, case_t *shape) {
  char layout[8], type[12];
  if (sscanf(text, "%7[a-z]:%zu:%zu:%11s", layout, &shape->channels, &shape->spatial, type) != 4) return 0;
  shape->channels_last = strcmp(layout, "nhwc") == 0;
  if (!shape->channels_last && strcmp(layout, "nchw") != 0) return 0;
  shape->type = strcmp(type, "float16") == 0 ? CLPOOL_F16 : strcmp(type, "float32") == 0 ? CLPOOL_F32
              : strcmp(type, "float64") == 0 ? CLPOOL_F64 : -1;
  return shape->type >= 0 && shape->channels > 0 && shape->spatial > 0 && shape->spatial <= 65536;
}

int main(int argc, char **argv) {
  int rounds = 5, passes = 9, copies = 6, json = 0;
  size_t mib = 100, offset = 16;
  case_t cases[MAX_CASES];
  int count = 0;
  for (int i = 1; i < argc; ++i) {
    int more = i + 1 < argc;
    if (!strcmp(argv[i], "--rounds") && more) rounds = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--passes") && more) passes = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--mib") && more) mib = (size_t)atol(argv[++i]);
    else if (!strcmp(argv[i], "--copies") && more) copies = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--offset") && more) offset = (size_t)atol(argv[++i]);
    else if (!strcmp(argv[i], "--json")) json = 1;
    else if (!strcmp(argv[i], "--case") && more && count < MAX_CASES && parse_case(argv[i + 1], &cases[count])) ++count, ++i;
    else {
      fprintf(stderr, "kernels: bad argument '%s' (see the comment at the top of bench/kernels.c)\n", argv[i]);
      return 2;
    }
  }
  if (rounds < 1 || rounds > MAX_PASSES || passes < 1 || passes > MAX_PASSES || copies < 3 || mib < 1 || offset > 4095) {
    fprintf(stderr, "kernels: --rounds and --passes take 1-%d, --copies at least 3, --mib at least 1, --offset 0-4095\n",
            MAX_PASSES);
    return 2;
  }
  if (count == 0) {
    static const size_t shapes[][2] = {{2048, 49}, {64, 49}, {512, 196}, {256, 3136}, {64, 50176}};
    for (int layout = 0; layout < 2; ++layout)
      for (int s = 0; s < 5; ++s) cases[count++] = (case_t){layout, shapes[s][0], shapes[s][1], CLPOOL_F32};
    for (int layout = 0; layout < 2; ++layout) {
      cases[count++] = (case_t){layout, 2048, 49, CLPOOL_F16};
      cases[count++] = (case_t){layout, 2048, 49, CLPOOL_F64};
    }
  }
  if (json)
    printf("{\"isa\": \"%s\", \"threads\": %ld, \"rounds\": %d, \"passes\": %d, \"offset\": %zu, \"cases\": [",
           clpool_cpu_isa_name(), sysconf(_SC_NPROCESSORS_ONLN), rounds, passes, offset);
  else
    printf("CPU kernels (%s, %ld threads; inputs %zu bytes past a 2 MiB boundary) as a share of a read of the same "
           "bytes, median of %d rounds:\n\n"
           "| layout | C x spatial | type | batch | read GB/s | avg | max |\n|---|---|---|---|---|---|---|\n",
           clpool_cpu_isa_name(), sysconf(_SC_NPROCESSORS_ONLN), offset, rounds);
  for (int i = 0; i < count; ++i) {
    result_t r = measure(&cases[i], rounds, passes, mib, copies, offset);
    const char *layout = cases[i].channels_last ? "nhwc" : "nchw";
    if (json)
      printf("%s\n  {\"layout\": \"%s\", \"channels\": %zu, \"spatial\": %zu, \"type\": \"%s\", \"batch\": %zu, "
             "\"read_gbps\": %.2f, \"avg_share\": %.3f, \"max_share\": %.3f}",
             i ? "," : "", layout, cases[i].channels, cases[i].spatial, type_name(cases[i].type), r.batch, r.read_gbps,
             r.share[AVERAGE], r.share[MAXIMUM]);
    else
      printf("| %s | %zu x %zu | %s | %zu | %.1f | %.0f%% | %.0f%% |\n", layout, cases[i].channels, cases[i].spatial,
             type_name(cases[i].type), r.batch, r.read_gbps, 100 * r.share[AVERAGE], 100 * r.share[MAXIMUM]);
    fflush(stdout);
  }
  if (json) printf("\n]}\n");
  return 0;
}
