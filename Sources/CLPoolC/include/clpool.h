/* clpool — global average / max pooling, the dense layer and the fused classifier head, on
 * OpenCL devices or the native CPU backend, from C (libclpool-c.so; `swift build -c release
 * --product clpool-c`).
 *
 * Conventions, the same for every function:
 * - Arrays are row-major (C order), of the element type `type`, aligned to its width, and are the
 *   caller's: clpool reads and writes them in place during the call and keeps no pointer.
 * - Each array comes with its shape (`int64_t` dimensions) and rank; outputs are sized by the
 *   shapes as SPEC.md's table says ([N,C] for pooling, [N,M] for dense and head, [H,W] for a
 *   class activation map) and must not overlap the inputs.
 * - Every function returns CLPOOL_OK (0) or one of the error codes below and never aborts the
 *   process; after an error, clpool_last_error() gives the one-line message, on that thread.
 * - A backend handle may be used from several threads at once.
 */
#ifndef CLPOOL_H
#define CLPOOL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Status codes. */
enum {
  CLPOOL_OK = 0,
  CLPOOL_ERROR_INVALID_ARGUMENT = 1, /* a shape, pointer, enum value or class index the call cannot take */
  CLPOOL_ERROR_INVALID_CONFIGURATION = 2, /* a backend or device selector (or CLPOOL_* variable) that names nothing */
  CLPOOL_ERROR_UNAVAILABLE = 3, /* the backend, device or storage type is not available here */
  CLPOOL_ERROR_OPENCL = 4, /* an OpenCL call failed; the message names the call and the code */
  CLPOOL_ERROR_OUT_OF_MEMORY = 5, /* the request is larger than the host or device can hold */
  CLPOOL_ERROR_INTERNAL = 6 /* anything else (a bug: please report the message) */
};

typedef enum { CLPOOL_CHANNELS_FIRST = 0, CLPOOL_CHANNELS_LAST = 1 } clpool_layout;
typedef enum { CLPOOL_FLOAT16 = 0, CLPOOL_FLOAT32 = 1, CLPOOL_FLOAT64 = 2 } clpool_type;
/* How a dense weight is stored: [K,M] inputs x outputs (Keras) or [M,K] (PyTorch nn.Linear). */
typedef enum { CLPOOL_IN_OUT = 0, CLPOOL_OUT_IN = 1 } clpool_weight_layout;
typedef enum {
  CLPOOL_ACTIVATION_NONE = 0,
  CLPOOL_ACTIVATION_RELU = 1,
  CLPOOL_ACTIVATION_SIGMOID = 2,
  CLPOOL_ACTIVATION_SOFTMAX = 3 /* over the M outputs of each row */
} clpool_activation;

/* A backend: the CPU or one OpenCL device, with its compiled kernels. */
typedef struct clpool_backend clpool_backend;

/* Creates a backend. `backend` is "cpu", "opencl" or "auto" (NULL: $CLPOOL_BACKEND, else auto);
 * `device` is NULL ($CLPOOL_DEVICE, else the default), an index as text ("0") or a substring of
 * the device's name. On success *out is a handle for clpool_backend_destroy. */
int clpool_backend_create(const char *backend, const char *device, clpool_backend **out);
/* Frees a backend; NULL is ignored. */
void clpool_backend_destroy(clpool_backend *backend);
/* "cpu: <processor>" or "opencl: <device> (<platform>)", valid while the backend lives ("" for NULL). */
const char *clpool_backend_label(const clpool_backend *backend);

/* Global average pooling: input [N,C,spatial...] (channels-first) or [N,spatial...,C]
 * (channels-last), 1 to 3 spatial axes; output [N,C]. */
int clpool_global_avg_pool(clpool_backend *backend, clpool_type type, const void *input, const int64_t *shape,
                           int rank, clpool_layout layout, void *output);
/* Global max pooling (NaN in a plane gives NaN), output [N,C]; `indices` NULL or [N,C]: the flat
 * row-major spatial position of each plane's first maximum (of its first NaN). */
int clpool_global_max_pool(clpool_backend *backend, clpool_type type, const void *input, const int64_t *shape,
                           int rank, clpool_layout layout, void *output, int64_t *indices);
/* y = activation(x . W + bias): x [N,K], W [K,M] or [M,K], bias NULL or [M]; output [N,M]. */
int clpool_dense(clpool_backend *backend, clpool_type type, const void *input, const int64_t *input_shape,
                 int input_rank, const void *weight, const int64_t *weight_shape, int weight_rank,
                 clpool_weight_layout weight_layout, const void *bias, clpool_activation activation, void *output);
/* The fused head, dense(global_avg_pool(features)): features as for pooling, weight with C inputs;
 * output [N,M]. */
int clpool_head(clpool_backend *backend, clpool_type type, const void *features, const int64_t *shape, int rank,
                clpool_layout layout, const void *weight, const int64_t *weight_shape, int weight_rank,
                clpool_weight_layout weight_layout, const void *bias, clpool_activation activation, void *output);
/* cam[h,w] = sum_c W[c,class] * x[c,h,w] (bias excluded) of one sample: features [C,H,W] or
 * [1,C,H,W] (channels-last [H,W,C] or [1,H,W,C]), weight with C inputs; output [H,W]. */
int clpool_class_activation_map(clpool_backend *backend, clpool_type type, const void *features,
                                const int64_t *shape, int rank, clpool_layout layout, const void *weight,
                                const int64_t *weight_shape, int weight_rank, clpool_weight_layout weight_layout,
                                int64_t class_index, void *output);

/* The OpenCL devices as a JSON array of {"index","name","platform","type","storage_types",
 * "global_memory_bytes"} (an empty array without OpenCL). Sets *length to the document's length
 * without its NUL, and when capacity > *length writes the document and the NUL into `buffer`
 * (otherwise nothing), so a first call with buffer NULL and capacity 0 sizes the buffer. */
int clpool_devices(char *buffer, size_t capacity, size_t *length);

/* The message of this thread's last failed call ("" if none): valid until this thread's next
 * clpool call. */
const char *clpool_last_error(void);
/* "CLPOOL_OK", "CLPOOL_ERROR_OPENCL", ... ("CLPOOL_ERROR_UNKNOWN" for another value). */
const char *clpool_status_name(int status);

#ifdef __cplusplus
}
#endif

#endif /* CLPOOL_H */
