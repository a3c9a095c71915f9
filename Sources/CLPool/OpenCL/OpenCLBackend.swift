import COpenCL
import Foundation

/// A backend computing on one OpenCL device: its own context and in-order queue, programs from
/// the `ProgramCache`, kernels chosen per device type and shape.
///
/// Thread safety: calls are serialised on an internal lock (they share the queue and the
/// programs; kernels, whose arguments are state, are created per call), so one backend may be
/// shared by many threads.
public final class OpenCLBackend: Backend, @unchecked Sendable {
  /// Which family of kernels to use: barrier-free loops or work-group cooperation.
  public enum KernelVariant: String, CaseIterable, Sendable {
    /// Work-group kernels on GPUs and accelerators, per-work-item loops on CPU devices.
    case automatic = "auto"
    /// Per-work-item loops: channels-first pooling one work-item per plane chunk, dense in
    /// register tiles. No barriers (what CPU drivers want).
    case workItem = "item"
    /// Work-group kernels: channels-first pooling one work-group per plane chunk with a
    /// local-memory tree, dense with tiles staged in local memory (what GPUs want).
    case workGroup = "group"
  }

  public let kind = BackendKind.opencl
  public let device: OpenCLDevice
  public var deviceName: String { device.description }
  /// The kernel family actually used for float32 (`.automatic` resolved); other storage types
  /// fall back to `.workItem` on a device that cannot run their work-group kernels.
  public let kernelVariant: KernelVariant
  /// The largest buffer this backend allocates: the device's CL_DEVICE_MAX_MEM_ALLOC_SIZE, or a
  /// lower cap. Pooling inputs above it run in parts; other requests above it are refused.
  public let allocationLimit: UInt64

  private let options: BackendOptions
  private let context: CLContext
  private let queue: CLQueue
  private let workGroupSize: Int
  private let cache: ProgramCache
  private let buildOptions: String
  private let lock = NSLock()  // serialises calls; guards `lastEvents`, `reusable`, `programs`
  /// The program per storage type (Kernels/storage.h): float32 built by `init`, the others on
  /// first use; and the kernel family each uses.
  private var programs: [ScalarType: CLProgram] = [:]
  private var variants: [ScalarType: KernelVariant] = [:]
  private var lastEvents: [CLEvent] = []
  private var reusable: [BufferRole: CLBuffer] = [:]

  /// Rows of y per work-item, compiled into dense.cl; the launch geometry depends on it.
  private static let denseRows = 6
  /// Work-items along the rows that share a column strip of W (measured on PoCL: 16 beat 1, 64).
  private static let denseRowGroup = 16
  /// Work-group size of the per-work-item pooling kernels (measured on PoCL: 1024 beat 64, 256).
  private static let rowGroup = 1024

  /// - Parameters:
  ///   - buildOptions: extra options for the OpenCL compiler, appended to clpool's own (e.g.
  ///     `-DBLOCK=512`; `BackendSelection` passes `CLPOOL_BUILD_OPTIONS`).
  ///   - allocationCap: a limit below the device's own on any one buffer (`BackendSelection`
  ///     passes `CLPOOL_MAX_ALLOC_BYTES`), e.g. to leave memory to others or to test splitting.
  /// - Throws: `CLPoolError.openCL` if the context or queue cannot be created or a program fails
  ///   to build (the error carries the build log).
  public init(
    device: OpenCLDevice, options: BackendOptions = BackendOptions(),
    kernelVariant: KernelVariant = .automatic,
    buildOptions: String = "",
    allocationCap: UInt64? = nil,
    cache: ProgramCache = .shared
  ) throws {
    self.device = device
    self.options = options
    allocationLimit = min(device.maxAllocationBytes, allocationCap ?? .max)
    context = try CLContext(device: device.handles.device)
    queue = try CLQueue(context: context, device: device.handles.device)
    var groupSize = 1
    while groupSize * 2 <= min(256, device.maxWorkGroupSize) { groupSize *= 2 }
    self.cache = cache
    self.buildOptions = "-DWG_SIZE=\(groupSize) -DROWS=\(Self.denseRows) -cl-std=CL1.2 \(buildOptions)"
    let program = try cache.program(
      source: KernelSource.program, options: self.buildOptions, device: device, context: context)
    programs = [.float32: program]
    workGroupSize = groupSize
    let wanted = kernelVariant == .automatic ? (device.isAccelerator ? .workGroup : .workItem) : kernelVariant
    self.kernelVariant = try Self.usableVariant(wanted, program, device, groupSize)
    variants = [.float32: self.kernelVariant]
  }

