import CLPool
import COpenCL
import Testing

/// clpool inside a caller's OpenCL pipeline, built the way a user's code would build it: the
/// context, queue, buffer and kernels through the C API, then their kernel → clpool's pool →
/// their kernel → their read, chained by events with no host round trip, on in-order and
/// out-of-order queues, at a sub-buffer offset and at an offset that needs a device-side copy.
/// The results are checked against float64, and clpool's references are gone afterwards.
@Suite(.enabled(if: TestBackends.runOpenCL), .serialized)
struct InteropTests {
  static let source = """
    __kernel void make(__global float *x, ulong first, ulong count) {
      ulong i = get_global_id(0);
      if (i < count) x[first + i] = (float)((i * 7919) % 1000) / 250.0f - 2.0f;
    }
    __kernel void twice(__global float *y, ulong first, ulong count) {
      ulong i = get_global_id(0);
      if (i < count) y[first + i] *= 2.0f;
    }
    """

  @Test(arguments: [(false, 1024), (true, 1024), (false, 4), (true, 4)])
  func aCallersPipelineRunsThroughClpoolOnTheDevice(outOfOrder: Bool, byteOffset: Int) throws {
    var status: cl_int = 0
    var platform: cl_platform_id?
    var device: cl_device_id?
    #expect(clGetPlatformIDs(1, &platform, nil) == CL_SUCCESS)
    #expect(clGetDeviceIDs(platform, cl_device_type(CL_DEVICE_TYPE_ALL), 1, &device, nil) == CL_SUCCESS)
    let context = try #require(clCreateContext(nil, 1, &device, nil, nil, &status))
    defer { clReleaseContext(context) }
    let properties = outOfOrder ? cl_command_queue_properties(CL_QUEUE_OUT_OF_ORDER_EXEC_MODE_ENABLE) : 0
    guard let queue = clCreateCommandQueue(context, device, properties, &status), status == CL_SUCCESS else {
      #expect(outOfOrder, "clCreateCommandQueue failed: \(status)")
      print("note: out-of-order queue not offered by this device (\(status)); that case is skipped")
      return
    }
    defer { clReleaseCommandQueue(queue) }
    var text: UnsafePointer<CChar>? = nil
    let program = try Self.source.withCString { pointer -> cl_program in
      text = pointer
      return try #require(clCreateProgramWithSource(context, 1, &text, nil, &status))
    }
    defer { clReleaseProgram(program) }
    #expect(clBuildProgram(program, 1, &device, "", nil, nil) == CL_SUCCESS)
    let make = try #require(clCreateKernel(program, "make", &status))
    let twice = try #require(clCreateKernel(program, "twice", &status))
    defer { clReleaseKernel(make); clReleaseKernel(twice) }

    // Features [3, 5, 7, 7] written by the caller's kernel at byteOffset into their buffer.
    let shape = [3, 5, 7, 7], count = 3 * 5 * 49, planes = 15
    let buffer = try #require(clCreateBuffer(context, cl_mem_flags(CL_MEM_READ_WRITE), byteOffset + count * 4, nil, &status))
    defer { clReleaseMemObject(buffer) }
    let contextReferences = try Self.references(of: context, buffer)
    var made: cl_event?
    try Self.launch(make, queue, buffer, first: byteOffset / 4, count: count, after: [], event: &made)

    var pooled: [Float] = []
    do {
      let backend = try OpenCLBackend(context: context, device: try #require(device), queue: queue)
      let features = try backend.wrap(buffer, byteOffset: byteOffset, shape: shape)
      let result = try backend.globalAveragePool(features, waitingFor: [try #require(made)])
      #expect(result.shape == [3, 5])
      // The caller's kernel doubles clpool's result in place, then the caller reads it.
      var doubled: cl_event?
      let pooledEvent = try #require(result.completionEvent)
      try Self.launch(twice, queue, result.memory, first: result.memoryOffset / 4, count: planes, after: [pooledEvent], event: &doubled)
      pooled = [Float](repeating: .nan, count: planes)
      var read: cl_event?
      var ready: cl_event? = doubled
      #expect(
        pooled.withUnsafeMutableBytes {
          clEnqueueReadBuffer(queue, result.memory, cl_bool(CL_FALSE), result.memoryOffset, planes * 4, $0.baseAddress, 1, &ready, &read)
        } == CL_SUCCESS)
      #expect(clWaitForEvents(1, &read) == CL_SUCCESS)
      clReleaseEvent(read)
      clReleaseEvent(doubled)
    }
    clReleaseEvent(made)
    for plane in 0..<planes {
      let sum = (0..<49).reduce(0.0) { $0 + Double((Float((plane * 49 + $1) * 7919 % 1000) / 250) - 2) }
      #expect(abs(Double(pooled[plane]) - 2 * sum / 49) <= 1e-6, "plane \(plane): \(pooled[plane])")
    }
    // Every reference clpool took (the context, the sub-buffer or copy over the caller's buffer)
    // is released with the backend and its tensors. (Not OpenCLDiagnostics.liveObjects: other
    // suites create objects in this process at the same time.)
    let after = try Self.references(of: context, buffer)
    #expect(after == contextReferences, "clpool kept references to the caller's objects: \(contextReferences) -> \(after)")
    // The caller's handles are still theirs: clpool released only its own references (a queue
    // it over-released would be gone), so the pipeline goes on after the backend.
    var again: cl_event?
    try Self.launch(make, queue, buffer, first: byteOffset / 4, count: count, after: [], event: &again)
    #expect(clWaitForEvents(1, &again) == CL_SUCCESS)
    clReleaseEvent(again)
  }

  /// The reference counts of a context and a buffer.
  static func references(of context: cl_context, _ buffer: cl_mem) throws -> [cl_uint] {
    var (contextCount, bufferCount): (cl_uint, cl_uint) = (0, 0)
    try #require(clGetContextInfo(context, cl_context_info(CL_CONTEXT_REFERENCE_COUNT), 4, &contextCount, nil) == CL_SUCCESS)
    try #require(clGetMemObjectInfo(buffer, cl_mem_info(CL_MEM_REFERENCE_COUNT), 4, &bufferCount, nil) == CL_SUCCESS)
    return [contextCount, bufferCount]
  }

  /// The caller's kernel over `count` floats of `buffer` from element `first`, after `events`.
  static func launch(
    _ kernel: cl_kernel, _ queue: cl_command_queue, _ buffer: cl_mem, first: Int, count: Int, after events: [cl_event],
    event: inout cl_event?
  ) throws {
    var memory: cl_mem? = buffer
    var (start, length) = (cl_ulong(first), cl_ulong(count))
    #expect(clSetKernelArg(kernel, 0, MemoryLayout<cl_mem>.size, &memory) == CL_SUCCESS)
    #expect(clSetKernelArg(kernel, 1, 8, &start) == CL_SUCCESS)
    #expect(clSetKernelArg(kernel, 2, 8, &length) == CL_SUCCESS)
    var global = (count + 63) / 64 * 64
    let waits: [cl_event?] = events
    let status = waits.withUnsafeBufferPointer { list in
      clEnqueueNDRangeKernel(queue, kernel, 1, nil, &global, nil, cl_uint(list.count), list.isEmpty ? nil : list.baseAddress, &event)
    }
    try #require(status == CL_SUCCESS, "clEnqueueNDRangeKernel: \(status)")
  }
}
