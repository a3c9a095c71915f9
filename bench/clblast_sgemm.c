/*
 * clblast_sgemm: the OpenCL peer for clpool's dense layer.
 *
 * Runs CLBlast's tuned SGEMM, C[M,N] = A[M,K] * B[K,N] (row-major, the layout of clpool's dense
 * with a Keras [in,out] weight), on the first device of the first OpenCL platform, and prints one
 * JSON object:
 *   first_call_s       the first SGEMM, which includes CLBlast compiling its kernels for the device
 *   median_s, min_s    over the timed repetitions (after the first call and one more warm-up)
 *   gflops             2*M*K*N / median_s / 1e9
 *
 *   cc -O2 clblast_sgemm.c -lclblast -lOpenCL -o clblast_sgemm
 *   clblast_sgemm M K N [--reps R] [--min-time S] [--max-time S]
 *
 * Repetitions stop once there are R of them and S seconds have passed, or --max-time is reached
 * with at least 3, so a slow device still finishes quickly. Each repetition is timed on the host
 * around the enqueue and clFinish, i.e. what a caller of SGEMM waits for.
 * Every OpenCL and CLBlast status is checked; a failure prints one line on stderr, exit status 1.
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime under strict -std=c11 */
#define CL_TARGET_OPENCL_VERSION 120
#include <clblast_c.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_REPS 1000

static void fail(const char *what, int status) {
    fprintf(stderr, "clblast_sgemm: %s failed with status %d\n", what, status);
    exit(1);
}