  /// `wanted`, unless it is `.workGroup` and the device cannot run this program's work-group
  /// kernels at their sizes (a GPU whose registers do not hold as many work-items, which depends
  /// on the storage type): then the per-work-item loops.
  private static func usableVariant(
    _ wanted: KernelVariant, _ program: CLProgram, _ device: OpenCLDevice, _ groupSize: Int
  ) throws -> KernelVariant {
    guard wanted == .workGroup else { return wanted }
    for (name, size) in [("gap_rows_wg", groupSize), ("gmp_rows_wg", groupSize), ("dense_in_out_tiled", 256)] {
      var limit = 0
      let kernel = try CLKernel(program: program, name: name)
      try withExtendedLifetime(kernel) {
        try check(
          clGetKernelWorkGroupInfo(
            kernel.raw, device.handles.device, cl_kernel_work_group_info(CL_KERNEL_WORK_GROUP_SIZE),
            MemoryLayout<Int>.size, &limit, nil),
          "clGetKernelWorkGroupInfo(\(name))")
      }
      if limit < size { return .workItem }
    }
    return .workGroup
  }

  /// The device's `storageTypes`: float16 and float32 everywhere, float64 with cl_khr_fp64.
  public func checkSupport(_ type: ScalarType) throws {
    guard device.storageTypes.contains(type) else {
      throw CLPoolError.unavailable("\(device.name) does not report cl_khr_fp64, so it cannot compute in float64")
    }
  }

  /// The kernels for storage type `type`, built (or loaded from the cache) on first use. The
  /// caller holds the lock.
  private func program(_ type: ScalarType) throws -> CLProgram {
    if let program = programs[type] { return program }
    try checkSupport(type)
    let define = type == .float16 ? "-DSTORAGE_HALF" : "-DSTORAGE_DOUBLE"
    let program = try cache.program(
      source: KernelSource.program, options: "\(define) \(buildOptions)", device: device, context: context)
    variants[type] = try Self.usableVariant(kernelVariant, program, device, workGroupSize)
    programs[type] = program
    return program
  }

  /// Bytes of the kernels' arithmetic type (acc_t) for storage type `type`: partial sums keep it.
  private static func accumulatorWidth(_ type: ScalarType) -> Int { type == .float64 ? 8 : 4 }

  /// Device time of the kernels of the most recent call (from profiling events), excluding
  /// transfers; nil before the first call. For benchmarks: with several threads calling, "most
  /// recent" is whichever call finished last.
  public var lastKernelSeconds: Double? {
    lock.withLock {
      lastEvents.isEmpty ? nil : lastEvents.reduce(0.0) { $0 + ((try? $1.elapsedSeconds()) ?? 0) }
    }
  }

  // MARK: Pooling

  /// How a pooling call is launched: which kernel, and how planes are chunked.
  struct PoolPlan {
    enum Kernel { case rows, rowsWorkGroup, channelsLast }
    let kernel: Kernel
    let chunking: Chunking
  }

  /// - Parameters:
  ///   - batch: the batch the plan is for: the whole call's, also when the call runs in parts (an
  ///     allocation limit), so every plane is chunked, and so summed, the same way.
  ///   - variant: the storage type's kernel family.
  func plan(_ geometry: PoolGeometry, batch: Int, variant: KernelVariant) -> PoolPlan {
    let units = max(1, device.computeUnits)
    let spatial = geometry.spatialSize
    let planes = batch * geometry.channels
    switch (geometry.layout, variant) {
    case (.channelsLast, _):
      let items = batch * ((geometry.channels + 7) / 8)
      let target = units * (device.isAccelerator ? 2048 : 64)
      return PoolPlan(
        kernel: .channelsLast,
        chunking: Chunking(
          length: spatial, maximumChunks: (target + items - 1) / max(items, 1),
          minimumChunkLength: device.isAccelerator ? 256 : 1024, granule: 1))
    case (.channelsFirst, .workGroup):
      let target = units * 8
      return PoolPlan(
        kernel: .rowsWorkGroup,
        chunking: Chunking(
          length: spatial, maximumChunks: (target + planes - 1) / max(planes, 1),
          minimumChunkLength: workGroupSize * 16, granule: workGroupSize))
    case (.channelsFirst, _):
      let target = units * 16
      return PoolPlan(
        kernel: .rows,
        chunking: Chunking(
          length: spatial, maximumChunks: (target + planes - 1) / max(planes, 1),
          minimumChunkLength: 8192, granule: 256))
    }
  }

  public func globalAveragePool<S: StorageScalar>(_ input: TypedTensor<S>, layout: Layout, keepDims: Bool) throws
    -> TypedTensor<S>
  {
    let geometry = try PoolGeometry(shape: input.shape, layout: layout)
    let result = try hostPool(input, geometry, average: true, returnIndices: false)
    return try TypedTensor(shape: geometry.outputShape(keepDims: keepDims), scalars: result.values)
  }

  public func globalMaxPool<S: StorageScalar>(
    _ input: TypedTensor<S>, layout: Layout, keepDims: Bool, returnIndices: Bool
  ) throws -> MaxPoolResult<S> {
    let geometry = try PoolGeometry(shape: input.shape, layout: layout)
    let result = try hostPool(input, geometry, average: false, returnIndices: returnIndices)
    return MaxPoolResult(
      values: try TypedTensor(shape: geometry.outputShape(keepDims: keepDims), scalars: result.values),
      indices: returnIndices ? result.indices : nil)
  }

