// The kernels and the host code target OpenCL 1.2 so they run on every 1.2+ driver
// (PoCL, NVIDIA, AMD, Intel); newer entry points are deliberately not visible.
#ifndef CLPOOL_COPENCL_SHIM_H
#define CLPOOL_COPENCL_SHIM_H
#define CL_TARGET_OPENCL_VERSION 120
#define CL_USE_DEPRECATED_OPENCL_1_2_APIS
#include <CL/cl.h>
#include <CL/cl_ext.h>
#endif
