import COpenCL
import Foundation

/// One OpenCL device as the ICD loader reports it, with the properties kernel selection and the
/// `clpool devices` listing need.
public struct OpenCLDevice: Sendable, CustomStringConvertible {
  public enum DeviceType: String, Sendable {
    case gpu, cpu, accelerator, other
  }

  /// Position in the enumeration over all platforms, as `CLPOOL_DEVICE=<index>` takes it.
  public let index: Int
  public let platformName: String
  public let platformVersion: String
  public let name: String
  public let vendor: String
  public let type: DeviceType
  public let deviceVersion: String
  public let driverVersion: String
  public let openCLCVersion: String
  public let computeUnits: Int
  public let globalMemoryBytes: UInt64
  public let maxAllocationBytes: UInt64
  public let localMemoryBytes: UInt64
  public let maxWorkGroupSize: Int
  /// CL_DEVICE_MEM_BASE_ADDR_ALIGN in bytes: where a sub-buffer of a device buffer may start.
  public let baseAddressAlignment: Int
  /// CL_DEVICE_HOST_UNIFIED_MEMORY: the device shares the host's memory (CPU devices, most
  /// integrated GPUs), so a host tensor reaches it without a copy over a bus.
  public let hostUnifiedMemory: Bool
  public let extensions: [String]

  /// The raw id is a process-wide constant owned by the ICD loader; copying it across threads is
  /// safe.
  struct Handles: @unchecked Sendable {
    let device: cl_device_id
  }
  let handles: Handles

  public var supportsFP16: Bool { extensions.contains("cl_khr_fp16") }
  public var supportsFP64: Bool { extensions.contains("cl_khr_fp64") }
  /// The storage types clpool computes in on this device: float16 everywhere (the kernels touch
  /// halves only through vload_half / vstore_half, core OpenCL 1.2; cl_khr_fp16 is about half
  /// arithmetic, which they never do), float32, and float64 with cl_khr_fp64.
  public var storageTypes: [ScalarType] { supportsFP64 ? [.float16, .float32, .float64] : [.float16, .float32] }
  /// GPUs and accelerators get the work-group tree kernels and are preferred by `auto`.
  public var isAccelerator: Bool { type == .gpu || type == .accelerator }

  public var description: String { "\(name) (\(platformName))" }

  /// Every device of every platform, in a stable order.
  /// - Throws: `CLPoolError.openCL` with `CL_PLATFORM_NOT_FOUND_KHR` when no platform is installed.
  public static func all() throws -> [OpenCLDevice] {
    var platformCount: cl_uint = 0
    try check(clGetPlatformIDs(0, nil, &platformCount), "clGetPlatformIDs")
    guard platformCount > 0 else {
      throw CLPoolError.openCL(OpenCLError(call: "clGetPlatformIDs", code: CL_PLATFORM_NOT_FOUND_KHR))
    }
    var platforms = [cl_platform_id?](repeating: nil, count: Int(platformCount))
    try check(clGetPlatformIDs(platformCount, &platforms, nil), "clGetPlatformIDs")
    var devices: [OpenCLDevice] = []
    for case let platform? in platforms {
      var deviceCount: cl_uint = 0
      let status = clGetDeviceIDs(platform, cl_device_type(CL_DEVICE_TYPE_ALL), 0, nil, &deviceCount)
      if status == CL_DEVICE_NOT_FOUND { continue }
      try check(status, "clGetDeviceIDs")
      var ids = [cl_device_id?](repeating: nil, count: Int(deviceCount))
      try check(
        clGetDeviceIDs(platform, cl_device_type(CL_DEVICE_TYPE_ALL), deviceCount, &ids, nil),
        "clGetDeviceIDs")
      for case let id? in ids {
        devices.append(try OpenCLDevice(index: devices.count, platform: platform, device: id))
      }
    }
    return devices
  }

  /// Describes a device a caller already holds (`OpenCLBackend(context:device:queue:)`); its
  /// `index` is its place in `all()`, or -1 when the enumeration does not list it.
  public init(describing device: cl_device_id) throws {
    let platform: cl_platform_id? = try Self.deviceValue(device, CL_DEVICE_PLATFORM)
    guard let platform else { throw CLPoolError.openCL(OpenCLError(call: "clGetDeviceInfo(CL_DEVICE_PLATFORM)", code: CL_INVALID_DEVICE)) }
    let index = (try? Self.all())?.first { $0.handles.device == device }?.index ?? -1
    try self.init(index: index, platform: platform, device: device)
  }