  /// Host tensors in and out: the input is seen by the device for this call only. An input larger
  /// than one allocation may be runs in parts of whole samples, planned as one call, so the
  /// result is bitwise the same.
  private func hostPool<S: StorageScalar>(
    _ input: TypedTensor<S>, _ geometry: PoolGeometry, average: Bool, returnIndices: Bool
  ) throws -> (values: [S], indices: [Int64]) {
    let planes = geometry.planes
    var values = [S](repeating: 0, count: planes)
    var indices = [Int64](repeating: 0, count: returnIndices ? planes : 0)
    guard planes > 0 else { return (values, indices) }
    let width = S.scalarType.byteWidth
    let sampleElements = input.count / geometry.batch
    try checkAllocation(sampleElements * width, what: "one sample of pooling input \(Tensor.describe(input.shape))")
    let samplesPerPart = max(1, min(geometry.batch, Int(allocationLimit / UInt64(sampleElements * width))))
    try lock.withLock {
      try input.scalars.withUnsafeBytes { inputBytes in
        var events: [CLEvent] = []
        for first in stride(from: 0, to: geometry.batch, by: samplesPerPart) {
          let count = min(samplesPerPart, geometry.batch - first)
          var shape = geometry.shape
          shape[0] = count
          let part = try PoolGeometry(shape: shape, layout: geometry.layout)
          let bytes = UnsafeRawBufferPointer(
            rebasing: inputBytes[(first * sampleElements * width)..<((first + count) * sampleElements * width)])
          let output = try poolOnDevice(
            try upload(bytes), S.self, part, planningBatch: geometry.batch, average: average,
            returnIndices: returnIndices, &events)
          let planeRange = (first * geometry.channels)..<((first + count) * geometry.channels)
          try values[planeRange].withUnsafeMutableBytes { try queue.read(output.values, into: $0) }
          if let outputIndices = output.indices {
            try indices[planeRange].withUnsafeMutableBytes { try queue.read(outputIndices, into: $0) }
          }
        }
        lastEvents = events
      }
    }
    return (values, indices)
  }

  /// Enqueues the pooling of device buffer `x` (planes > 0); the caller holds the lock.
  private func poolOnDevice<S: StorageScalar>(
    _ x: CLBuffer, _ type: S.Type, _ geometry: PoolGeometry, planningBatch: Int? = nil, average: Bool,
    returnIndices: Bool, escapes: Bool = false, _ events: inout [CLEvent]
  ) throws -> (values: CLBuffer, indices: CLBuffer?) {
    let planes = geometry.planes
    let program = try program(S.scalarType)
    let plan = plan(geometry, batch: planningBatch ?? geometry.batch, variant: variants[S.scalarType] ?? .workItem)
    let chunks = plan.chunking.chunks
    let output = try outputBuffer(S.self, count: planes, escapes: escapes)
    let outputIndices = returnIndices ? try indexBuffer(count: planes) : nil
    // With one chunk, pass 1 writes the final values; otherwise partials, folded by pass 2:
    // sums in the arithmetic type, maxima (exact) in the storage type.
    let partialWidth = average ? Self.accumulatorWidth(S.scalarType) : S.scalarType.byteWidth
    let partial = chunks == 1 ? output : try reusableBuffer(.partial, bytes: planes * chunks * partialWidth)
    let partialIndices = chunks == 1 ? outputIndices : (average ? nil : try reusableBuffer(.partialIndices, bytes: planes * chunks * 8))
    let kernelName: String
    // gap_*: (x, out, partial, ...) with out used when chunks == 1; gmp_*: (x, out, indices, ...).
    var arguments: [KernelArgument] =
      average ? [.buffer(x), .buffer(output), .buffer(partial)] : [.buffer(x), .buffer(partial), .buffer(partialIndices)]
    let global: [Int]
    var local: [Int]? = nil
    switch plan.kernel {
    case .rows, .rowsWorkGroup:
      arguments += [
        .uint64(UInt64(planes)), .uint64(UInt64(geometry.spatialSize)),
        .uint64(UInt64(plan.chunking.chunkLength)), .uint32(UInt32(chunks)),
      ]
      if plan.kernel == .rows {
        kernelName = average ? "gap_rows" : "gmp_rows"
        // Large work-groups measured 2-3x faster than the driver's choice on PoCL.
        let group = min(Self.rowGroup, device.maxWorkGroupSize)
        global = [Self.roundUp(planes * chunks, group)]
        local = [group]
      } else {
        kernelName = average ? "gap_rows_wg" : "gmp_rows_wg"
        global = [planes * chunks * workGroupSize]
        local = [workGroupSize]
      }
    case .channelsLast:
      kernelName = average ? "gap_channels_last" : "gmp_channels_last"
      arguments += [
        .uint64(UInt64(geometry.batch)), .uint64(UInt64(geometry.channels)),
        .uint64(UInt64(geometry.spatialSize)), .uint64(UInt64(plan.chunking.chunkLength)),
        .uint32(UInt32(chunks)),
      ]
      global = [Self.roundUp((geometry.channels + 7) / 8, 8), geometry.batch * chunks]
    }
    let kernel = try CLKernel(program: program, name: kernelName)
    try kernel.setArguments(arguments)
    events.append(try queue.launch(kernel, global: global, local: local))
    if chunks > 1 {
      let combine = try CLKernel(program: program, name: average ? "gap_combine" : "gmp_combine")
      if average {
        try combine.setArguments([
          .buffer(partial), .buffer(output), .uint64(UInt64(planes)), .uint32(UInt32(chunks)),
          .uint64(UInt64(geometry.spatialSize)),
        ])
      } else {
        try combine.setArguments([
          .buffer(partial), .buffer(partialIndices), .buffer(output), .buffer(outputIndices),
          .uint64(UInt64(planes)), .uint32(UInt32(chunks)),
        ])
      }
      events.append(try queue.launch(combine, global: [Self.roundUp(planes, 64)]))
    }
    return (output, outputIndices)
  }

