import COpenCL
import Foundation

// One small owning class per OpenCL object: the raw handle is released in `deinit`, and every
// call is checked where it is made. The classes are internal; `OpenCLBackend` serialises their
// use, which is what makes sharing them across threads safe. Each counts itself in
// `OpenCLDiagnostics.liveObjects`, so tests can prove nothing leaks.

/// Counts of OpenCL objects clpool holds, for leak checks.
public enum OpenCLDiagnostics {
  /// Contexts, queues, programs, kernels, buffers and events currently alive.
  public static var liveObjects: Int { live.withLock { $0 } }
  static let live = LockedValue(0)
  static func created() { live.withLock { $0 += 1 } }
  static func released() { live.withLock { $0 -= 1 } }
}

final class CLContext {
  let raw: cl_context

  init(device: cl_device_id) throws {
    var device: cl_device_id? = device
    raw = try created("clCreateContext") { clCreateContext(nil, 1, &device, nil, nil, $0) }
    OpenCLDiagnostics.created()
  }

  /// Shares a caller's context: retained here, so releasing this object gives back exactly the
  /// reference it took.
  init(retaining context: cl_context) throws { raw = try retained(context, clRetainContext, "clRetainContext") }

  deinit { released(clReleaseContext(raw)) }
}

final class CLBuffer {
  let raw: cl_mem
  let bytes: Int

  /// How a buffer created over host data relates to it.
  enum HostData {
    /// CL_MEM_COPY_HOST_PTR: the driver copies the data at creation.
    case copy(UnsafeRawPointer)
    /// CL_MEM_USE_HOST_PTR: the driver may compute on the host memory itself (zero-copy on CPU
    /// devices); the memory must outlive the buffer's use.
    case use(UnsafeRawPointer)
  }

  init(context: CLContext, bytes: Int, flags: cl_mem_flags, host: HostData? = nil) throws {
    var flags = flags
    var pointer: UnsafeMutableRawPointer?
    switch host {
    case .copy(let data):
      flags |= cl_mem_flags(CL_MEM_COPY_HOST_PTR)
      pointer = UnsafeMutableRawPointer(mutating: data)
    case .use(let data):
      flags |= cl_mem_flags(CL_MEM_USE_HOST_PTR)
      pointer = UnsafeMutableRawPointer(mutating: data)
    case nil:
      break
    }
    raw = try created("clCreateBuffer(\(bytes) bytes)") { clCreateBuffer(context.raw, flags, max(bytes, 4), pointer, $0) }
    self.bytes = max(bytes, 4)
    OpenCLDiagnostics.created()
  }

  /// Shares a caller's buffer: retained here, released with this object.
  init(retaining buffer: cl_mem) throws {
    try check(clRetainMemObject(buffer), "clRetainMemObject")
    var size = 0
    try check(clGetMemObjectInfo(buffer, cl_mem_info(CL_MEM_SIZE), MemoryLayout<Int>.size, &size, nil), "clGetMemObjectInfo(CL_MEM_SIZE)")
    raw = buffer
    bytes = size
    OpenCLDiagnostics.created()
  }

  /// A view of `bytes` bytes of `parent` from `offset` (which must be a multiple of the device's
  /// CL_DEVICE_MEM_BASE_ADDR_ALIGN), sharing its memory.
  init(subBufferOf parent: CLBuffer, offset: Int, bytes: Int) throws {
    var region = cl_buffer_region(origin: offset, size: bytes)
    raw = try created("clCreateSubBuffer(offset \(offset), \(bytes) bytes)") {
      clCreateSubBuffer(parent.raw, 0, cl_buffer_create_type(CL_BUFFER_CREATE_TYPE_REGION), &region, $0)
    }
    self.bytes = bytes
    OpenCLDiagnostics.created()
  }

  deinit {
    clReleaseMemObject(raw)
    OpenCLDiagnostics.released()
  }
}

final class CLEvent {
  let raw: cl_event

  /// Takes ownership of an event an enqueue call returned.
  init(_ raw: cl_event) {
    self.raw = raw
    OpenCLDiagnostics.created()
  }

  /// Shares a caller's event: retained here, released with this object.
  init(retaining event: cl_event) throws { raw = try retained(event, clRetainEvent, "clRetainEvent") }

  deinit {
    clReleaseEvent(raw)
    OpenCLDiagnostics.released()
  }

