import COpenCL

/// clpool inside a caller's OpenCL pipeline: a backend on the caller's context, device and queue,
/// and device tensors over the caller's buffers, with no copy and no host round-trip. Device-tensor
/// calls take the caller's events to wait for and return their own (`DeviceTensor`).
extension OpenCLBackend {
  /// A backend that computes in the caller's `context` on `device`, enqueuing on the caller's
  /// `queue` (in-order or out-of-order: every call chains its own commands with events). It
  /// retains the three and releases exactly those references when it goes, never the caller's.
  /// - Throws: `CLPoolError.invalidArgument` when the queue does not belong to that context and
  ///   device; `CLPoolError.openCL` as `init(device:)` does.
  public convenience init(
    context: cl_context, device: cl_device_id, queue: cl_command_queue, options: BackendOptions = BackendOptions(),
    kernelVariant: KernelVariant = .automatic, buildOptions: String = "", allocationCap: UInt64? = nil,
    cache: ProgramCache = .shared
  ) throws {
    var queueContext: cl_context?
    var queueDevice: cl_device_id?
    try check(
      clGetCommandQueueInfo(queue, cl_command_queue_info(CL_QUEUE_CONTEXT), MemoryLayout<cl_context?>.size, &queueContext, nil),
      "clGetCommandQueueInfo(CL_QUEUE_CONTEXT)")
    try check(
      clGetCommandQueueInfo(queue, cl_command_queue_info(CL_QUEUE_DEVICE), MemoryLayout<cl_device_id?>.size, &queueDevice, nil),
      "clGetCommandQueueInfo(CL_QUEUE_DEVICE)")
    guard queueContext == context, queueDevice == device else {
      throw CLPoolError.invalidArgument("the command queue belongs to another context or device than the one given")
    }
    try self.init(
      device: try OpenCLDevice(describing: device), context: try CLContext(retaining: context),
      queue: try CLQueue(retaining: queue), options: options, kernelVariant: kernelVariant, buildOptions: buildOptions,
      allocationCap: allocationCap, cache: cache)
  }

  /// A device tensor over the caller's `buffer`, without a copy: `shape` elements of `scalarType`
  /// from `byteOffset`, row-major. The tensor retains the buffer. An offset that is a multiple of
  /// the device's CL_DEVICE_MEM_BASE_ADDR_ALIGN (`device.baseAddressAlignment`) becomes a
  /// sub-buffer; any other offset costs one device-side copy each time an operation reads the
  /// tensor (never a host round-trip). Operations on it wait for the events their call is given.
  /// - Throws: `CLPoolError.invalidArgument` when the buffer belongs to another context or is too
  ///   small for the shape at that offset; `CLPoolError.unavailable` for a type the device lacks.
  public func wrap(_ buffer: cl_mem, byteOffset: Int = 0, shape: [Int], scalarType: ScalarType = .float32) throws
    -> DeviceTensor
  {
    try checkSupport(scalarType)
    let count = try Tensor.elementCount(of: shape)
    var bufferContext: cl_context?
    try check(
      clGetMemObjectInfo(buffer, cl_mem_info(CL_MEM_CONTEXT), MemoryLayout<cl_context?>.size, &bufferContext, nil),
      "clGetMemObjectInfo(CL_MEM_CONTEXT)")
    guard bufferContext == context.raw else {
      throw CLPoolError.invalidArgument("the buffer belongs to another OpenCL context than this backend's")
    }
    let retained = try CLBuffer(retaining: buffer)
    let (bytes, overflow) = count.multipliedReportingOverflow(by: scalarType.byteWidth)
    guard byteOffset >= 0, !overflow, byteOffset <= retained.bytes, bytes <= retained.bytes - byteOffset else {
      throw CLPoolError.invalidArgument(
        "a \(Tensor.describe(shape)) \(scalarType.rawValue) tensor at byte offset \(byteOffset) does not fit in a buffer of \(retained.bytes) bytes")
    }
    if byteOffset == 0 || count == 0 {
      return DeviceTensor(shape: shape, scalarType: scalarType, buffer: retained, owner: self, ready: nil)
    }
    if byteOffset % device.baseAddressAlignment == 0 {
      let view = try CLBuffer(subBufferOf: retained, offset: byteOffset, bytes: bytes)
      return DeviceTensor(shape: shape, scalarType: scalarType, buffer: view, owner: self, ready: nil)
    }
    return DeviceTensor(shape: shape, scalarType: scalarType, buffer: retained, copyOffset: byteOffset, owner: self, ready: nil)
  }
}