  // MARK: Ragged batches

  public func globalAveragePool<S: StorageScalar>(_ batch: RaggedBatch<S>) throws -> TypedTensor<S> {
    try TypedTensor(shape: batch.outputShape, scalars: try raggedPool(batch, average: true, returnIndices: false).values)
  }

  public func globalMaxPool<S: StorageScalar>(_ batch: RaggedBatch<S>, returnIndices: Bool) throws -> MaxPoolResult<S> {
    let result = try raggedPool(batch, average: false, returnIndices: returnIndices)
    return MaxPoolResult(
      values: try TypedTensor(shape: batch.outputShape, scalars: result.values), indices: returnIndices ? result.indices : nil)
  }

  /// Every sample in one launch (Kernels/pool.cl gap_ragged / gmp_ragged), the per-sample offsets
  /// and spatial sizes in two small device arrays.
  private func raggedPool<S: StorageScalar>(_ batch: RaggedBatch<S>, average: Bool, returnIndices: Bool) throws
    -> (values: [S], indices: [Int64])
  {
    let (n, c) = (batch.count, batch.channels)
    var values = [S](repeating: 0, count: n * c)
    var indices = [Int64](repeating: 0, count: returnIndices ? n * c : 0)
    guard n * c > 0 else { return (values, indices) }
    try checkAllocation(
      batch.scalars.count * S.scalarType.byteWidth, what: "ragged batch of \(n) samples x \(c) channels")
    try checkAllocation(n * c * 8, what: "ragged pooling output of \(n) samples x \(c) channels")
    let offsets = batch.offsets.map { UInt64($0) }
    let spatialSizes = batch.spatialSizes.map { UInt64($0) }
    try lock.withLock {
      try batch.scalars.withUnsafeBytes { x in
        try offsets.withUnsafeBytes { offsetBytes in
          try spatialSizes.withUnsafeBytes { sizeBytes in
            let output = try outputBuffer(S.self, count: n * c)
            let outputIndices = returnIndices ? try indexBuffer(count: n * c) : nil
            let channelsLast = batch.layout == .channelsLast
            var arguments: [KernelArgument] = [
              .buffer(try upload(x)), .buffer(try upload(offsetBytes)), .buffer(try upload(sizeBytes)), .buffer(output),
            ]
            if !average { arguments.append(.buffer(outputIndices)) }
            arguments += [.uint64(UInt64(n)), .uint64(UInt64(c)), .int32(channelsLast ? 1 : 0)]
            let kernel = try CLKernel(program: try program(S.scalarType), name: average ? "gap_ragged" : "gmp_ragged")
            try kernel.setArguments(arguments)
            let events = [try queue.launch(kernel, global: [channelsLast ? (c + 7) / 8 : c, n])]
            try values.withUnsafeMutableBytes { try queue.read(output, into: $0) }
            if let outputIndices { try indices.withUnsafeMutableBytes { try queue.read(outputIndices, into: $0) } }
            lastEvents = events
          }
        }
      }
    }
    return (values, indices)
  }

  // MARK: Pooling backward

  public func globalAveragePoolBackward(_ gradient: Tensor, inputShape: [Int], layout: Layout) throws -> Tensor {
    try poolBackward(gradient, indices: nil, try PoolGeometry(gradient: gradient.shape, inputShape: inputShape, layout: layout))
  }

  public func globalMaxPoolBackward(
    _ gradient: Tensor, indices: [Int64], inputShape: [Int], layout: Layout
  ) throws -> Tensor {
    let geometry = try PoolGeometry(gradient: gradient.shape, inputShape: inputShape, layout: layout, indices: indices)
    return try poolBackward(gradient, indices: indices, geometry)
  }