  /// Blocks until the command is done; throws when it failed.
  func wait() throws {
    var handle: cl_event? = raw
    try check(clWaitForEvents(1, &handle), "clWaitForEvents")
  }

  /// Device time between the command's start and end, from the profiling counters.
  func elapsedSeconds() throws -> Double {
    func counter(_ name: Int32) throws -> cl_ulong {
      var value: cl_ulong = 0
      try check(
        clGetEventProfilingInfo(raw, cl_profiling_info(name), MemoryLayout<cl_ulong>.size, &value, nil),
        "clGetEventProfilingInfo")
      return value
    }
    let start = try counter(CL_PROFILING_COMMAND_START)
    let end = try counter(CL_PROFILING_COMMAND_END)
    return Double(end &- start) * 1e-9
  }
}

final class CLProgram {
  let raw: cl_program

  private init(_ raw: cl_program) {
    self.raw = raw
    OpenCLDiagnostics.created()
  }

  deinit {
    clReleaseProgram(raw)
    OpenCLDiagnostics.released()
  }

  /// Compiles OpenCL C source; a failed build throws with the device's log and the options.
  static func build(source: String, options: String, context: CLContext, device: cl_device_id)
    throws -> CLProgram
  {
    let program = try created("clCreateProgramWithSource") { status in
      source.withCString { text -> cl_program? in
        var pointer: UnsafePointer<CChar>? = text
        var length = strlen(text)
        return clCreateProgramWithSource(context.raw, 1, &pointer, &length, status)
      }
    }
    let owned = CLProgram(program)
    try owned.finishBuild(options: options, device: device)
    return owned
  }

  /// Recreates a program from the binary `binary(device:)` returned; throws if the driver rejects
  /// it (the caller then builds from source).
  static func load(binary: [UInt8], options: String, context: CLContext, device: cl_device_id)
    throws -> CLProgram
  {
    var status: cl_int = 0
    var binaryStatus: cl_int = 0
    var device: cl_device_id? = device
    var length = binary.count
    let program = binary.withUnsafeBufferPointer { bytes -> cl_program? in
      var pointer: UnsafePointer<UInt8>? = bytes.baseAddress
      return clCreateProgramWithBinary(context.raw, 1, &device, &length, &pointer, &binaryStatus, &status)
    }
    try check(status, "clCreateProgramWithBinary")
    try check(binaryStatus, "clCreateProgramWithBinary (binary status)")
    let owned = CLProgram(program!)
    try owned.finishBuild(options: options, device: device!)
    return owned
  }

  /// Builds for `device`. Some drivers print their compiler's diagnostics ("1 error generated.")
  /// to stderr themselves: that output is captured and kept with the log, so a failed build is
  /// the one line clpool prints (the CLI prints the whole log with `--verbose`).
  private func finishBuild(options: String, device: cl_device_id) throws {
    var device: cl_device_id? = device
    let (status, printed) = DriverOutput.capture { clBuildProgram(raw, 1, &device, options, nil, nil) }
    guard status == CL_SUCCESS else {
      let log = [buildLog(device: device!), printed].filter { !$0.isEmpty }.joined(separator: "\n")
      throw CLPoolError.openCL(OpenCLError(call: "clBuildProgram", code: status, buildLog: log, buildOptions: options))
    }
    if !printed.isEmpty { writeToStandardError(printed) }  // not ours to hide
  }

