/*
 * membw: the memory-read bandwidth ceiling that pooling is judged against.
 *
 * Global pooling reads every input element once and writes almost nothing, so the best it can
 * do is the rate at which all cores together can stream a DRAM-resident array. This program
 * measures exactly that: every thread sums its own contiguous slice of one large float array,
 * repeatedly, and the wall time of each full pass gives GB/s (1 GB = 1e9 bytes).
 *
 *   cc -O3 -march=native -pthread membw.c -o membw
 *   membw [--mib N] [--threads T] [--reps R]      (defaults: 1024 MiB, all online CPUs, 20)
 *
 * Prints one JSON object: best and median GB/s over the repetitions plus what was measured.
 *
 * Threads are plain pthreads rather than OpenMP so the program builds with any C compiler,
 * including clang installations that ship without an OpenMP runtime.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

/* Element i of each slice holds i mod 8, so a pass has a known exact sum (28 per 8 elements):
 * checking it proves every element was really read, and printing it keeps the compiler from
 * dropping the loop. */
#define PATTERN_PERIOD 8
#define PATTERN_SUM_PER_PERIOD 28.0

/* Independent float accumulators per thread. One accumulator would make every add wait for the
 * previous one (3-4 cycles); 32 lanes become four 8-wide vector chains under -O3 -march=native,
 * enough to keep the loads, not the adds, as the limit. */
#define LANES 32
/* Elements folded into float lanes before moving the partial sum into a double. Each lane sees
 * BLOCK / LANES = 128 values of at most 7, so the float partials are exact; the double total
 * stays exact far beyond any array this program can allocate. */
#define BLOCK 4096

typedef struct {
    float *data;
    size_t count; /* multiple of BLOCK */
    /* Results of the latest pass, read by the main thread after the pass's closing barrier. */
    double sum, start, end;
} slice_t;

static pthread_barrier_t barrier;
static long reps = 20;

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double sum_slice(const float *restrict x, size_t count) {
    double total = 0.0;
    for (size_t block = 0; block < count; block += BLOCK) {
        float lane[LANES] = {0};
        const float *restrict p = x + block;
        for (size_t i = 0; i < BLOCK; i += LANES)
            for (int j = 0; j < LANES; j++) lane[j] += p[i + j];
        float block_sum = 0.0f;
        for (int j = 0; j < LANES; j++) block_sum += lane[j];
        total += block_sum;
    }
    return total;
}

static void fill_slice(slice_t *s) {
    for (size_t i = 0; i < s->count; i++) s->data[i] = (float)(i % PATTERN_PERIOD);
}

/* One pass between two barrier waits. Each thread stamps its own start and end, and a pass lasts
 * from the earliest start to the latest end: timing around the barriers from one thread would be
 * wrong whenever that thread is descheduled after the barrier while the others already stream. */
static void timed_pass(slice_t *s) {
    pthread_barrier_wait(&barrier);
    s->start = now_seconds();
    s->sum = sum_slice(s->data, s->count);
    s->end = now_seconds();
    pthread_barrier_wait(&barrier);
}

/* Each thread fills its own slice (so on NUMA machines the pages live next to the core that
 * reads them); the first pass's opening barrier also waits for every fill. */
static void *worker(void *arg) {
    fill_slice(arg);
    for (long r = 0; r < reps; r++) timed_pass(arg);
    return NULL;
}

static int compare_doubles(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static long parse_positive(const char *flag, const char *text) {
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno || *end || v <= 0) {
        fprintf(stderr, "membw: %s needs a positive integer, got '%s'\n", flag, text);
        exit(2);
    }
    return v;
}