  /// One work-item per input element (Kernels/pool.cl gap_backward / gmp_backward).
  private func poolBackward(_ gradient: Tensor, indices: [Int64]?, _ geometry: PoolGeometry) throws -> Tensor {
    let count = try Tensor.elementCount(of: geometry.shape)
    var dx = [Float](repeating: 0, count: count)
    guard count > 0 else { return try Tensor(shape: geometry.shape, scalars: dx) }
    try checkAllocation(count * 4, what: "pooling gradient \(Tensor.describe(geometry.shape))")
    try lock.withLock {
      try gradient.scalars.withUnsafeBytes { dzBytes in
        try (indices ?? []).withUnsafeBytes { indexBytes in
          let output = try outputBuffer(Float.self, count: count)
          let kernel = try CLKernel(program: try program(.float32), name: indices == nil ? "gap_backward" : "gmp_backward")
          var arguments: [KernelArgument] = [.buffer(try upload(dzBytes))]
          if indices != nil { arguments.append(.buffer(try upload(indexBytes))) }
          arguments += [
            .buffer(output), .uint64(UInt64(count)), .uint64(UInt64(geometry.channels)),
            .uint64(UInt64(geometry.spatialSize)), .int32(geometry.layout == .channelsLast ? 1 : 0),
          ]
          try kernel.setArguments(arguments)
          let events = [try queue.launch(kernel, global: [Self.roundUp(count, 256)], local: [min(256, device.maxWorkGroupSize)])]
          try dx.withUnsafeMutableBytes { try queue.read(output, into: $0) }
          lastEvents = events
        }
      }
    }
    return try Tensor(shape: geometry.shape, scalars: dx)
  }

  // MARK: Dense and the fused head

  public func dense<S: StorageScalar>(
    _ input: TypedTensor<S>, weight: TypedTensor<S>, bias: TypedTensor<S>?, weightLayout: WeightLayout,
    activation: Activation
  ) throws -> TypedTensor<S> {
    let geometry = try DenseGeometry(
      input: input.shape, weight: weight.shape, bias: bias?.shape, weightLayout: weightLayout)
    guard geometry.rows > 0, geometry.outputs > 0 else { return try TypedTensor(shape: geometry.outputShape, repeating: 0) }
    try checkDense(geometry, S.self, input: input.count, weight: weight.count)
    var output = [S](repeating: 0, count: geometry.rows * geometry.outputs)
    try lock.withLock {
      try withHostBuffers(input, weight, bias) { x, w, b in
        var events: [CLEvent] = []
        let y = try denseOnDevice(x, w, b, S.self, geometry, activation, &events)
        try output.withUnsafeMutableBytes { try queue.read(y, into: $0) }
        lastEvents = events
      }
    }
    return try TypedTensor(shape: geometry.outputShape, scalars: output)
  }

  /// GAP and dense in one launch (Kernels/head.cl): the pooled [N, C] rows stay on the device.
  public func head<S: StorageScalar>(
    _ features: TypedTensor<S>, layout: Layout, weight: TypedTensor<S>, bias: TypedTensor<S>?,
    weightLayout: WeightLayout, activation: Activation
  ) throws -> TypedTensor<S> {
    let (pool, geometry) = try headGeometry(features.shape, layout, weight.shape, bias?.shape, weightLayout)
    guard geometry.rows > 0, geometry.outputs > 0 else { return try TypedTensor(shape: geometry.outputShape, repeating: 0) }
    try checkAllocation(features.count * S.scalarType.byteWidth, what: "head input \(Tensor.describe(features.shape))")
    try checkDense(geometry, S.self, input: 0, weight: weight.count)
    var output = [S](repeating: 0, count: geometry.rows * geometry.outputs)
    try lock.withLock {
      try withHostBuffers(features, weight, bias) { x, w, b in
        var events: [CLEvent] = []
        let y = try headOnDevice(x, w, b, S.self, pool, geometry, activation, &events)
        try output.withUnsafeMutableBytes { try queue.read(y, into: $0) }
        lastEvents = events
      }
    }
    return try TypedTensor(shape: geometry.outputShape, scalars: output)
  }

