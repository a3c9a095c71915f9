import CLPoolCPU

/// y = activation(x · W + b) on the CPU for one weight: W in the arithmetic type and laid out
/// [K, M] once (an out-in weight transposed, a float16 one widened), then rows of x multiplied in
/// tiles on every core by `clpool_gemm`, or, for a few rows, K blocks on every core by
/// `clpool_gemm_block` (`BlockSplit`). Each output is the same chain of operations whatever the
/// tile, the thread or the number of rows (Sources/CLPoolCPU/include/clpool_cpu.h), so a row's
/// result does not depend on the batch it came in.
struct CPUDense {
  let storage: ScalarType
  let geometry: DenseGeometry
  private let weight: Buffer
  private let bias: Buffer

  /// - Parameters: weight and bias, the caller's memory in `type`, valid while this product is used.
  init(_ weight: UnsafeRawBufferPointer, _ bias: UnsafeRawBufferPointer?, _ type: ScalarType, _ geometry: DenseGeometry) throws {
    storage = type
    self.geometry = geometry
    let (k, m) = (geometry.inputs, geometry.outputs)
    try HostMemory.check(elements: k, m, width: type.accumulatorWidth, what: "dense weight")
    self.weight = Buffer(weight.baseAddress!, count: k * m, type, transposedFrom: geometry.weightLayout == .outIn ? (m, k) : nil)
    self.bias = bias.map { Buffer($0.baseAddress!, count: m, type, transposedFrom: nil) } ?? Buffer(zeros: m, type)
  }

  /// `count` rows of x (storage type, [count, K] at `x`) into `out` ([count, M], storage type).
  func rows(of x: UnsafeRawPointer, count: Int, _ activation: Activation, into out: UnsafeMutableRawPointer) throws {
    let (k, m) = (geometry.inputs, geometry.outputs)
    let accumulator = storage.accumulator
    let input = storage == accumulator ? nil : Buffer(converting: x, count: count * k, from: storage)
    let result = storage == accumulator ? nil : UnsafeMutableRawPointer.allocate(byteCount: count * m * 4, alignment: 64)
    defer { result?.deallocate() }
    let y = result ?? out
    let xs = input?.pointer ?? x
    if let split = BlockSplit(rows: count, k: k, m: m, width: accumulator.byteWidth, cores: CPUInfo.activeCores) {
      product(xs, count: count, in: split, into: y)
    } else {
      product(xs, count: count, into: y)
    }
    Self.activate(y, rows: count, outputs: m, accumulator, activation)
    if let result { clpool_convert(accumulator.kernelCode, result, 0, storage.kernelCode, out, count * m) }
  }

  /// `activation` applied in place to `rows` × `outputs` products of arithmetic type `type` (every
  /// NaN made the quiet NaN of no payload), as `rows(of:count:_:into:)` applies it.
  static func activate(_ y: UnsafeMutableRawPointer, rows: Int, outputs m: Int, _ type: ScalarType, _ activation: Activation) {
    // On every core, so that a batch's softmax (an exponential per output) does not run on one
    // core while the others wait.
    let code = activationCode(activation)
    parallelFor(rows, grain: max(1, 16_384 / max(m, 1))) { part in
      clpool_activate(type.kernelCode, y + part.lowerBound * m * type.byteWidth, part.count, m, code)
    }
  }

  /// y = x · W + b on every core: W's columns split across the cores (each task packs its panels of
  /// W and its tiles of x once per block of k), and the rows too when there are fewer columns than
  /// cores. Columns split at the multiples of 16 nearest to equal shares: 1000 columns on two cores
  /// are 496 and 504, not 512 and 488, where the first core's part sets the call's time.
  private func product(_ x: UnsafeRawPointer, count: Int, into y: UnsafeMutableRawPointer) {
    let (k, m, type) = (geometry.inputs, geometry.outputs, storage.accumulator.kernelCode)
    let cores = CPUInfo.activeCores
    let columnTasks = max(1, min(cores, m / 16))
    func firstColumn(_ task: Int) -> Int { task == columnTasks ? m : (task * m / columnTasks + 8) / 16 * 16 }
    let rowSplit = max(1, min(cores / columnTasks, (count + 5) / 6))
    let taskRows = ((count + rowSplit - 1) / rowSplit + 5) / 6 * 6
    let rowTasks = (count + taskRows - 1) / taskRows
    parallelFor(rowTasks * columnTasks, grain: 1) { tasks in
      for index in tasks {
        let (rowTask, columnTask) = (index / columnTasks, index % columnTasks)
        clpool_gemm(
          type, x, weight.pointer, bias.pointer, y, k, m, rowTask * taskRows, min(count, (rowTask + 1) * taskRows),
          firstColumn(columnTask), firstColumn(columnTask + 1))
      }
    }
  }

