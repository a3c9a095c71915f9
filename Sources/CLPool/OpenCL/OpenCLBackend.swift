import CLPoolCPU
import COpenCL
import Foundation

/// A backend computing on one OpenCL device: its own context and in-order queue (or a caller's,
/// see `OpenCLInterop.swift`), programs from the `ProgramCache`, kernels chosen per device type and
/// shape. The routines live beside this file: pooling (`OpenCLPooling.swift`), dense and the head
/// (`OpenCLDense.swift`), device tensors (`OpenCLDeviceTensors.swift`); each reads check, kernel,
/// arguments, launch, through `enqueue` and `hostCall` here.
///
/// Thread safety: calls are serialised on an internal lock (they share the queue, the programs and
/// the reusable buffers; kernels, whose arguments are state, are created per call), so one backend
/// may be shared by many threads.
public final class OpenCLBackend: Backend, @unchecked Sendable {
  /// Which family of kernels to use: barrier-free loops or work-group cooperation.
  public enum KernelVariant: String, CaseIterable, Sendable {
    /// Work-group kernels on GPUs and accelerators, per-work-item loops on CPU devices.
    case automatic = "auto"
    /// Per-work-item loops: channels-first pooling one work-item per plane chunk, dense in
    /// register tiles. No barriers (what CPU drivers want).
    case workItem = "item"
    /// Work-group kernels: channels-first pooling by segments of a work-group with local-memory
    /// trees, dense with tiles staged in local memory (what GPUs want).
    case workGroup = "group"
  }

  public let kind = BackendKind.opencl
  public let device: OpenCLDevice
  public var deviceName: String { device.description }
  /// The kernel family actually used for float32 (`.automatic` resolved); other storage types
  /// fall back to `.workItem` on a device that cannot run their work-group kernels.
  public let kernelVariant: KernelVariant
  /// What decides this backend's bits besides its inputs: the OpenCL implementation (platform,
  /// its version, the driver's), the device type and work-group limit, the kernel family and the
  /// compiler options. Backends with one key compile the same kernels the same way and choose
  /// among them by the same rules, so they give the same bits (PoCL's basic and pthread devices
  /// do); a sharded batch is split only over such devices.
  public var computationKey: String {
    [device.platformName, device.platformVersion, device.driverVersion, device.type.rawValue, "\(device.maxWorkGroupSize)",
     kernelVariant.rawValue, buildOptions].joined(separator: " | ")
  }
  /// The largest buffer this backend allocates: the device's CL_DEVICE_MAX_MEM_ALLOC_SIZE, or a
  /// lower cap. Pooling inputs above it run in parts; other requests above it are refused.
  public let allocationLimit: UInt64

  let options: BackendOptions
  let context: CLContext
  let queue: CLQueue
  /// Work-group size of the work-group kernels (WG_SIZE in the program).
  let workGroupSize: Int
  private let cache: ProgramCache
  private let buildOptions: String
  /// True when the dense kernels fold k in the CPU's blocks (no other `-DK_BLOCK`), so that their
  /// fma chains are the CPU product's, bit for bit.
  var foldsProductsAsTheCPU: Bool { (BuildOptions.productBlock(in: buildOptions) ?? Int(CLPOOL_K_BLOCK)) == Int(CLPOOL_K_BLOCK) }
  /// Serialises calls; guards `programs` and `reusable`.
  private let lock = NSLock()
  /// The program per storage type (Kernels/storage.h), the kernel family it runs, and whether
  /// the device runs its 16 x 16 tiled dense kernel: float32 built by `init`, the others on first
  /// use.
  private var programs: [ScalarType: ProgramEntry] = [:]
  struct ProgramEntry {
    let program: CLProgram
    let variant: KernelVariant
    let tiledDense: Bool
  }
  private var reusable: [BufferRole: CLBuffer] = [:]

  /// Rows of y per work-item, compiled into dense.cl (ROWS); the launch geometry depends on it.
  static let denseRows = 6

  /// - Parameters:
  ///   - device: the device to compute on, in a context and queue of the backend's own.
  ///   - options: output poisoning, for cross-checks.
  ///   - kernelVariant: force the per-work-item or the work-group kernels; by default, by device type.
  ///   - buildOptions: extra options for the OpenCL compiler, appended to clpool's own
  ///     (`BuildOptions` lists what is accepted; `BackendSelection` passes `CLPOOL_BUILD_OPTIONS`).
  ///   - allocationCap: a limit below the device's own on any one buffer (`BackendSelection`
  ///     passes `CLPOOL_MAX_ALLOC_BYTES`), e.g. to leave memory to others or to test splitting.
  ///   - cache: where built programs are kept, in memory and on disk.
  /// - Throws: `CLPoolError.openCL` if the context or queue cannot be created or a program fails
  ///   to build (the error carries the build log).
  public convenience init(
    device: OpenCLDevice, options: BackendOptions = BackendOptions(), kernelVariant: KernelVariant = .automatic,
    buildOptions: String = "", allocationCap: UInt64? = nil, cache: ProgramCache = .shared
  ) throws {
    let context = try CLContext(device: device.handles.device)
    try self.init(
      device: device, context: context, queue: try CLQueue(context: context, device: device.handles.device),
      options: options, kernelVariant: kernelVariant, buildOptions: buildOptions, allocationCap: allocationCap,
      cache: cache)
  }