  /// Enqueues y = act(x · W + b) on device buffers (N, M > 0); the caller holds the lock.
  private func denseOnDevice<S: StorageScalar>(
    _ x: CLBuffer, _ w: CLBuffer, _ b: CLBuffer?, _ type: S.Type, _ geometry: DenseGeometry,
    _ activation: Activation, escapes: Bool = false, _ events: inout [CLEvent]
  ) throws -> CLBuffer {
    let (n, k, m) = (geometry.rows, geometry.inputs, geometry.outputs)
    let program = try program(S.scalarType)
    let y = try outputBuffer(S.self, count: n * m, escapes: escapes)
    let weightInOut = try inOutWeight(w, program, S.scalarType, geometry, &events)
    // Batches smaller than a tile run one row per work-item (GEMV) instead of padding the tile.
    let singleRow = n < Self.denseRows
    // Work-group variant: 64 x 64 output tiles through local memory (the GPU way).
    let tiled = !singleRow && variants[S.scalarType] == .workGroup && device.maxWorkGroupSize >= 256
    let name = singleRow ? "dense_in_out_single_row" : tiled ? "dense_in_out_tiled" : "dense_in_out"
    let kernel = try CLKernel(program: program, name: name)
    try kernel.setArguments([
      .buffer(x), .buffer(weightInOut), .buffer(b), .buffer(y), .uint32(UInt32(n)), .uint32(UInt32(k)),
      .uint32(UInt32(m)), .int32(b == nil ? 0 : 1), .int32(Self.elementwiseCode(activation)),
    ])
    if tiled {
      events.append(
        try queue.launch(kernel, global: [(m + 63) / 64 * 16, (n + 63) / 64 * 16], local: [16, 16]))
    } else {
      let columnItems = (m + 15) / 16
      let rowItems = singleRow ? n : (n + Self.denseRows - 1) / Self.denseRows
      // Work-groups along the rows share W's column strip (16 measured best on PoCL); a GEMV
      // runs one work-item per group, which PoCL spreads over its cores best.
      let local = singleRow ? [1, 1] : [1, min(Self.denseRowGroup, rowItems)]
      events.append(
        try queue.launch(
          kernel, global: [Self.roundUp(columnItems, local[0]), Self.roundUp(rowItems, local[1])], local: local))
    }
    try softmaxIfAsked(y, program, rows: n, columns: m, activation, &events)
    return y
  }

  /// Enqueues the fused head on device buffers (N, M > 0); the caller holds the lock.
  private func headOnDevice<S: StorageScalar>(
    _ x: CLBuffer, _ w: CLBuffer, _ b: CLBuffer?, _ type: S.Type, _ pool: PoolGeometry, _ geometry: DenseGeometry,
    _ activation: Activation, escapes: Bool = false, _ events: inout [CLEvent]
  ) throws -> CLBuffer {
    let program = try program(S.scalarType)
    let (n, c, m) = (geometry.rows, geometry.inputs, geometry.outputs)
    // Batches smaller than a tile run one row per work-group, as dense does.
    let rowsPerGroup = n < Self.denseRows ? 1 : Self.denseRows
    let rowGroups = (n + rowsPerGroup - 1) / rowsPerGroup
    // Enough column groups that every compute unit has work even for a batch of one.
    let groupWidth = 16
    let columnGroups = max(
      1, min((m + 16 * groupWidth - 1) / (16 * groupWidth), (device.computeUnits * 4 + rowGroups - 1) / rowGroups))
    let y = try outputBuffer(S.self, count: n * m, escapes: escapes)
    let weightInOut = try inOutWeight(w, program, S.scalarType, geometry, &events)
    let pooled = try reusableBuffer(.pooledRows, bytes: rowGroups * rowsPerGroup * c * S.scalarType.byteWidth)
    let kernel = try CLKernel(program: program, name: rowsPerGroup == 1 ? "head_avg_single_row" : "head_avg")
    try kernel.setArguments([
      .buffer(x), .buffer(weightInOut), .buffer(b), .buffer(y), .buffer(pooled), .uint32(UInt32(n)),
      .uint32(UInt32(c)), .uint64(UInt64(pool.spatialSize)), .uint32(UInt32(m)), .int32(b == nil ? 0 : 1),
      .int32(Self.elementwiseCode(activation)), .int32(pool.layout == .channelsLast ? 1 : 0),
    ])
    events.append(try queue.launch(kernel, global: [columnGroups * groupWidth, rowGroups], local: [groupWidth, 1]))
    try softmaxIfAsked(y, program, rows: n, columns: m, activation, &events)
    return y
  }

  private func checkDense<S: StorageScalar>(_ geometry: DenseGeometry, _: S.Type, input: Int, weight: Int) throws {
    let width = S.scalarType.byteWidth
    let (n, k, m) = (geometry.rows, geometry.inputs, geometry.outputs)
    guard n <= UInt32.max, k <= UInt32.max, m <= UInt32.max else {
      throw CLPoolError.sizeLimit("dense \(n)x\(k)x\(m) exceeds the kernels' limit of \(UInt32.max) per dimension")
    }
    try checkAllocation(input * width, what: "dense input \(n)x\(k)")
    try checkAllocation(weight * width, what: "dense weight \(k)x\(m)")
    try checkAllocation(n * m * width, what: "dense output \(n)x\(m)")
  }

  /// Device views of the host input, weight and bias, alive for `body`.
  private func withHostBuffers<S: StorageScalar>(
    _ input: TypedTensor<S>, _ weight: TypedTensor<S>, _ bias: TypedTensor<S>?,
    _ body: (CLBuffer, CLBuffer, CLBuffer?) throws -> Void
  ) throws {
    try input.scalars.withUnsafeBytes { inputBytes in
      try weight.scalars.withUnsafeBytes { weightBytes in
        try (bias?.scalars ?? []).withUnsafeBytes { biasBytes in
          try body(try upload(inputBytes), try upload(weightBytes), bias == nil ? nil : try upload(biasBytes))
        }
      }
    }
  }

