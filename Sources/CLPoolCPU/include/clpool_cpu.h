/*
 * The CPU backend's inner loops (pooling, the batch-invariant matrix product, element
 * conversions), compiled for baseline x86-64 (SSE2), for AVX2 + FMA + F16C, and for AVX-512
 * (whose build serves the product and pooling), with function target attributes (no compiler flags, so
 * packages that depend on CLPool build as usual). clpool_cpu_isa() picks one at first use from
 * cpuid, or from CLPOOL_CPU_ISA (baseline | avx2; a request the CPU cannot run falls back to
 * baseline). The AVX-512 build gives the AVX2 build's bits. The Swift side
 * (Sources/CLPool/CPU) splits the work into tasks, runs them with clpool_parallel and folds chunk
 * partials; every other routine here is single-threaded and writes only its own outputs.
 *
 * Types: CLPOOL_F16 (IEEE half storage, float arithmetic), CLPOOL_F32, CLPOOL_F64 (double
 * arithmetic). "acc" below is float for the first two and double for the third.
 *
 * Precision and order (as Kernels/pool.cl): sums add VEC-wide lanes over blocks of 256 elements
 * and fold block sums with Kahan compensation; the order of every operation depends only on the
 * sizes, never on threads. The product computes each output as an fma (baseline: multiply, then
 * add) chain over k in order, in blocks of CLPOOL_K_BLOCK steps folded in order (0 + the first
 * block's sum + the next ...) when there are several, whatever the tiling or the task that
 * computed a block: a row's result never depends on the batch it came in. A NaN pooling result
 * is the one quiet NaN of its type (sign clear), whatever the order a build's additions took its
 * operands in.
 */
#ifndef CLPOOL_CPU_H
#define CLPOOL_CPU_H

#include <stddef.h>
#include <stdint.h>

enum { CLPOOL_F16 = 0, CLPOOL_F32 = 1, CLPOOL_F64 = 2 };
enum { CLPOOL_ISA_BASELINE = 0, CLPOOL_ISA_AVX2 = 1, CLPOOL_ISA_AVX512 = 2 };
/* The product's blocks of k (Kernels/dense.cl's K_BLOCK too, so that a row gets the same bits from
 * the CPU and from an OpenCL device with fma, whichever `auto` sends its batch to); the rows from
 * which clpool_gemm packs w's panels rather than streaming w's rows in order; and the rows of x
 * that one pass of the streamed product takes. */
enum { CLPOOL_K_BLOCK = 256, CLPOOL_PACK_FROM_ROWS = 96, CLPOOL_STREAM_ROWS = 6 };

/* The instruction set in use (CLPOOL_ISA_*), and its name. */
int clpool_cpu_isa(void);
const char *clpool_cpu_isa_name(void);

/* Items [first, first + count) of `planes x chunks`, item = plane * chunks + chunk, over planes
 * of `length` contiguous elements cut in chunks of `chunk_length`, into out[i]: with one chunk per
 * plane the plane's mean in the storage type (final), else the chunk's sum in acc (a partial for
 * clpool_fold). */
void clpool_sum_items(int type, const void *x, size_t length, size_t chunk_length, size_t first,
                      size_t count, void *out);

/* The same items' maxima (NaN if the chunk has one), stored as for clpool_sum_items, and when
 * indices is not NULL the position within the plane of each chunk's first maximum (first NaN). */
void clpool_max_items(int type, const void *x, size_t length, size_t chunk_length, size_t first,
                      size_t count, void *out, int64_t *indices);

/* Channels-last: `positions` positions of `channels` channels from x (the first position's channel
 * 0), channels [c0, c0 + width) (width <= 2048), into out[(c - c0) * out_stride]: with `final` the
 * mean over those positions in the storage type, else the sum in acc (no positions: sums 0, means
 * NaN). */
void clpool_sum_channels(int type, const void *x, size_t channels, size_t positions, size_t c0,
                         size_t width, void *out, size_t out_stride, int final);

/* The same channels' maxima (stored as for clpool_sum_channels) and, when indices is not NULL,
 * first-max positions relative to x's first position (positions < 2^31). */
void clpool_max_channels(int type, const void *x, size_t channels, size_t positions, size_t c0,
                         size_t width, void *out, int64_t *indices, size_t out_stride, int final);

/* Pass 2 for planes of several chunks: partial[plane * chunks + k] (acc; maxima with their
 * plane-relative partial_indices) folded in chunk order into out[plane] in the storage type: the
 * mean over `length` (average) or the max, and indices when not NULL. x, channels_last and channels
 * locate a plane for the mean's slow path. */
void clpool_fold(int type, int average, const void *partials, const int64_t *partial_indices,
                 size_t planes, size_t chunks, size_t length, void *out, int64_t *indices,
                 const void *x, int channels_last, size_t channels);