int main(int argc, char **argv) {
    long mib = 1024, threads = sysconf(_SC_NPROCESSORS_ONLN);
    for (int i = 1; i < argc; i++) {
        if (i + 1 < argc && !strcmp(argv[i], "--mib")) mib = parse_positive(argv[i], argv[i + 1]), i++;
        else if (i + 1 < argc && !strcmp(argv[i], "--threads")) threads = parse_positive(argv[i], argv[i + 1]), i++;
        else if (i + 1 < argc && !strcmp(argv[i], "--reps")) reps = parse_positive(argv[i], argv[i + 1]), i++;
        else {
            fprintf(stderr, "usage: membw [--mib N] [--threads T] [--reps R]\n");
            return 2;
        }
    }
    if (threads < 1) threads = 1;

    /* Each thread gets a whole number of BLOCKs, so the array is rounded down to fit. */
    size_t per_thread = ((size_t)mib * 1024 * 1024 / sizeof(float) / (size_t)threads) / BLOCK * BLOCK;
    if (per_thread == 0) {
        fprintf(stderr, "membw: %ld MiB is too small for %ld threads\n", mib, threads);
        return 2;
    }
    size_t total = per_thread * (size_t)threads;
    /* 2 MiB alignment (and a size rounded up to it) lets the kernel back the array with huge pages. */
    size_t huge = (size_t)2 << 20, allocated = (total * sizeof(float) + huge - 1) / huge * huge;
    float *data = aligned_alloc(huge, allocated);
    if (!data) {
        fprintf(stderr, "membw: cannot allocate %zu bytes\n", allocated);
        return 1;
    }

    /* Transparent huge pages, where the kernel offers them only on request: with 4 KiB pages the
     * hardware prefetchers stop at every page boundary and TLB misses eat into the rate, and the
     * point here is the ceiling. Failure just means the default pages. */
#ifdef MADV_HUGEPAGE
    madvise(data, allocated, MADV_HUGEPAGE);
#endif

    /* The main thread is worker 0, so exactly `threads` threads compete for the cores. */
    pthread_barrier_init(&barrier, NULL, (unsigned)threads);
    slice_t *slices = calloc((size_t)threads, sizeof *slices);
    pthread_t *ids = calloc((size_t)threads, sizeof *ids);
    double *seconds = calloc((size_t)reps, sizeof *seconds);
    if (!slices || !ids || !seconds) {
        fprintf(stderr, "membw: out of memory\n");
        return 1;
    }
    for (long t = 0; t < threads; t++) slices[t] = (slice_t){data + (size_t)t * per_thread, per_thread, 0, 0, 0};
    for (long t = 1; t < threads; t++) {
        int rc = pthread_create(&ids[t], NULL, worker, &slices[t]);
        if (rc) {
            fprintf(stderr, "membw: pthread_create: %s\n", strerror(rc));
            return 1;
        }
    }

    /* Worker 0 runs here one pass at a time, so this thread collects each pass's result between
     * its closing barrier and the next pass's opening one. */
    double expected = PATTERN_SUM_PER_PERIOD * (double)(per_thread / PATTERN_PERIOD) * (double)threads;
    int checksum_ok = 1;
    double checksum = 0.0;
    fill_slice(&slices[0]);
    for (long r = 0; r < reps; r++) {
        timed_pass(&slices[0]);
        double first = slices[0].start, last = slices[0].end;
        checksum = 0.0;
        for (long t = 0; t < threads; t++) {
            if (slices[t].start < first) first = slices[t].start;
            if (slices[t].end > last) last = slices[t].end;
            checksum += slices[t].sum;
        }
        seconds[r] = last - first;
        if (checksum != expected) checksum_ok = 0;
    }
    for (long t = 1; t < threads; t++) pthread_join(ids[t], NULL);

    qsort(seconds, (size_t)reps, sizeof *seconds, compare_doubles);
    double bytes = (double)total * sizeof(float);
    double median = reps % 2 ? seconds[reps / 2] : 0.5 * (seconds[reps / 2 - 1] + seconds[reps / 2]);
    printf("{\"best_gbps\": %.3f, \"median_gbps\": %.3f, \"bytes\": %.0f, \"threads\": %ld, "
           "\"repetitions\": %ld, \"min_s\": %.6f, \"median_s\": %.6f, \"checksum\": %.1f, "
           "\"checksum_ok\": %s}\n",
           bytes / seconds[0] / 1e9, bytes / median / 1e9, bytes, threads, reps, seconds[0], median,
           checksum, checksum_ok ? "true" : "false");
    free(seconds);
    free(ids);
    free(slices);
    free(data);
    pthread_barrier_destroy(&barrier);
    if (!checksum_ok) {
        fprintf(stderr, "membw: checksum mismatch (expected %.1f) - the summing loop is wrong\n", expected);
        return 1;
    }
    return 0;
}
