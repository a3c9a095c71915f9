/// Pooling on OpenCL (Kernels/pool.cl): forward over whole tensors and ragged batches, and the
/// backward passes.
extension OpenCLBackend {
  /// How a pooling call is launched: which kernel, and how planes are chunked.
  struct PoolPlan: Equatable {
    enum Kernel: Equatable {
      /// gap_rows / gmp_rows: one work-item per (plane, chunk).
      case rows
      /// gap_rows_wg / gmp_rows_wg: `segment` work-items of a work-group per (plane, chunk).
      case rowsWorkGroup(segment: Int)
      /// gap_channels_last / gmp_channels_last: one work-item per (sample, 8 channels, chunk).
      case channelsLast
    }
    let kernel: Kernel
    let chunking: Chunking
  }

  /// Elements each work-item of a work-group segment reduces, at most, before the segment's tree:
  /// a 7×7 plane gets segments of 8 work-items (7 loads each, 3 tree steps, 32 planes per group of
  /// 256) instead of one whole group (49 of 256 work-items busy, 8 tree steps).
  static let elementsPerSegmentItem = 8

  /// The launch rule, written down rather than timed: it depends on the plane size, the layout,
  /// the device's kernel family and its work-group size, never on the batch, so every plane is
  /// chunked (and so summed) the same way in any batch, any part of a split call, any stream
  /// chunk or shard.
  /// - channels-first, per-work-item kernels (CPU drivers): chunks of 8192 elements.
  /// - channels-first, work-group kernels (GPUs): chunks of 32 × the work-group size; each
  ///   (plane, chunk) gets the smallest power-of-two segment of the work-group whose work-items
  ///   load at most `elementsPerSegmentItem` elements each (up to the whole group).
  /// - channels-last: chunks of 1024 positions (CPU drivers) or 256 (GPUs), 8 channels per
  ///   work-item; every chunk stays below 2^31 positions, which the kernels' int positions need.
  static func plan(spatial: Int, layout: Layout, variant: KernelVariant, workGroupSize: Int) -> PoolPlan {
    switch (layout, variant) {
    case (.channelsLast, .workGroup):
      return PoolPlan(kernel: .channelsLast, chunking: Chunking(length: spatial, chunkLength: 256))
    case (.channelsLast, _):
      return PoolPlan(kernel: .channelsLast, chunking: Chunking(length: spatial, chunkLength: 1024))
    case (.channelsFirst, .workGroup):
      let chunking = Chunking(length: spatial, chunkLength: workGroupSize * 32)
      let wanted = (chunking.chunkLength + elementsPerSegmentItem - 1) / elementsPerSegmentItem
      var segment = 1
      while segment < min(wanted, workGroupSize) { segment *= 2 }
      return PoolPlan(kernel: .rowsWorkGroup(segment: segment), chunking: chunking)
    case (.channelsFirst, _):
      return PoolPlan(kernel: .rows, chunking: Chunking(length: spatial, chunkLength: 8192))
    }
  }

  /// Work-group size of the per-work-item pooling kernels (measured on PoCL: 1024 beat 64, 256).
  private static let rowGroup = 1024

  /// Bytes of the kernels' arithmetic type (acc_t) for storage type `type`: partial sums keep it.
  private static func accumulatorWidth(_ type: ScalarType) -> Int { type == .float64 ? 8 : 4 }

  // MARK: Host tensors

  /// The input is seen by the device for this call only. An input larger than one allocation
  /// runs in parts of whole samples; the plan does not depend on the batch, so the result is
  /// bitwise the same as one call's.
  public func computePool(
    _ input: UnsafeRawBufferPointer, _ type: ScalarType, _ geometry: PoolGeometry, _ operation: PoolOperation,
    into values: UnsafeMutableRawBufferPointer, indices: UnsafeMutableBufferPointer<Int64>?
  ) throws {
    let width = type.byteWidth
    let sampleBytes = geometry.channels * geometry.spatialSize * width
    try checkAllocation(sampleBytes, what: "one sample of pooling input \(Tensor.describe(geometry.shape))")
    let samplesPerPart = max(1, min(geometry.batch, Int(allocationLimit / UInt64(sampleBytes))))
    for first in stride(from: 0, to: geometry.batch, by: samplesPerPart) {
      let part = try geometry.samples(first..<min(first + samplesPerPart, geometry.batch))
      let planes = (first * geometry.channels)..<((first + part.batch) * geometry.channels)
      try hostCall { chain in
        let x = try upload(UnsafeRawBufferPointer(rebasing: input[(first * sampleBytes)..<((first + part.batch) * sampleBytes)]))
        let output = try poolOnDevice(x, type, part, operation, returnIndices: indices != nil, on: &chain)
        try chain.read(output.values, into: UnsafeMutableRawBufferPointer(rebasing: values[(planes.lowerBound * width)..<(planes.upperBound * width)]))
        if let outputIndices = output.indices, let indices {
          try chain.read(outputIndices, into: UnsafeMutableRawBufferPointer(UnsafeMutableBufferPointer(rebasing: indices[planes])))
        }
      }
    }
  }