  /// The weight as [K, M]: an out-in [M, K] weight is transposed once on the device, so one
  /// kernel serves both layouts.
  private func inOutWeight(
    _ w: CLBuffer, _ program: CLProgram, _ type: ScalarType, _ geometry: DenseGeometry, _ events: inout [CLEvent]
  ) throws -> CLBuffer {
    guard geometry.weightLayout == .outIn else { return w }
    let (k, m) = (geometry.inputs, geometry.outputs)
    let transposed = try reusableBuffer(.transposedWeight, bytes: k * m * type.byteWidth)
    let transpose = try CLKernel(program: program, name: "transpose")
    try transpose.setArguments([.buffer(w), .buffer(transposed), .uint32(UInt32(m)), .uint32(UInt32(k))])
    events.append(try queue.launch(transpose, global: [Self.roundUp(k, 8), Self.roundUp(m, 8)], local: [8, 8]))
    return transposed
  }

  private func softmaxIfAsked(
    _ y: CLBuffer, _ program: CLProgram, rows: Int, columns: Int, _ activation: Activation, _ events: inout [CLEvent]
  ) throws {
    guard activation == .softmax else { return }
    let softmax = try CLKernel(program: program, name: "softmax_rows")
    try softmax.setArguments([.buffer(y), .uint32(UInt32(rows)), .uint32(UInt32(columns))])
    events.append(try queue.launch(softmax, global: [Self.roundUp(rows, 8)]))
  }

  /// dense.cl's ACTIVATION_* codes for the element-wise activations fused into the product.
  private static func elementwiseCode(_ activation: Activation) -> Int32 {
    switch activation {
    case .relu: return 1
    case .sigmoid: return 2
    case .none, .softmax: return 0
    }
  }

  // MARK: Device-resident tensors

  /// Copies a host tensor into this backend's device memory, where later calls can use it
  /// without moving it again.
  public func upload(_ tensor: Tensor) throws -> DeviceTensor {
    try checkAllocation(tensor.count * 4, what: "tensor \(Tensor.describe(tensor.shape))")
    let buffer = try lock.withLock {
      try tensor.scalars.withUnsafeBytes { bytes in
        try CLBuffer(
          context: context, bytes: bytes.count, flags: cl_mem_flags(CL_MEM_READ_WRITE),
          host: bytes.baseAddress.map { .copy($0) })
      }
    }
    return DeviceTensor(shape: tensor.shape, buffer: buffer, owner: self)
  }

  /// Copies a device tensor back to the host (waits for the operations that produce it).
  public func download(_ tensor: DeviceTensor) throws -> Tensor {
    try owns(tensor)
    var values = [Float](repeating: 0, count: try Tensor.elementCount(of: tensor.shape))
    try lock.withLock { try values.withUnsafeMutableBytes { try queue.read(tensor.buffer, into: $0) } }
    return try Tensor(shape: tensor.shape, scalars: values)
  }

  /// Global average pooling of a device tensor; the result stays on the device.
  public func globalAveragePool(_ input: DeviceTensor, layout: Layout, keepDims: Bool) throws -> DeviceTensor {
    try devicePool(input, layout: layout, keepDims: keepDims, average: true)
  }

  /// Global max pooling (values) of a device tensor; the result stays on the device.
  public func globalMaxPool(_ input: DeviceTensor, layout: Layout, keepDims: Bool) throws -> DeviceTensor {
    try devicePool(input, layout: layout, keepDims: keepDims, average: false)
  }

  private func devicePool(_ input: DeviceTensor, layout: Layout, keepDims: Bool, average: Bool) throws -> DeviceTensor {
    try owns(input)
    let geometry = try PoolGeometry(shape: input.shape, layout: layout)
    return try deviceResult(geometry.outputShape(keepDims: keepDims), empty: geometry.planes == 0) { events in
      try poolOnDevice(input.buffer, Float.self, geometry, average: average, returnIndices: false, escapes: true, &events).values
    }
  }

  /// A dense layer on device tensors; the result stays on the device.
  public func dense(
    _ input: DeviceTensor, weight: DeviceTensor, bias: DeviceTensor?, weightLayout: WeightLayout,
    activation: Activation
  ) throws -> DeviceTensor {
    try ([input, weight] + (bias.map { [$0] } ?? [])).forEach(owns)
    let geometry = try DenseGeometry(
      input: input.shape, weight: weight.shape, bias: bias?.shape, weightLayout: weightLayout)
    try checkDense(geometry, Float.self, input: 0, weight: 0)
    return try deviceResult(geometry.outputShape, empty: geometry.rows == 0 || geometry.outputs == 0) { events in
      try denseOnDevice(input.buffer, weight.buffer, bias?.buffer, Float.self, geometry, activation, escapes: true, &events)
    }
  }