  init(
    device: OpenCLDevice, context: CLContext, queue: CLQueue, options: BackendOptions, kernelVariant: KernelVariant,
    buildOptions: String, allocationCap: UInt64?, cache: ProgramCache
  ) throws {
    try BuildOptions.validate(buildOptions)
    self.device = device
    self.context = context
    self.queue = queue
    self.options = options
    self.cache = cache
    allocationLimit = min(device.maxAllocationBytes, allocationCap ?? .max)
    var groupSize = 1
    while groupSize * 2 <= min(256, device.maxWorkGroupSize) { groupSize *= 2 }
    workGroupSize = groupSize
    self.buildOptions = "-DWG_SIZE=\(groupSize) -DROWS=\(Self.denseRows) -cl-std=CL1.2 \(buildOptions)"
    let wanted = kernelVariant == .automatic ? (device.isAccelerator ? .workGroup : .workItem) : kernelVariant
    let entry = try Self.entry(
      try Self.build(.float32, options: self.buildOptions, cache, device, context), wanted, device, groupSize)
    self.kernelVariant = entry.variant
    programs = [.float32: entry]
  }

  private static func build(
    _ type: ScalarType, options: String, _ cache: ProgramCache, _ device: OpenCLDevice, _ context: CLContext
  ) throws -> CLProgram {
    let define: String
    switch type {
    case .float16: define = "-DSTORAGE_HALF "
    case .float32: define = ""
    case .float64: define = "-DSTORAGE_DOUBLE "
    }
    return try cache.program(source: KernelSource.program, options: define + options, device: device, context: context)
  }

  /// The program with the kernels it runs: `wanted`, unless that is `.workGroup` and the device
  /// cannot run this program's work-group pooling kernels at WG_SIZE (a GPU whose registers do not
  /// hold as many work-items, which depends on the storage type): then the per-work-item loops.
  /// The tiled dense kernel needs work-groups of 16 x 16 besides.
  private static func entry(_ program: CLProgram, _ wanted: KernelVariant, _ device: OpenCLDevice, _ groupSize: Int)
    throws -> ProgramEntry
  {
    func limit(_ name: String) throws -> Int {
      var limit = 0
      let kernel = try CLKernel(program: program, name: name)
      try withExtendedLifetime(kernel) {
        try check(
          clGetKernelWorkGroupInfo(
            kernel.raw, device.handles.device, cl_kernel_work_group_info(CL_KERNEL_WORK_GROUP_SIZE),
            MemoryLayout<Int>.size, &limit, nil),
          "clGetKernelWorkGroupInfo(\(name))")
      }
      return limit
    }
    guard wanted == .workGroup else { return ProgramEntry(program: program, variant: wanted, tiledDense: false) }
    let pooling = try limit("gap_rows_wg") >= groupSize && limit("gmp_rows_wg") >= groupSize
    let tiled = try device.maxWorkGroupSize >= 256 && limit("dense_in_out_tiled") >= 256
    return ProgramEntry(program: program, variant: pooling ? .workGroup : .workItem, tiledDense: pooling && tiled)
  }

  /// The device's `storageTypes`: float16 and float32 everywhere, float64 with cl_khr_fp64.
  public func checkSupport(_ type: ScalarType) throws {
    guard device.storageTypes.contains(type) else {
      throw CLPoolError.unavailable("\(device.name) does not report cl_khr_fp64, so it cannot compute in float64")
    }
  }

  /// The program for storage type `type` and the kernel family it runs, built (or loaded from the
  /// cache) on first use. The caller holds the lock.
  func program(_ type: ScalarType) throws -> ProgramEntry {
    if let entry = programs[type] { return entry }
    try checkSupport(type)
    let entry = try Self.entry(
      try Self.build(type, options: buildOptions, cache, device, context), kernelVariant, device, workGroupSize)
    programs[type] = entry
    return entry
  }

  // MARK: Calls and launches

  /// One call of the backend: `body` runs under the lock with a fresh command chain (starting
  /// after `prerequisites`), enqueues, and reads its results back (blocking) before it returns,
  /// so the reusable buffers are free again when the lock is. The chain's kernel events go to
  /// `KernelTimer`.
  func hostCall<Result>(after prerequisites: [CLEvent] = [], _ body: (inout CommandChain) throws -> Result) throws
    -> Result
  {
    try lock.withLock {
      var chain = CommandChain(queue: queue, after: prerequisites)
      let result = try body(&chain)
      KernelTimer.record(chain)
      return result
    }
  }

  /// A call on device tensors: like `hostCall`, but the chain starts after `prerequisites` and
  /// the call returns without waiting; `body`'s buffers must not be reusable ones.
  func deviceCall<Result>(after prerequisites: [CLEvent], _ body: (inout CommandChain) throws -> Result) throws
    -> (Result, CommandChain)
  {
    try lock.withLock {
      var chain = CommandChain(queue: queue, after: prerequisites)
      let result = try body(&chain)
      KernelTimer.record(chain)
      return (result, chain)
    }
  }