/* The mean of `count` elements spaced `stride` apart, each scaled by 2^-64 before it is added (no
 * sum of finite values overflows then), scaled back, clamped to the largest finite value: the slow
 * path for planes whose plain sum is not finite. */
double clpool_rescaled_mean(int type, const void *p, size_t count, size_t stride);

/* count elements from `from` to `to` (CLPOOL_F*), rounded to nearest (ties to even) when
 * narrowing; `swap_bytes`: the source is big-endian. */
void clpool_convert(int from, const void *source, int swap_bytes, int to, void *destination,
                    size_t count);

/* Rows [row_begin, row_end) and columns [column_begin, column_end) of y = x . w (+ bias), for
 * x [n, k] and w [k, m] row-major, in acc (float or double: a float16 product converts first).
 * column_begin is a multiple of 16. */
void clpool_gemm(int type, const void *x, const void *w, const void *bias, void *y, size_t k,
                 size_t m, size_t row_begin, size_t row_end, size_t column_begin,
                 size_t column_end);

/* The chains of one K block (`block` < ceil(k / CLPOOL_K_BLOCK): steps [block * CLPOOL_K_BLOCK,
 * ...) of k; a block past k writes nothing) of rows [row_begin, row_end) and columns
 * [column_begin, column_end) of x . w, streamed, into partial[r * m + c] (acc, no bias; r and c
 * absolute, as in y); then clpool_fold_blocks folds `blocks` such partials of `count` elements
 * each (laid out one after the other, every element written) in order into y (+ bias[i % m]): the
 * same bits as clpool_gemm, with a long k's blocks computed on several cores. */
void clpool_gemm_block(int type, const void *x, const void *w, void *partial, size_t k, size_t m, size_t row_begin,
                       size_t row_end, size_t column_begin, size_t column_end, size_t block);
void clpool_fold_blocks(int type, const void *partials, size_t blocks, size_t count, const void *bias, size_t m,
                        void *y);

/* out[c, r] = in[r, c] for in [rows, cols] of acc. */
void clpool_transpose(int type, const void *source, size_t rows, size_t cols, void *destination);

/* In place on y [rows, cols] of acc: 1 relu, 2 sigmoid, 3 softmax per row, 0 nothing; then each
 * NaN becomes the quiet NaN of no payload (NAN), so a NaN output's bits do not depend on the path
 * of the product, which depends on the batch. Every product ends with it. */
void clpool_activate(int type, void *y, size_t rows, size_t cols, int activation);

/* Reads [p, p + bytes) rounded down to whole 128-byte lines and returns the sum of its floats: the
 * plain read a benchmark times beside a kernel (what reading the same bytes costs at that moment). */
double clpool_read_bytes(const void *p, size_t bytes);

/* Runs body(context, task) for every task in [0, tasks) on this thread and up to threads - 1
 * worker threads (workers.c), and returns when all have run; a task's result must not depend on
 * which thread runs it. Workers spin for CLPOOL_SPIN_US microseconds (default 1000) after a job
 * before they sleep. Jobs from several threads, or from within a task, run one at a time: a job
 * that finds the workers busy runs its tasks on its own thread. */
typedef void (*clpool_task_fn)(void *context, size_t task);
void clpool_parallel(size_t tasks, size_t threads, clpool_task_fn body, void *context);

/* Reads one byte every `stride` bytes of [start, start + length), which faults a fresh mapping's
 * pages in (pages.c); the reads are volatile, so no compiler drops them. */
void clpool_touch_pages(const void *start, size_t length, size_t stride);

/* Turns O_DIRECT (writes around the page cache) on or off for an open descriptor: 0, or -1 where
 * the system or the file system has none (errno says why). */
int clpool_set_direct(int descriptor, int on);

/* Temporary files a signal must not leave behind (temporaries.c). After
 * clpool_remove_temporaries_on_signals (a program's choice, never a library's: it installs handlers
 * for the signals that end a process by default, except where one is ignored), a registered path is unlinked if
 * one of those signals ends the process before clpool_forget_temporary. Registering returns a slot
 * for clpool_forget_temporary, or -1 (no handlers, a path of 4096 bytes or more, or 1024 paths
 * registered already: that file is then not removed on a signal). */
void clpool_remove_temporaries_on_signals(void);
int clpool_register_temporary(const char *path);
void clpool_forget_temporary(int slot);

/* A program's standard descriptors (standard_streams.c). clpool_occupy_standard_descriptors opens
 * the root folder on each of descriptors 0, 1 and 2 that is closed, so that no file the program
 * opens later becomes its stdin, stdout or stderr; reads and writes through them still fail, as
 * through a closed one, and so does opening /dev/stdout for writing. clpool_flush_standard_output
 * flushes stdout: 0, or the errno of a failed write (EIO where an earlier write failed). */
void clpool_occupy_standard_descriptors(void);
int clpool_flush_standard_output(void);

#endif