  /// Enqueues the pooling of device buffer `x` (planes > 0) on the chain, by `plan`'s rule; the
  /// caller holds the lock. `fresh`: every buffer is new (a device-tensor call).
  func poolOnDevice(
    _ x: CLBuffer, _ type: ScalarType, _ geometry: PoolGeometry, _ operation: PoolOperation, returnIndices: Bool,
    fresh: Bool = false, on chain: inout CommandChain
  ) throws -> (values: CLBuffer, indices: CLBuffer?) {
    let average = operation == .average
    let planes = geometry.planes
    let entry = try program(type)
    let program = entry.program
    let plan = Self.plan(spatial: geometry.spatialSize, layout: geometry.layout, variant: entry.variant, workGroupSize: workGroupSize)
    let chunks = plan.chunking.chunks
    let output = try outputBuffer(type, count: planes, fresh: fresh, on: &chain)
    let outputIndices = returnIndices ? try indexBuffer(count: planes, fresh: fresh, on: &chain) : nil
    // With one chunk, pass 1 writes the final values; otherwise partials, folded by pass 2:
    // sums in the arithmetic type, maxima (exact) in the storage type with their positions.
    let partialWidth = average ? Self.accumulatorWidth(type) : type.byteWidth
    let partial = chunks == 1 ? output : try scratch(.partial, bytes: planes * chunks * partialWidth, fresh: fresh)
    let partialIndices =
      chunks == 1 ? outputIndices : average ? nil : try scratch(.partialIndices, bytes: planes * chunks * 8, fresh: fresh)
    // gap_*: (x, out, partial, ...) with out used when chunks == 1; gmp_*: (x, out, indices, ...).
    let buffers: [KernelArgument] =
      average ? [.buffer(x), .buffer(output), .buffer(partial)] : [.buffer(x), .buffer(partial), .buffer(partialIndices)]
    let prefix = average ? "gap" : "gmp"
    let rowArguments: [KernelArgument] = [
      .uint64(UInt64(planes)), .uint64(UInt64(geometry.spatialSize)), .uint64(UInt64(plan.chunking.chunkLength)),
      .uint32(UInt32(chunks)),
    ]
    switch plan.kernel {
    case .rows:
      // Large work-groups measured 2-3x faster than the driver's choice on PoCL.
      let group = min(Self.rowGroup, device.maxWorkGroupSize)
      try enqueue(
        "\(prefix)_rows", of: program, buffers + rowArguments, global: [Self.roundUp(planes * chunks, group)],
        local: [group], on: &chain)
    case .rowsWorkGroup(let segment):
      let groups = (planes * chunks + workGroupSize / segment - 1) / (workGroupSize / segment)
      try enqueue(
        "\(prefix)_rows_wg", of: program, buffers + rowArguments + [.uint32(UInt32(segment))],
        global: [groups * workGroupSize], local: [workGroupSize], on: &chain)
    case .channelsLast:
      try enqueue(
        "\(prefix)_channels_last", of: program,
        buffers + [
          .uint64(UInt64(geometry.batch)), .uint64(UInt64(geometry.channels)), .uint64(UInt64(geometry.spatialSize)),
          .uint64(UInt64(plan.chunking.chunkLength)), .uint32(UInt32(chunks)),
        ],
        global: [Self.roundUp((geometry.channels + 7) / 8, 8), geometry.batch * chunks], on: &chain)
    }
    guard chunks > 1 else { return (output, outputIndices) }
    let combine: [KernelArgument] =
      average
      ? [
        .buffer(partial), .buffer(output), .uint64(UInt64(planes)), .uint32(UInt32(chunks)),
        .uint64(UInt64(geometry.spatialSize)), .buffer(x), .uint64(UInt64(geometry.channels)),
        .int32(geometry.layout == .channelsLast ? 1 : 0),
      ]
      : [
        .buffer(partial), .buffer(partialIndices), .buffer(output), .buffer(outputIndices), .uint64(UInt64(planes)),
        .uint32(UInt32(chunks)),
      ]
    try enqueue("\(prefix)_combine", of: program, combine, global: [Self.roundUp(planes, 64)], on: &chain)
    return (output, outputIndices)
  }

