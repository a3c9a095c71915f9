/*
 * Minimal reproduction: `select` on long8 (also long2/long4, and the long8 ?: operator) with a mask
 * made by convert_long8(float8 > float8) returns its first operand where the mask is true.
 * Seen on Mesa rusticl 22.3 (llvmpipe); PoCL and Oclgrind compute it right. clpool's kernels keep
 * positions in int8 and select with the int8 mask a float8 comparison gives (the workaround below),
 * which every driver computes right.
 *
 * Build and run:  cc long8_select.c -o long8_select -lOpenCL && ./long8_select
 * Output: one line per device, "<platform> | <device> | <driver>: long8 select <ok|WRONG> ...".
 * Exit status: 0 if the workaround is right on every device (whatever the long8 form does), 1 if not.
 */
#define CL_TARGET_OPENCL_VERSION 120
#include <CL/cl.h>
#include <stdio.h>
#include <string.h>

static const char *source =
    "__kernel void repro(__global const float *v, __global long *bug, __global long *fix) {\n"
    "  float8 x = vload8(0, v);\n"
    "  vstore8(select((long8)1, (long8)2, convert_long8(x > 0.0f)), 0, bug);\n"
    "  int8 mask = x > 0.0f;\n"
    "  vstore8(convert_long8(select((int8)1, (int8)2, mask)), 0, fix);\n"
    "}\n";

static int run_on(cl_platform_id platform, cl_device_id device) {
  char platform_name[256] = "", device_name[256] = "", driver[256] = "";
  clGetPlatformInfo(platform, CL_PLATFORM_NAME, sizeof platform_name, platform_name, NULL);
  clGetDeviceInfo(device, CL_DEVICE_NAME, sizeof device_name, device_name, NULL);
  clGetDeviceInfo(device, CL_DRIVER_VERSION, sizeof driver, driver, NULL);
  cl_int status;
  cl_context context = clCreateContext(NULL, 1, &device, NULL, NULL, &status);
  if (status != CL_SUCCESS) { printf("%s | %s | %s: no context (%d)\n", platform_name, device_name, driver, status); return 1; }
  cl_command_queue queue = clCreateCommandQueue(context, device, 0, &status);
  cl_program program = clCreateProgramWithSource(context, 1, &source, NULL, &status);
  if (clBuildProgram(program, 1, &device, "", NULL, NULL) != CL_SUCCESS) {
    printf("%s | %s | %s: build failed\n", platform_name, device_name, driver);
    return 1;
  }
  cl_kernel kernel = clCreateKernel(program, "repro", &status);
  float values[8] = {1, 2, 3, 4, 5, 6, 7, 8}; /* all positive: every lane must select 2 */
  cl_long bug[8] = {0}, fix[8] = {0};
  cl_mem in = clCreateBuffer(context, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR, sizeof values, values, &status);
  cl_mem out_bug = clCreateBuffer(context, CL_MEM_WRITE_ONLY, sizeof bug, NULL, &status);
  cl_mem out_fix = clCreateBuffer(context, CL_MEM_WRITE_ONLY, sizeof fix, NULL, &status);
  clSetKernelArg(kernel, 0, sizeof in, &in);
  clSetKernelArg(kernel, 1, sizeof out_bug, &out_bug);
  clSetKernelArg(kernel, 2, sizeof out_fix, &out_fix);
  size_t one = 1;
  clEnqueueNDRangeKernel(queue, kernel, 1, NULL, &one, &one, 0, NULL, NULL);
  clEnqueueReadBuffer(queue, out_bug, CL_TRUE, 0, sizeof bug, bug, 0, NULL, NULL);
  clEnqueueReadBuffer(queue, out_fix, CL_TRUE, 0, sizeof fix, fix, 0, NULL, NULL);
  int bug_ok = 1, fix_ok = 1;
  for (int i = 0; i < 8; ++i) {
    bug_ok &= bug[i] == 2;
    fix_ok &= fix[i] == 2;
  }
  printf("%s | %s | %s: long8 select %s (lane 0 = %lld), int8 workaround %s\n", platform_name, device_name,
         driver, bug_ok ? "ok" : "WRONG", (long long)bug[0], fix_ok ? "ok" : "WRONG");
  clReleaseMemObject(in);
  clReleaseMemObject(out_bug);
  clReleaseMemObject(out_fix);
  clReleaseKernel(kernel);
  clReleaseProgram(program);
  clReleaseCommandQueue(queue);
  clReleaseContext(context);
  return fix_ok ? 0 : 1;
}

int main(void) {
  cl_platform_id platforms[16];
  cl_uint platform_count = 0;
  if (clGetPlatformIDs(16, platforms, &platform_count) != CL_SUCCESS || platform_count == 0) {
    printf("no OpenCL platform\n");
    return 1;
  }
  int failures = 0;
  for (cl_uint p = 0; p < platform_count; ++p) {
    cl_device_id devices[16];
    cl_uint device_count = 0;
    if (clGetDeviceIDs(platforms[p], CL_DEVICE_TYPE_ALL, 16, devices, &device_count) != CL_SUCCESS) continue;
    for (cl_uint d = 0; d < device_count; ++d) failures += run_on(platforms[p], devices[d]);
  }
  return failures == 0 ? 0 : 1;
}