#define CHECK_CL(call)                                                                            \
    do {                                                                                          \
        cl_int status_ = (call);                                                                  \
        if (status_ != CL_SUCCESS) fail(#call, status_);                                          \
    } while (0)

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int compare_doubles(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double parse_number(const char *what, const char *text) {
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (errno || *end || !(v > 0)) {
        fprintf(stderr, "clblast_sgemm: %s must be a positive number, got '%s'\n", what, text);
        exit(2);
    }
    return v;
}

/* Writes s as a JSON string body: device names are plain text, but a quote must not break the JSON. */
static void print_json_string(const char *s) {
    putchar('"');
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') putchar('\\');
        if ((unsigned char)*s >= 0x20) putchar(*s);
    }
    putchar('"');
}

static cl_mem upload(cl_context context, size_t count, const float *host) {
    cl_int status;
    cl_mem buffer = clCreateBuffer(context, CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR, count * sizeof(float),
                                   (void *)host, &status);
    if (status != CL_SUCCESS) fail("clCreateBuffer", status);
    return buffer;
}

static void sgemm(size_t m, size_t k, size_t n, cl_mem a, cl_mem b, cl_mem c, cl_command_queue queue) {
    cl_event event = NULL;
    CLBlastStatusCode status = CLBlastSgemm(CLBlastLayoutRowMajor, CLBlastTransposeNo, CLBlastTransposeNo, m, n, k,
                                            1.0f, a, 0, k, b, 0, n, 0.0f, c, 0, n, &queue, &event);
    if (status != CLBlastSuccess) fail("CLBlastSgemm", status);
    CHECK_CL(clWaitForEvents(1, &event));
    CHECK_CL(clReleaseEvent(event));
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: clblast_sgemm M K N [--reps R] [--min-time S] [--max-time S]\n");
        return 2;
    }
    size_t m = (size_t)parse_number("M", argv[1]), k = (size_t)parse_number("K", argv[2]),
           n = (size_t)parse_number("N", argv[3]);
    int min_reps = 10;
    double min_time = 1.0, max_time = 5.0;
    for (int i = 4; i < argc; i++) {
        if (i + 1 < argc && !strcmp(argv[i], "--reps")) min_reps = (int)parse_number(argv[i], argv[i + 1]), i++;
        else if (i + 1 < argc && !strcmp(argv[i], "--min-time")) min_time = parse_number(argv[i], argv[i + 1]), i++;
        else if (i + 1 < argc && !strcmp(argv[i], "--max-time")) max_time = parse_number(argv[i], argv[i + 1]), i++;
        else {
            fprintf(stderr, "clblast_sgemm: unknown argument '%s'\n", argv[i]);
            return 2;
        }
    }
    if (min_reps > MAX_REPS) min_reps = MAX_REPS;

    cl_platform_id platform;
    cl_device_id device;
    cl_uint found = 0;
    CHECK_CL(clGetPlatformIDs(1, &platform, &found));
    if (found == 0) fail("clGetPlatformIDs (no platform)", CL_INVALID_PLATFORM);
    CHECK_CL(clGetDeviceIDs(platform, CL_DEVICE_TYPE_ALL, 1, &device, &found));
    if (found == 0) fail("clGetDeviceIDs (no device)", CL_DEVICE_NOT_FOUND);
    char device_name[256] = "", platform_name[256] = "";
    CHECK_CL(clGetDeviceInfo(device, CL_DEVICE_NAME, sizeof device_name - 1, device_name, NULL));
    CHECK_CL(clGetPlatformInfo(platform, CL_PLATFORM_NAME, sizeof platform_name - 1, platform_name, NULL));

    cl_int status;
    cl_context context = clCreateContext(NULL, 1, &device, NULL, NULL, &status);
    if (status != CL_SUCCESS) fail("clCreateContext", status);
    cl_command_queue queue = clCreateCommandQueue(context, device, 0, &status);
    if (status != CL_SUCCESS) fail("clCreateCommandQueue", status);

    /* Values in [-1, 1): timing does not depend on them, but denormals or NaNs could. */
    float *host = malloc((m * k + k * n) * sizeof(float));
    if (!host) fail("malloc", 0);
    srand(1);
    for (size_t i = 0; i < m * k + k * n; i++) host[i] = (float)rand() / ((float)RAND_MAX + 1.0f) * 2.0f - 1.0f;
    cl_mem a = upload(context, m * k, host), b = upload(context, k * n, host + m * k);
    free(host);
    cl_mem c = clCreateBuffer(context, CL_MEM_READ_WRITE, m * n * sizeof(float), NULL, &status);
    if (status != CL_SUCCESS) fail("clCreateBuffer", status);

    double start = now_seconds();
    sgemm(m, k, n, a, b, c, queue);
    double first_call = now_seconds() - start;
    sgemm(m, k, n, a, b, c, queue); /* warm-up: caches and the driver's first-launch work */

    double seconds[MAX_REPS];
    int reps = 0;
    double began = now_seconds(), elapsed = 0.0;
    while (reps < MAX_REPS && !(reps >= min_reps && elapsed >= min_time) && !(reps >= 3 && elapsed >= max_time)) {
        double t = now_seconds();
        sgemm(m, k, n, a, b, c, queue);
        seconds[reps++] = now_seconds() - t;
        elapsed = now_seconds() - began;
    }

    /* Spot-check one output element against a float64 dot product so a silently wrong GEMM
     * (e.g. a mis-specified leading dimension) cannot produce a plausible-looking time. */
    float *a_host = malloc(m * k * sizeof(float)), *b_host = malloc(k * n * sizeof(float)), c_value;
    if (!a_host || !b_host) fail("malloc", 0);
    size_t row = m - 1, col = n / 2;
    CHECK_CL(clEnqueueReadBuffer(queue, a, CL_TRUE, 0, m * k * sizeof(float), a_host, 0, NULL, NULL));
    CHECK_CL(clEnqueueReadBuffer(queue, b, CL_TRUE, 0, k * n * sizeof(float), b_host, 0, NULL, NULL));
    CHECK_CL(clEnqueueReadBuffer(queue, c, CL_TRUE, (row * n + col) * sizeof(float), sizeof(float), &c_value, 0,
                                 NULL, NULL));
    double reference = 0.0, magnitude = 0.0;
    for (size_t i = 0; i < k; i++) {
        double term = (double)a_host[row * k + i] * (double)b_host[i * n + col];
        reference += term;
        magnitude += term < 0 ? -term : term;
    }
    free(a_host);
    free(b_host);
    int correct = (c_value - reference) <= 1e-5 * magnitude + 1e-30 && (reference - c_value) <= 1e-5 * magnitude + 1e-30;

    qsort(seconds, (size_t)reps, sizeof seconds[0], compare_doubles);
    double median = reps % 2 ? seconds[reps / 2] : 0.5 * (seconds[reps / 2 - 1] + seconds[reps / 2]);
    double flops = 2.0 * (double)m * (double)k * (double)n;
    printf("{\"m\": %zu, \"k\": %zu, \"n\": %zu, \"platform\": ", m, k, n);
    print_json_string(platform_name);
    printf(", \"device\": ");
    print_json_string(device_name);
    printf(", \"first_call_s\": %.6f, \"median_s\": %.9f, \"min_s\": %.9f, \"repetitions\": %d, "
           "\"flops\": %.0f, \"gflops\": %.3f, \"correct\": %s}\n",
           first_call, median, seconds[0], reps, flops, flops / median / 1e9, correct ? "true" : "false");

    CHECK_CL(clReleaseMemObject(a));
    CHECK_CL(clReleaseMemObject(b));
    CHECK_CL(clReleaseMemObject(c));
    CHECK_CL(clReleaseCommandQueue(queue));
    CHECK_CL(clReleaseContext(context));
    if (!correct) {
        fprintf(stderr, "clblast_sgemm: C[%zu,%zu] = %g but float64 reference is %g\n", row, col, c_value, reference);
        return 1;
    }
    return 0;
}