  private init(index: Int, platform: cl_platform_id, device: cl_device_id) throws {
    self.index = index
    handles = Handles(device: device)
    platformName = try Self.platformString(platform, CL_PLATFORM_NAME)
    platformVersion = try Self.platformString(platform, CL_PLATFORM_VERSION)
    name = try Self.deviceString(device, CL_DEVICE_NAME)
    vendor = try Self.deviceString(device, CL_DEVICE_VENDOR)
    deviceVersion = try Self.deviceString(device, CL_DEVICE_VERSION)
    driverVersion = try Self.deviceString(device, CL_DRIVER_VERSION)
    openCLCVersion = try Self.deviceString(device, CL_DEVICE_OPENCL_C_VERSION)
    extensions = try Self.deviceString(device, CL_DEVICE_EXTENSIONS).split(separator: " ").map(String.init)
    let rawType: cl_device_type = try Self.deviceValue(device, CL_DEVICE_TYPE)
    if rawType & cl_device_type(CL_DEVICE_TYPE_GPU) != 0 {
      type = .gpu
    } else if rawType & cl_device_type(CL_DEVICE_TYPE_ACCELERATOR) != 0 {
      type = .accelerator
    } else if rawType & cl_device_type(CL_DEVICE_TYPE_CPU) != 0 {
      type = .cpu
    } else {
      type = .other
    }
    computeUnits = Int(try Self.deviceValue(device, CL_DEVICE_MAX_COMPUTE_UNITS) as cl_uint)
    globalMemoryBytes = try Self.deviceValue(device, CL_DEVICE_GLOBAL_MEM_SIZE)
    maxAllocationBytes = try Self.deviceValue(device, CL_DEVICE_MAX_MEM_ALLOC_SIZE)
    localMemoryBytes = try Self.deviceValue(device, CL_DEVICE_LOCAL_MEM_SIZE)
    maxWorkGroupSize = try Self.deviceValue(device, CL_DEVICE_MAX_WORK_GROUP_SIZE) as Int
    baseAddressAlignment = max(1, Int(try Self.deviceValue(device, CL_DEVICE_MEM_BASE_ADDR_ALIGN) as cl_uint) / 8)
    hostUnifiedMemory = (try Self.deviceValue(device, CL_DEVICE_HOST_UNIFIED_MEMORY) as cl_bool) != 0
  }

  private static func deviceValue<T: FixedWidthInteger>(_ device: cl_device_id, _ parameter: Int32) throws -> T {
    var value: T = 0
    try check(
      clGetDeviceInfo(device, cl_device_info(parameter), MemoryLayout<T>.size, &value, nil),
      "clGetDeviceInfo(\(parameter))")
    return value
  }

  private static func deviceValue(_ device: cl_device_id, _ parameter: Int32) throws -> cl_platform_id? {
    var value: cl_platform_id?
    try check(
      clGetDeviceInfo(device, cl_device_info(parameter), MemoryLayout<cl_platform_id?>.size, &value, nil),
      "clGetDeviceInfo(\(parameter))")
    return value
  }

  private static func deviceString(_ device: cl_device_id, _ parameter: Int32) throws -> String {
    try readString("clGetDeviceInfo(\(parameter))") { size, value, actual in
      clGetDeviceInfo(device, cl_device_info(parameter), size, value, actual)
    }
  }

  private static func platformString(_ platform: cl_platform_id, _ parameter: Int32) throws -> String {
    try readString("clGetPlatformInfo(\(parameter))") { size, value, actual in
      clGetPlatformInfo(platform, cl_platform_info(parameter), size, value, actual)
    }
  }

  private static func readString(
    _ call: String, _ query: (Int, UnsafeMutableRawPointer?, UnsafeMutablePointer<Int>?) -> cl_int
  ) throws -> String {
    var size = 0
    try check(query(0, nil, &size), call)
    var bytes = [CChar](repeating: 0, count: size + 1)
    try check(query(size, &bytes, nil), call)
    return String(decoding: bytes.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
      .trimmingCharacters(in: .whitespaces)
  }
}