  /// y = x · W + b with k split across the cores by `split`: each block's partial sums, then the
  /// fold in order.
  private func product(_ x: UnsafeRawPointer, count: Int, in split: BlockSplit, into y: UnsafeMutableRawPointer) {
    let (k, m, type) = (geometry.inputs, geometry.outputs, storage.accumulator.kernelCode)
    let blockBytes = count * m * storage.accumulator.byteWidth
    let partials = UnsafeMutableRawPointer.allocate(byteCount: split.blocks * blockBytes, alignment: 64)
    defer { partials.deallocate() }
    parallelFor(split.tasks, grain: 1) { tasks in
      for task in tasks {
        for block in split.blocks(of: task) {
          clpool_gemm_block(type, x, weight.pointer, partials + block * blockBytes, k, m, 0, count, 0, m, block)
        }
      }
    }
    clpool_fold_blocks(type, partials, split.blocks, count * m, bias.pointer, m, y)
  }

  /// The written rule for a product of a few rows and a long k, where reading W is the cost: when
  /// the rows are at most one pass of the streamed product (CLPOOL_STREAM_ROWS), k spans at least
  /// one K block per core, splitting k by whole blocks leaves no core more than 8% above an equal
  /// share of it, and the blocks' partials take at most 16 MiB, each core takes a contiguous range
  /// of K blocks (CLPOOL_K_BLOCK rows of W each) across all the columns, and the partials fold in
  /// order after. Each core then reads its own contiguous part of W: two cores reading the two
  /// halves of every row of a cached W read it 9–25% slower (BENCHMARKS.md). The bits are
  /// clpool_gemm's, whichever core took a block.
  struct BlockSplit {
    let blocks: Int
    let tasks: Int

    init?(rows: Int, k: Int, m: Int, width: Int, cores: Int) {
      let block = Int(CLPOOL_K_BLOCK)
      (blocks, tasks) = ((k + block - 1) / block, cores)
      guard cores > 1, rows <= Int(CLPOOL_STREAM_ROWS), blocks >= cores, blocks * rows * m * width <= 16 << 20 else { return nil }
      let busiest = (0..<cores).map { min(k, blocks(of: $0).upperBound * block) - blocks(of: $0).lowerBound * block }.max()!
      guard busiest * cores * 100 <= k * 108 else { return nil }
    }

    /// The K blocks of task `task`.
    func blocks(of task: Int) -> Range<Int> { task * blocks / tasks..<(task + 1) * blocks / tasks }
  }

  private static func activationCode(_ activation: Activation) -> Int32 {
    switch activation {
    case .none: return 0
    case .relu: return 1
    case .sigmoid: return 2
    case .softmax: return 3
    }
  }

  /// Elements in the arithmetic type: the caller's own memory when it already is that (and needs
  /// no transpose), else a converted (and transposed) copy this buffer owns.
  final class Buffer: @unchecked Sendable {
    let pointer: UnsafeRawPointer
    private let owned: UnsafeMutableRawPointer?

    init(_ values: UnsafeRawPointer, count: Int, _ type: ScalarType, transposedFrom shape: (rows: Int, columns: Int)?) {
      let accumulator = type.accumulator
      guard type != accumulator || shape != nil else {
        pointer = values
        owned = nil
        return
      }
      let bytes = max(1, count) * accumulator.byteWidth
      var widened = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
      clpool_convert(type.kernelCode, values, 0, accumulator.kernelCode, widened, count)
      if let shape {
        let transposed = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
        clpool_transpose(accumulator.kernelCode, widened, shape.rows, shape.columns, transposed)
        widened.deallocate()
        widened = transposed
      }
      pointer = UnsafeRawPointer(widened)
      owned = widened
    }

    /// `count` zeros in `type`'s arithmetic type: the bias of a product without one, so that every
    /// output is chain + bias, as on OpenCL (Kernels/dense.cl adds 0 there), where a chain's −0 (an
    /// underflow) becomes +0.
    init(zeros count: Int, _ type: ScalarType) {
      let bytes = max(1, count) * type.accumulator.byteWidth
      let memory = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
      memory.initializeMemory(as: UInt8.self, repeating: 0, count: bytes)
      (pointer, owned) = (UnsafeRawPointer(memory), memory)
    }

    /// `count` elements of `type` at `source`, widened to its arithmetic type.
    convenience init(converting source: UnsafeRawPointer, count: Int, from type: ScalarType) {
      self.init(source, count: count, type, transposedFrom: nil)
    }

    deinit { owned?.deallocate() }
  }
}
