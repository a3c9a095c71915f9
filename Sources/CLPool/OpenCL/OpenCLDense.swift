/// Dense layers and the fused head on OpenCL (Kernels/dense.cl, Kernels/head.cl).
extension OpenCLBackend {
  /// Work-items along the rows that share a column strip of W (measured on PoCL: 16 beat 1, 64).
  private static let denseRowGroup = 16
  /// Work-items per column group of the fused head.
  private static let headGroupWidth = 16

  public func computeDense(
    _ input: UnsafeRawBufferPointer, _ weight: UnsafeRawBufferPointer, _ bias: UnsafeRawBufferPointer?,
    _ type: ScalarType, _ geometry: DenseGeometry, _ activation: Activation, into output: UnsafeMutableRawBufferPointer
  ) throws {
    try checkDense(geometry, type, input: geometry.rows * geometry.inputs, weight: geometry.inputs * geometry.outputs)
    try hostCall { chain in
      let (x, w, b) = (try upload(input), try upload(weight), try bias.map { try upload($0) })
      let y = try denseOnDevice(x, w, b, type, geometry, activation, on: &chain)
      try chain.read(y, into: UnsafeMutableRawBufferPointer(rebasing: output[..<(geometry.rows * geometry.outputs * type.byteWidth)]))
    }
  }

  /// GAP and dense in one launch (Kernels/head.cl): the pooled [N, C] rows stay on the device.
  public func computeHead(
    _ features: UnsafeRawBufferPointer, _ pool: PoolGeometry, _ weight: UnsafeRawBufferPointer,
    _ bias: UnsafeRawBufferPointer?, _ type: ScalarType, _ geometry: DenseGeometry, _ activation: Activation,
    into output: UnsafeMutableRawBufferPointer
  ) throws {
    try checkAllocation(pool.planes * pool.spatialSize * type.byteWidth, what: "head input \(Tensor.describe(pool.shape))")
    try checkDense(geometry, type, input: 0, weight: geometry.inputs * geometry.outputs)
    try hostCall { chain in
      let (x, w, b) = (try upload(features), try upload(weight), try bias.map { try upload($0) })
      let y = try headOnDevice(x, w, b, type, pool, geometry, activation, on: &chain)
      try chain.read(y, into: UnsafeMutableRawBufferPointer(rebasing: output[..<(geometry.rows * geometry.outputs * type.byteWidth)]))
    }
  }

  /// Refuses sizes beyond the kernels' 32-bit dimensions or one device allocation.
  func checkDense(_ geometry: DenseGeometry, _ type: ScalarType, input: Int, weight: Int) throws {
    let width = type.byteWidth
    let (n, k, m) = (geometry.rows, geometry.inputs, geometry.outputs)
    guard n <= UInt32.max, k <= UInt32.max, m <= UInt32.max else {
      throw CLPoolError.sizeLimit("dense \(n)x\(k)x\(m) exceeds the kernels' limit of \(UInt32.max) per dimension")
    }
    try checkAllocation(input * width, what: "dense input \(n)x\(k)")
    try checkAllocation(weight * width, what: "dense weight \(k)x\(m)")
    try checkAllocation(n * m * width, what: "dense output \(n)x\(m)")
  }

  /// Enqueues y = act(x · W + b) on device buffers (N, M > 0); the caller holds the lock.
  /// Every kernel computes each output by the same sequence of operations (dense.cl), so the
  /// choice below changes speed, not bits.
  func denseOnDevice(
    _ x: CLBuffer, _ w: CLBuffer, _ b: CLBuffer?, _ type: ScalarType, _ geometry: DenseGeometry, _ activation: Activation,
    fresh: Bool = false, on chain: inout CommandChain
  ) throws -> CLBuffer {
    let (n, k, m) = (geometry.rows, geometry.inputs, geometry.outputs)
    let entry = try program(type)
    let program = entry.program
    let y = try outputBuffer(type, count: n * m, fresh: fresh, on: &chain)
    let weight = try inOutWeight(w, program, type, geometry, fresh: fresh, on: &chain)
    // Batches smaller than a tile run one row per work-item (GEMV) instead of padding the tile;
    // the work-group variant stages 64 x 64 output tiles through local memory (the GPU way).
    let singleRow = n < Self.denseRows
    let tiled = !singleRow && entry.tiledDense
    let arguments: [KernelArgument] = [
      .buffer(x), .buffer(weight), .buffer(b), .buffer(y), .uint32(UInt32(n)), .uint32(UInt32(k)), .uint32(UInt32(m)),
      .int32(b == nil ? 0 : 1), .int32(Self.elementwiseCode(activation)),
    ]
    if tiled {
      try enqueue(
        "dense_in_out_tiled", of: program, arguments, global: [(m + 63) / 64 * 16, (n + 63) / 64 * 16],
        local: [16, 16], on: &chain)
    } else {
      let columnItems = (m + 15) / 16
      let rowItems = singleRow ? n : (n + Self.denseRows - 1) / Self.denseRows
      // Work-groups along the rows share W's column strip (16 measured best on PoCL); a GEMV
      // runs one work-item per group, which PoCL spreads over its cores best.
      let local = singleRow ? [1, 1] : [1, min(Self.denseRowGroup, rowItems, workGroupSize)]
      try enqueue(
        singleRow ? "dense_in_out_single_row" : "dense_in_out", of: program, arguments,
        global: [Self.roundUp(columnItems, local[0]), Self.roundUp(rowItems, local[1])], local: local, on: &chain)
    }
    try softmaxIfAsked(y, program, rows: n, columns: m, activation, on: &chain)
    return y
  }