  /// The one launch path: kernel `name` of `program` with `arguments`, over `global` work-items in
  /// groups of `local` (nil: the driver's choice), after the chain's previous command.
  func enqueue(
    _ name: String, of program: CLProgram, _ arguments: [KernelArgument], global: [Int], local: [Int]? = nil,
    on chain: inout CommandChain
  ) throws {
    let kernel = try CLKernel(program: program, name: name)
    try kernel.setArguments(arguments)
    try chain.launch(kernel, global: global, local: local)
  }

  // MARK: Buffers

  /// What a reusable device buffer is for; each role keeps one buffer between calls.
  enum BufferRole: Hashable {
    case output, outputIndices, partial, partialIndices, transposedWeight, pooledRows
  }

  /// Read-only device views of host arrays that stay alive for `body` (on a CPU device the kernels
  /// read the host memory in place, elsewhere the driver copies it); an empty array gets a
  /// placeholder buffer, since OpenCL has no zero-size buffers.
  func withUploads<Result>(_ arrays: [any HostArray], _ body: ([CLBuffer]) throws -> Result) throws -> Result {
    func next(_ index: Int, _ uploaded: [CLBuffer]) throws -> Result {
      guard index < arrays.count else { return try body(uploaded) }
      return try arrays[index].withBytes { try next(index + 1, uploaded + [try upload($0)]) }
    }
    return try next(0, [])
  }

  func upload(_ bytes: UnsafeRawBufferPointer) throws -> CLBuffer {
    guard let base = bytes.baseAddress, bytes.count > 0 else {
      return try CLBuffer(context: context, bytes: 4, flags: cl_mem_flags(CL_MEM_READ_ONLY))
    }
    return try CLBuffer(
      context: context, bytes: bytes.count, flags: cl_mem_flags(CL_MEM_READ_ONLY),
      host: device.type == .cpu ? .use(base) : .copy(base))
  }

  func freshBuffer(bytes: Int) throws -> CLBuffer {
    try CLBuffer(context: context, bytes: bytes, flags: cl_mem_flags(CL_MEM_READ_WRITE))
  }

  /// A buffer of at least `bytes` for `role`, kept between calls and grown when too small, or a
  /// fresh one when `fresh` (device-tensor calls, whose commands may still run after the lock is
  /// released). The caller holds the lock.
  func scratch(_ role: BufferRole, bytes: Int, fresh: Bool = false) throws -> CLBuffer {
    if fresh { return try freshBuffer(bytes: bytes) }
    if let buffer = reusable[role], buffer.bytes >= bytes { return buffer }
    let buffer = try freshBuffer(bytes: bytes)
    reusable[role] = buffer
    return buffer
  }

  /// An output buffer of `count` elements of `type` (fresh when it escapes the call as a device
  /// tensor), poisoned first when the options ask.
  func outputBuffer(_ type: ScalarType, count: Int, fresh: Bool = false, on chain: inout CommandChain) throws -> CLBuffer {
    let bytes = count * type.byteWidth
    let buffer = try scratch(.output, bytes: bytes, fresh: fresh)
    // Only what this call writes: a reused buffer may be any size, left by a call of another type.
    func poison<S: StorageScalar>(_: S.Type) throws { try chain.fill(buffer, with: S.poison, bytes: bytes) }
    if options.poisonOutputs { try poison(type.staticType) }
    return buffer
  }

  func indexBuffer(count: Int, fresh: Bool = false, on chain: inout CommandChain) throws -> CLBuffer {
    let buffer = try scratch(.outputIndices, bytes: count * 8, fresh: fresh)
    if options.poisonOutputs { try chain.fill(buffer, with: BackendOptions.poisonIndex, bytes: count * 8) }
    return buffer
  }

  /// Refuses a buffer larger than one device allocation may be, naming the limit.
  func checkAllocation(_ bytes: Int, what: String) throws {
    guard UInt64(bytes) <= allocationLimit else {
      let limit =
        allocationLimit < device.maxAllocationBytes
        ? "the allocation cap (CLPOOL_MAX_ALLOC_BYTES = \(allocationLimit) bytes)"
        : "one allocation on \(device.name) may hold (CL_DEVICE_MAX_MEM_ALLOC_SIZE = \(device.maxAllocationBytes) bytes)"
      throw CLPoolError.sizeLimit("\(what) needs \(bytes) bytes, more than \(limit)")
    }
  }

  static func roundUp(_ value: Int, _ multiple: Int) -> Int {
    (value + multiple - 1) / multiple * multiple
  }
}

/// A host array whose bytes a call can hand to the device.
protocol HostArray {
  func withBytes<Result>(_ body: (UnsafeRawBufferPointer) throws -> Result) rethrows -> Result
}

extension Array: HostArray {
  func withBytes<Result>(_ body: (UnsafeRawBufferPointer) throws -> Result) rethrows -> Result {
    try withUnsafeBytes(body)
  }
}