  // MARK: Ragged batches

  /// Every sample in one launch (gap_ragged / gmp_ragged), the per-sample offsets and spatial
  /// sizes in two small device arrays.
  public func computePool<S: StorageScalar>(_ batch: RaggedBatch<S>, _ operation: PoolOperation, returnIndices: Bool)
    throws -> PooledPlanes<S>
  {
    let (n, c) = (batch.count, batch.channels)
    try checkAllocation(batch.scalars.count * S.scalarType.byteWidth, what: "ragged batch of \(n) samples x \(c) channels")
    try checkAllocation(n * c * 8, what: "ragged pooling output of \(n) samples x \(c) channels")
    if batch.layout == .channelsLast, let size = batch.spatialSizes.first(where: { $0 > Int(Int32.max) }) {
      throw CLPoolError.sizeLimit("a channels-last ragged sample of \(size) positions exceeds the kernels' limit of \(Int32.max)")
    }
    var values = [S](repeating: 0, count: n * c)
    var indices = [Int64](repeating: 0, count: returnIndices ? n * c : 0)
    try hostCall { chain in
      try withUploads([batch.scalars, batch.offsets.map(UInt64.init), batch.spatialSizes.map(UInt64.init)]) { inputs in
        let output = try outputBuffer(S.scalarType, count: n * c, on: &chain)
        let outputIndices = returnIndices ? try indexBuffer(count: n * c, on: &chain) : nil
        let channelsLast = batch.layout == .channelsLast
        try enqueue(
          operation == .average ? "gap_ragged" : "gmp_ragged", of: try program(S.scalarType).program,
          inputs.map(KernelArgument.buffer) + [.buffer(output)] + (operation == .average ? [] : [.buffer(outputIndices)])
            + [.uint64(UInt64(n)), .uint64(UInt64(c)), .int32(channelsLast ? 1 : 0)],
          global: [channelsLast ? (c + 7) / 8 : c, n], on: &chain)
        try values.withUnsafeMutableBytes { try chain.read(output, into: $0) }
        if let outputIndices { try indices.withUnsafeMutableBytes { try chain.read(outputIndices, into: $0) } }
      }
    }
    return PooledPlanes(values: values, indices: returnIndices ? indices : nil)
  }

  // MARK: Backward

  /// One work-item per input element (gap_backward / gmp_backward).
  public func computePoolBackward(_ gradient: Tensor, indices: [Int64]?, _ geometry: PoolGeometry) throws -> [Float] {
    let count = geometry.planes * geometry.spatialSize
    try checkAllocation(count * 4, what: "pooling gradient \(Tensor.describe(geometry.shape))")
    var dx = [Float](repeating: 0, count: count)
    try hostCall { chain in
      try withUploads(indices.map { [gradient.scalars, $0] } ?? [gradient.scalars]) { inputs in
        let output = try outputBuffer(.float32, count: count, on: &chain)
        try enqueue(
          indices == nil ? "gap_backward" : "gmp_backward", of: try program(.float32).program,
          inputs.map(KernelArgument.buffer) + [
            .buffer(output), .uint64(UInt64(count)), .uint64(UInt64(geometry.channels)),
            .uint64(UInt64(geometry.spatialSize)), .int32(geometry.layout == .channelsLast ? 1 : 0),
          ],
          global: [Self.roundUp(count, workGroupSize)], local: [workGroupSize], on: &chain)
        try dx.withUnsafeMutableBytes { try chain.read(output, into: $0) }
      }
    }
    return dx
  }
}

extension PoolGeometry {
  /// The geometry of samples `range` of this batch.
  func samples(_ range: Range<Int>) throws -> PoolGeometry {
    var part = shape
    part[0] = range.count
    return try PoolGeometry(shape: part, layout: layout)
  }
}
