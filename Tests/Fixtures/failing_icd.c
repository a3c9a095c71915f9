/*
 * A fake OpenCL ICD for fault tests: it reports one platform with one GPU device whose
 * clCreateContext always fails with CL_OUT_OF_HOST_MEMORY, as a broken driver installation does.
 * The tests compile it (cc -shared -fPIC) and load it through the ocl-icd loader with
 * OCL_ICD_FILENAMES, alone, so no real device is in the way.
 */
#define CL_TARGET_OPENCL_VERSION 300
#include <CL/cl_icd.h>
#include <string.h>

struct _cl_platform_id { struct _cl_icd_dispatch *dispatch; };
struct _cl_device_id { struct _cl_icd_dispatch *dispatch; };

static struct _cl_icd_dispatch dispatch;
static struct _cl_platform_id platform = {&dispatch};
static struct _cl_device_id device = {&dispatch};

static cl_int copy_info(const void *value, size_t size, size_t capacity, void *out, size_t *size_out) {
  if (size_out) *size_out = size;
  if (out) {
    if (capacity < size) return CL_INVALID_VALUE;
    memcpy(out, value, size);
  }
  return CL_SUCCESS;
}

static cl_int CL_API_CALL get_platform_ids(cl_uint n, cl_platform_id *platforms, cl_uint *count) {
  if (count) *count = 1;
  if (platforms && n > 0) platforms[0] = &platform;
  return CL_SUCCESS;
}

static cl_int CL_API_CALL get_platform_info(cl_platform_id p, cl_platform_info name, size_t capacity,
                                            void *value, size_t *size) {
  (void)p;
  const char *text;
  switch (name) {
  case CL_PLATFORM_NAME: text = "Failing Test Platform"; break;
  case CL_PLATFORM_VENDOR: text = "clpool tests"; break;
  case CL_PLATFORM_VERSION: text = "OpenCL 1.2 failing"; break;
  case CL_PLATFORM_PROFILE: text = "FULL_PROFILE"; break;
  case CL_PLATFORM_EXTENSIONS: text = "cl_khr_icd"; break;
  case CL_PLATFORM_ICD_SUFFIX_KHR: text = "FAIL"; break;
  default: return CL_INVALID_VALUE;
  }
  return copy_info(text, strlen(text) + 1, capacity, value, size);
}

static cl_int CL_API_CALL get_device_ids(cl_platform_id p, cl_device_type type, cl_uint n,
                                         cl_device_id *devices, cl_uint *count) {
  (void)p;
  if (!(type & CL_DEVICE_TYPE_GPU)) return CL_DEVICE_NOT_FOUND;
  if (count) *count = 1;
  if (devices && n > 0) devices[0] = &device;
  return CL_SUCCESS;
}

static cl_int CL_API_CALL get_device_info(cl_device_id d, cl_device_info name, size_t capacity,
                                          void *value, size_t *size) {
  (void)d;
  cl_uint units = 4;
  cl_ulong memory = 1ul << 30;
  size_t group = 256;
  cl_uint align_bits = 1024;
  cl_bool unified = CL_FALSE;
  cl_device_type type = CL_DEVICE_TYPE_GPU;
  const char *text = NULL;
  switch (name) {
  case CL_DEVICE_NAME: text = "Failing Test GPU"; break;
  case CL_DEVICE_VENDOR: text = "clpool tests"; break;
  case CL_DEVICE_VERSION: text = "OpenCL 1.2 failing"; break;
  case CL_DRIVER_VERSION: text = "0.0"; break;
  case CL_DEVICE_OPENCL_C_VERSION: text = "OpenCL C 1.2"; break;
  case CL_DEVICE_EXTENSIONS: text = ""; break;
  case CL_DEVICE_TYPE: return copy_info(&type, sizeof type, capacity, value, size);
  case CL_DEVICE_MAX_COMPUTE_UNITS: return copy_info(&units, sizeof units, capacity, value, size);
  case CL_DEVICE_GLOBAL_MEM_SIZE:
  case CL_DEVICE_MAX_MEM_ALLOC_SIZE:
  case CL_DEVICE_LOCAL_MEM_SIZE: return copy_info(&memory, sizeof memory, capacity, value, size);
  case CL_DEVICE_MAX_WORK_GROUP_SIZE: return copy_info(&group, sizeof group, capacity, value, size);
  case CL_DEVICE_MEM_BASE_ADDR_ALIGN: return copy_info(&align_bits, sizeof align_bits, capacity, value, size);
  case CL_DEVICE_HOST_UNIFIED_MEMORY: return copy_info(&unified, sizeof unified, capacity, value, size);
  default: return CL_INVALID_VALUE;
  }
  return copy_info(text, strlen(text) + 1, capacity, value, size);
}

static cl_context CL_API_CALL create_context(const cl_context_properties *properties, cl_uint n,
                                             const cl_device_id *devices,
                                             void(CL_CALLBACK *notify)(const char *, const void *, size_t, void *),
                                             void *user, cl_int *status) {
  (void)properties; (void)n; (void)devices; (void)notify; (void)user;
  if (status) *status = CL_OUT_OF_HOST_MEMORY;
  return NULL;
}

static void *CL_API_CALL extension_address(const char *name) {
  return strcmp(name, "clIcdGetPlatformIDsKHR") == 0 ? (void *)&get_platform_ids : NULL;
}

__attribute__((constructor)) static void fill_dispatch(void) {
  dispatch.clGetPlatformIDs = get_platform_ids;
  dispatch.clGetPlatformInfo = get_platform_info;
  dispatch.clGetDeviceIDs = get_device_ids;
  dispatch.clGetDeviceInfo = get_device_info;
  dispatch.clCreateContext = create_context;
  dispatch.clGetExtensionFunctionAddress = extension_address;
}

CL_API_ENTRY void *CL_API_CALL clGetExtensionFunctionAddress(const char *name) { return extension_address(name); }
CL_API_ENTRY cl_int CL_API_CALL clIcdGetPlatformIDsKHR(cl_uint n, cl_platform_id *p, cl_uint *count) {
  return get_platform_ids(n, p, count);
}
CL_API_ENTRY cl_int CL_API_CALL clGetPlatformInfo(cl_platform_id p, cl_platform_info name, size_t capacity,
                                                  void *value, size_t *size) {
  return get_platform_info(p, name, capacity, value, size);
}