  /// Enqueues the fused head on device buffers (N, M > 0); the caller holds the lock.
  func headOnDevice(
    _ x: CLBuffer, _ w: CLBuffer, _ b: CLBuffer?, _ type: ScalarType, _ pool: PoolGeometry, _ geometry: DenseGeometry,
    _ activation: Activation, fresh: Bool = false, on chain: inout CommandChain
  ) throws -> CLBuffer {
    let (n, c, m) = (geometry.rows, geometry.inputs, geometry.outputs)
    let program = try program(type).program
    // Batches smaller than a tile run one row per work-group, as dense does.
    let rowsPerGroup = n < Self.denseRows ? 1 : Self.denseRows
    let rowGroups = (n + rowsPerGroup - 1) / rowsPerGroup
    // Enough column groups that every compute unit has work even for a batch of one.
    let width = min(Self.headGroupWidth, workGroupSize)
    let columnGroups = max(
      1, min((m + 16 * width - 1) / (16 * width), (device.computeUnits * 4 + rowGroups - 1) / rowGroups))
    let y = try outputBuffer(type, count: n * m, fresh: fresh, on: &chain)
    let weight = try inOutWeight(w, program, type, geometry, fresh: fresh, on: &chain)
    // Each work-group pools its rows into a region of its own (head.cl).
    let pooledBytes = columnGroups * rowGroups * rowsPerGroup * c * type.byteWidth
    try checkAllocation(pooledBytes, what: "the head's pooled rows")
    let pooled = try scratch(.pooledRows, bytes: pooledBytes, fresh: fresh)
    try enqueue(
      rowsPerGroup == 1 ? "head_avg_single_row" : "head_avg", of: program,
      [
        .buffer(x), .buffer(weight), .buffer(b), .buffer(y), .buffer(pooled), .uint32(UInt32(n)), .uint32(UInt32(c)),
        .uint64(UInt64(pool.spatialSize)), .uint32(UInt32(m)), .int32(b == nil ? 0 : 1),
        .int32(Self.elementwiseCode(activation)), .int32(pool.layout == .channelsLast ? 1 : 0),
      ],
      global: [columnGroups * width, rowGroups], local: [width, 1], on: &chain)
    try softmaxIfAsked(y, program, rows: n, columns: m, activation, on: &chain)
    return y
  }

  /// The weight as [K, M]: an out-in [M, K] weight is transposed once on the device, so one
  /// kernel serves both layouts.
  private func inOutWeight(
    _ w: CLBuffer, _ program: CLProgram, _ type: ScalarType, _ geometry: DenseGeometry, fresh: Bool,
    on chain: inout CommandChain
  ) throws -> CLBuffer {
    guard geometry.weightLayout == .outIn else { return w }
    let (k, m) = (geometry.inputs, geometry.outputs)
    let transposed = try scratch(.transposedWeight, bytes: k * m * type.byteWidth, fresh: fresh)
    try enqueue(
      "transpose", of: program, [.buffer(w), .buffer(transposed), .uint32(UInt32(m)), .uint32(UInt32(k))],
      global: [k, m], on: &chain)
    return transposed
  }

  private func softmaxIfAsked(
    _ y: CLBuffer, _ program: CLProgram, rows: Int, columns: Int, _ activation: Activation, on chain: inout CommandChain
  ) throws {
    guard activation == .softmax else { return }
    try enqueue(
      "softmax_rows", of: program, [.buffer(y), .uint32(UInt32(rows)), .uint32(UInt32(columns))],
      global: [Self.roundUp(rows, 8)], on: &chain)
  }

  /// dense.cl's ACTIVATION_* codes for the element-wise activations fused into the product.
  private static func elementwiseCode(_ activation: Activation) -> Int32 {
    switch activation {
    case .relu: return 1
    case .sigmoid: return 2
    case .none, .softmax: return 0
    }
  }
}