  func buildLog(device: cl_device_id) -> String {
    var size = 0
    guard clGetProgramBuildInfo(raw, device, cl_program_build_info(CL_PROGRAM_BUILD_LOG), 0, nil, &size)
      == CL_SUCCESS, size > 0
    else { return "" }
    var log = [CChar](repeating: 0, count: size + 1)
    guard clGetProgramBuildInfo(raw, device, cl_program_build_info(CL_PROGRAM_BUILD_LOG), size, &log, nil)
      == CL_SUCCESS
    else { return "" }
    return String(decoding: log.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
  }

  /// The names of the program's kernels (CL_PROGRAM_KERNEL_NAMES).
  func kernelNames() throws -> Set<String> {
    var size = 0
    try check(clGetProgramInfo(raw, cl_program_info(CL_PROGRAM_KERNEL_NAMES), 0, nil, &size), "clGetProgramInfo(CL_PROGRAM_KERNEL_NAMES)")
    var text = [CChar](repeating: 0, count: size + 1)
    try check(clGetProgramInfo(raw, cl_program_info(CL_PROGRAM_KERNEL_NAMES), size, &text, nil), "clGetProgramInfo(CL_PROGRAM_KERNEL_NAMES)")
    let names = String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    return Set(names.split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces) })
  }

  /// The device binary of a program built for exactly one device.
  func binary() throws -> [UInt8] {
    var size = 0
    try check(
      clGetProgramInfo(raw, cl_program_info(CL_PROGRAM_BINARY_SIZES), MemoryLayout<Int>.size, &size, nil),
      "clGetProgramInfo(CL_PROGRAM_BINARY_SIZES)")
    var bytes = [UInt8](repeating: 0, count: size)
    try bytes.withUnsafeMutableBufferPointer { buffer in
      var pointer: UnsafeMutablePointer<UInt8>? = buffer.baseAddress
      try check(
        clGetProgramInfo(
          raw, cl_program_info(CL_PROGRAM_BINARIES), MemoryLayout<UnsafeMutablePointer<UInt8>?>.size,
          &pointer, nil),
        "clGetProgramInfo(CL_PROGRAM_BINARIES)")
    }
    return bytes
  }
}

/// A kernel argument, set by value.
enum KernelArgument {
  case buffer(CLBuffer?)
  case uint64(UInt64)
  case uint32(UInt32)
  case int32(Int32)
}

final class CLKernel {
  let raw: cl_kernel
  let name: String

  init(program: CLProgram, name: String) throws {
    raw = try created("clCreateKernel(\(name))") { clCreateKernel(program.raw, name, $0) }
    self.name = name
    OpenCLDiagnostics.created()
  }

  deinit {
    clReleaseKernel(raw)
    OpenCLDiagnostics.released()
  }

  func setArguments(_ arguments: [KernelArgument]) throws {
    for (index, argument) in arguments.enumerated() {
      let status: cl_int
      switch argument {
      case .buffer(let buffer):
        var handle: cl_mem? = buffer?.raw
        status = clSetKernelArg(raw, cl_uint(index), MemoryLayout<cl_mem?>.size, &handle)
      case .uint64(var value):
        status = clSetKernelArg(raw, cl_uint(index), 8, &value)
      case .uint32(var value):
        status = clSetKernelArg(raw, cl_uint(index), 4, &value)
      case .int32(var value):
        status = clSetKernelArg(raw, cl_uint(index), 4, &value)
      }
      try check(status, "clSetKernelArg(\(name), \(index))")
    }
  }
}

/// What a driver writes to stderr (file descriptor 2) during one call, captured through a
/// temporary file; calls are serialised, since the descriptor is the process's.
enum DriverOutput {
  private static let lock = NSLock()

  static func capture<Result>(_ body: () -> Result) -> (Result, String) {
    lock.lock()
    defer { lock.unlock() }
    var template = Array("/tmp/clpool-driver-XXXXXX".utf8CString)
    let file = mkstemp(&template)
    let saved = dup(2)
    guard file >= 0, saved >= 0 else {
      if file >= 0 { close(file) }
      return (body(), "")
    }
    unlink(String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
    fflush(nil)
    dup2(file, 2)
    let result = body()
    fflush(nil)
    dup2(saved, 2)
    close(saved)
    let size = Int(lseek(file, 0, SEEK_END))
    var bytes = [UInt8](repeating: 0, count: max(0, size))
    _ = pread(file, &bytes, bytes.count, 0)
    close(file)
    return (result, String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
  }
}

/// The handle a `clCreate…` call returns through `create` (which gets the status pointer),
/// checked: its status names the call, and a NULL handle is an error too.
func created<Handle>(_ call: @autoclosure () -> String, _ create: (UnsafeMutablePointer<cl_int>) -> Handle?) throws -> Handle {
  var status: cl_int = 0
  let handle = create(&status)
  try check(status, call())
  guard let handle else { throw CLPoolError.openCL(OpenCLError(call: call(), code: CL_INVALID_VALUE)) }
  return handle
}

/// A caller's handle with one more reference, which the owning object gives back in `deinit`.
func retained<Handle>(_ handle: Handle, _ retain: (Handle) -> cl_int, _ call: String) throws -> Handle {
  try check(retain(handle), call)
  OpenCLDiagnostics.created()
  return handle
}

/// An owning object's `deinit`: its reference given back (`status` ignored: deinit cannot throw).
func released(_ status: cl_int) {
  OpenCLDiagnostics.released()
}