  /// The fused head on device tensors; the result stays on the device.
  public func head(
    _ features: DeviceTensor, layout: Layout, weight: DeviceTensor, bias: DeviceTensor?,
    weightLayout: WeightLayout, activation: Activation
  ) throws -> DeviceTensor {
    try ([features, weight] + (bias.map { [$0] } ?? [])).forEach(owns)
    let (pool, geometry) = try headGeometry(features.shape, layout, weight.shape, bias?.shape, weightLayout)
    try checkDense(geometry, Float.self, input: 0, weight: 0)
    return try deviceResult(geometry.outputShape, empty: geometry.rows == 0 || geometry.outputs == 0) { events in
      try headOnDevice(features.buffer, weight.buffer, bias?.buffer, Float.self, pool, geometry, activation, escapes: true, &events)
    }
  }

  /// Runs `enqueue` under the lock and wraps the buffer it returns (an empty result gets a
  /// placeholder buffer, since OpenCL has no zero-size buffers).
  private func deviceResult(
    _ shape: [Int], empty: Bool, _ enqueue: (inout [CLEvent]) throws -> CLBuffer
  ) throws -> DeviceTensor {
    guard !empty else { return DeviceTensor(shape: shape, buffer: try freshBuffer(bytes: 4), owner: self) }
    let buffer = try lock.withLock {
      var events: [CLEvent] = []
      defer { lastEvents = events }
      return try enqueue(&events)
    }
    return DeviceTensor(shape: shape, buffer: buffer, owner: self)
  }

  private func owns(_ tensor: DeviceTensor) throws {
    guard tensor.owner === self else {
      throw CLPoolError.invalidArgument(
        "a \(Tensor.describe(tensor.shape)) device tensor belongs to another OpenCL backend; download it and upload it to this one")
    }
  }

  // MARK: Buffers

  /// A read-only device buffer over host bytes that stay alive for the whole call: on a CPU device
  /// the kernels read the host memory in place (no copy), elsewhere the driver copies it.
  private func upload(_ bytes: UnsafeRawBufferPointer) throws -> CLBuffer {
    guard let base = bytes.baseAddress, bytes.count > 0 else {
      return try CLBuffer(context: context, bytes: 4, flags: cl_mem_flags(CL_MEM_READ_ONLY))
    }
    return try CLBuffer(
      context: context, bytes: bytes.count, flags: cl_mem_flags(CL_MEM_READ_ONLY),
      host: device.type == .cpu ? .use(base) : .copy(base))
  }

  private func freshBuffer(bytes: Int) throws -> CLBuffer {
    try CLBuffer(context: context, bytes: bytes, flags: cl_mem_flags(CL_MEM_READ_WRITE))
  }

  /// What a reusable device buffer is for; each role keeps one buffer between calls.
  private enum BufferRole: Hashable {
    case output, outputIndices, partial, partialIndices, transposedWeight, pooledRows
  }

  /// A buffer of at least `bytes` for `role`, kept between calls and grown when too small. Safe
  /// because the queue is in order: no command of an earlier call still runs when a later
  /// call's commands start. The caller holds the lock.
  private func reusableBuffer(_ role: BufferRole, bytes: Int) throws -> CLBuffer {
    if let buffer = reusable[role], buffer.bytes >= bytes { return buffer }
    let buffer = try freshBuffer(bytes: bytes)
    reusable[role] = buffer
    return buffer
  }

  /// An output buffer, poisoned when the options ask: reused for results that are read back
  /// within the call, fresh for results handed out as device tensors (`escapes`).
  private func outputBuffer<S: StorageScalar>(_: S.Type, count: Int, escapes: Bool = false) throws -> CLBuffer {
    let bytes = count * S.scalarType.byteWidth
    let buffer = escapes ? try freshBuffer(bytes: bytes) : try reusableBuffer(.output, bytes: bytes)
    // Only what this call writes: a reused buffer may be any size, left by a call of another type.
    if options.poisonOutputs { try queue.fill(buffer, with: S.poison, bytes: bytes) }
    return buffer
  }

  private func indexBuffer(count: Int) throws -> CLBuffer {
    let buffer = try reusableBuffer(.outputIndices, bytes: count * 8)
    if options.poisonOutputs { try queue.fill(buffer, with: BackendOptions.poisonIndex, bytes: count * 8) }
    return buffer
  }

  /// Refuses a buffer larger than one device allocation may be, naming the limit.
  private func checkAllocation(_ bytes: Int, what: String) throws {
    guard UInt64(bytes) <= allocationLimit else {
      let limit =
        allocationLimit < device.maxAllocationBytes
        ? "the allocation cap (CLPOOL_MAX_ALLOC_BYTES = \(allocationLimit) bytes)"
        : "one allocation on \(device.name) may hold (CL_DEVICE_MAX_MEM_ALLOC_SIZE = \(device.maxAllocationBytes) bytes)"
      throw CLPoolError.sizeLimit("\(what) needs \(bytes) bytes, more than \(limit)")
    }
  }

  private static func roundUp(_ value: Int, _ multiple: Int) -> Int {
    (value + multiple - 1) / multiple * multiple
  }
}
