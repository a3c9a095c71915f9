import COpenCL

/// A command queue (CLObjects.swift says how the handle classes work).
final class CLQueue {
  let raw: cl_command_queue

  init(context: CLContext, device: cl_device_id) throws {
    // Profiling stays on: `KernelTimer` reads kernel-only times from the events.
    raw = try created("clCreateCommandQueue") {
      clCreateCommandQueue(context.raw, device, cl_command_queue_properties(CL_QUEUE_PROFILING_ENABLE), $0)
    }
    OpenCLDiagnostics.created()
  }

  /// Shares a caller's queue (in-order or out-of-order): retained here, released with this object.
  init(retaining queue: cl_command_queue) throws { raw = try retained(queue, clRetainCommandQueue, "clRetainCommandQueue") }

  deinit { released(clReleaseCommandQueue(raw)) }

  /// Enqueues an NDRange after `waitList`; `local == nil` lets the driver choose the work-group
  /// size.
  func launch(_ kernel: CLKernel, global: [Int], local: [Int]?, after waitList: [CLEvent]) throws -> CLEvent {
    var event: cl_event?
    let status = withWaitList(waitList) { count, events in
      clEnqueueNDRangeKernel(raw, kernel.raw, cl_uint(global.count), nil, global, local, count, events, &event)
    }
    try check(status, "clEnqueueNDRangeKernel(\(kernel.name), global \(global), local \(local.map { "\($0)" } ?? "auto"))")
    return CLEvent(event!)
  }

  /// Reads `destination.count` bytes of `buffer` from `offset` once `waitList` is done, blocking.
  func read(_ buffer: CLBuffer, offset: Int = 0, into destination: UnsafeMutableRawBufferPointer, after waitList: [CLEvent])
    throws
  {
    guard destination.count > 0 else { return }
    try startReading(buffer, offset: offset, into: destination, after: waitList).wait()
  }

  /// Starts reading `destination.count` bytes (more than zero) of `buffer` from `offset` into
  /// `destination` once `waitList` is done, without blocking: `destination` must stay valid until
  /// the returned event completes.
  func startReading(
    _ buffer: CLBuffer, offset: Int = 0, into destination: UnsafeMutableRawBufferPointer, after waitList: [CLEvent]
  ) throws -> CLEvent {
    var event: cl_event?
    try check(
      withWaitList(waitList) { count, events in
        clEnqueueReadBuffer(
          raw, buffer.raw, cl_bool(CL_FALSE), offset, destination.count, destination.baseAddress, count, events, &event)
      },
      "clEnqueueReadBuffer(\(destination.count) bytes)")
    return CLEvent(event!)
  }

  /// Starts writing `source` (more than zero bytes) to the start of `buffer`, without blocking:
  /// `source` must stay valid until the returned event completes.
  func startWriting(_ source: UnsafeRawBufferPointer, to buffer: CLBuffer, after waitList: [CLEvent] = []) throws -> CLEvent {
    var event: cl_event?
    try check(
      withWaitList(waitList) { count, events in
        clEnqueueWriteBuffer(raw, buffer.raw, cl_bool(CL_FALSE), 0, source.count, source.baseAddress, count, events, &event)
      },
      "clEnqueueWriteBuffer(\(source.count) bytes, non-blocking)")
    return CLEvent(event!)
  }

  /// Sends the queued commands to the device, so that work queued on other queues can overlap them.
  func flush() throws { try check(clFlush(raw), "clFlush") }

  /// Blocks until every command queued so far is done.
  func finish() throws { try check(clFinish(raw), "clFinish") }

  /// Fills the first `bytes` of `buffer` (a multiple of the pattern's size) with `pattern`.
  func fill<Pattern: BitwiseCopyable>(_ buffer: CLBuffer, with pattern: Pattern, bytes: Int, after waitList: [CLEvent])
    throws -> CLEvent
  {
    var value = pattern
    var event: cl_event?
    try check(
      withWaitList(waitList) { count, events in
        clEnqueueFillBuffer(raw, buffer.raw, &value, MemoryLayout<Pattern>.size, 0, bytes, count, events, &event)
      },
      "clEnqueueFillBuffer(\(bytes) bytes)")
    return CLEvent(event!)
  }

  /// Copies `bytes` from `source` at `sourceOffset` to the start of `destination`.
  func copy(_ source: CLBuffer, offset sourceOffset: Int, to destination: CLBuffer, bytes: Int, after waitList: [CLEvent])
    throws -> CLEvent
  {
    var event: cl_event?
    try check(
      withWaitList(waitList) { count, events in
        clEnqueueCopyBuffer(raw, source.raw, destination.raw, sourceOffset, 0, bytes, count, events, &event)
      },
      "clEnqueueCopyBuffer(\(bytes) bytes)")
    return CLEvent(event!)
  }

  private func withWaitList<Result>(
    _ waitList: [CLEvent], _ body: (cl_uint, UnsafePointer<cl_event?>?) -> Result
  ) -> Result {
    let handles: [cl_event?] = waitList.map(\.raw)
    return withExtendedLifetime(waitList) {
      handles.withUnsafeBufferPointer { body(cl_uint(handles.count), handles.isEmpty ? nil : $0.baseAddress) }
    }
  }
}
