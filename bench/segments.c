/*
 * The work-group pooling kernel (gap_rows_wg, Kernels/pool.cl) on ResNet-50's 7x7 planes with
 * one plane per work-group (segment 256, the design before issue 10) and with the segment the
 * launch rule picks (8 work-items per plane, 32 planes per group), for a simulator's instruction
 * counts: run under `oclgrind --inst-counts`. It checks both results against a float64 sum.
 *
 * Build and run (from the repository root):
 *   cc -O1 bench/segments.c -o bench/out/segments -lOpenCL -lm
 *   oclgrind --inst-counts bench/out/segments 256   # then 8
 */
#define CL_TARGET_OPENCL_VERSION 120
#include <CL/cl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *slurp(const char *path) {
  FILE *file = fopen(path, "rb");
  if (!file) { perror(path); exit(1); }
  fseek(file, 0, SEEK_END);
  long size = ftell(file);
  rewind(file);
  char *text = malloc((size_t)size + 1);
  if (fread(text, 1, (size_t)size, file) != (size_t)size) { perror(path); exit(1); }
  text[size] = 0;
  fclose(file);
  return text;
}

int main(int argc, char **argv) {
  cl_uint segment = argc > 1 ? (cl_uint)atoi(argv[1]) : 8;
  const cl_ulong planes = 64 * 64, plane = 49;
  const cl_uint wg = 256, chunks = 1;
  char *storage = slurp("Kernels/storage.h"), *pool = slurp("Kernels/pool.cl");
  const char *sources[] = {storage, "\n", pool};
  cl_platform_id platform;
  cl_device_id device;
  cl_int status;
  clGetPlatformIDs(1, &platform, NULL);
  clGetDeviceIDs(platform, CL_DEVICE_TYPE_ALL, 1, &device, NULL);
  cl_context context = clCreateContext(NULL, 1, &device, NULL, NULL, &status);
  cl_command_queue queue = clCreateCommandQueue(context, device, 0, &status);
  cl_program program = clCreateProgramWithSource(context, 3, sources, NULL, &status);
  if (clBuildProgram(program, 1, &device, "-DWG_SIZE=256 -cl-std=CL1.2", NULL, NULL) != CL_SUCCESS) {
    fprintf(stderr, "build failed\n");
    return 1;
  }
  cl_kernel kernel = clCreateKernel(program, "gap_rows_wg", &status);
  size_t count = planes * plane;
  float *x = malloc(count * sizeof(float)), *out = malloc(planes * sizeof(float));
  for (size_t i = 0; i < count; ++i) x[i] = (float)((i * 2654435761u) % 1000) / 250.0f - 1.0f;
  cl_mem in = clCreateBuffer(context, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR, count * sizeof(float), x, &status);
  cl_mem result = clCreateBuffer(context, CL_MEM_WRITE_ONLY, planes * sizeof(float), NULL, &status);
  cl_ulong chunk = plane;
  clSetKernelArg(kernel, 0, sizeof in, &in);
  clSetKernelArg(kernel, 1, sizeof result, &result);
  clSetKernelArg(kernel, 2, sizeof result, &result);
  clSetKernelArg(kernel, 3, sizeof planes, &planes);
  clSetKernelArg(kernel, 4, sizeof plane, &plane);
  clSetKernelArg(kernel, 5, sizeof chunk, &chunk);
  clSetKernelArg(kernel, 6, sizeof chunks, &chunks);
  clSetKernelArg(kernel, 7, sizeof segment, &segment);
  size_t per_group = wg / segment, groups = (planes + per_group - 1) / per_group;
  size_t global = groups * wg, local = wg;
  if (clEnqueueNDRangeKernel(queue, kernel, 1, NULL, &global, &local, 0, NULL, NULL) != CL_SUCCESS) return 1;
  clEnqueueReadBuffer(queue, result, CL_TRUE, 0, planes * sizeof(float), out, 0, NULL, NULL);
  double worst = 0;
  for (size_t p = 0; p < planes; ++p) {
    double sum = 0;
    for (size_t i = 0; i < plane; ++i) sum += x[p * plane + i];
    worst = fmax(worst, fabs(out[p] - sum / plane));
  }
  printf("segment %u: %zu work-groups of %u, max error %.2e\n", segment, groups, wg, worst);
  return worst < 1e-5 ? 0 : 1;
}
