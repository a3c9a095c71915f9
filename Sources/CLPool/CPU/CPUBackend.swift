#if canImport(Accelerate)
  import Accelerate
#else
  import CBLAS
#endif
import Foundation

/// The native backend: multi-threaded SIMD reductions for pooling, CBLAS `sgemm` (OpenBLAS on
/// Linux, Accelerate on Apple platforms) for dense. Always available.
///
/// Thread safety: the backend holds only immutable configuration; every call allocates its own
/// outputs, so concurrent calls are safe (`@unchecked` only because `final class` with `let`s of
/// Sendable types is checked conservatively).
public final class CPUBackend: Backend, @unchecked Sendable {
  public let kind = BackendKind.cpu
  public let deviceName: String
  private let options: BackendOptions

  public init(options: BackendOptions = BackendOptions()) {
    self.options = options
    deviceName = "host CPU, \(CPUInfo.activeCores) threads, SIMD + \(CPUBackend.blasName)"
  }

  #if canImport(Accelerate)
    static let blasName = "Accelerate"
  #else
    static let blasName = "OpenBLAS"
  #endif

  private func outputBuffer<T: StorageScalar>(_: T.Type = T.self, _ count: Int) -> [T] {
    [T](repeating: options.poisonOutputs ? T.poison : 0, count: count)
  }

  /// Every storage type: float16 converts to float32 and back around the float32 code.
  public func checkSupport(_ type: ScalarType) throws {}

  // MARK: Pooling

  public func computePool<S: StorageScalar>(
    _ input: TypedTensor<S>, _ geometry: PoolGeometry, _ operation: PoolOperation, returnIndices: Bool
  ) throws -> PooledPlanes<S> {
    let (values, indices) = pool(input.scalars, [(0, geometry)], average: operation == .average, returnIndices: returnIndices)
    return PooledPlanes(values: values, indices: returnIndices ? indices : nil)
  }

  public func computePool<S: StorageScalar>(_ batch: RaggedBatch<S>, _ operation: PoolOperation, returnIndices: Bool)
    throws -> PooledPlanes<S>
  {
    let (values, indices) = pool(
      batch.scalars, try samples(of: batch), average: operation == .average, returnIndices: returnIndices)
    return PooledPlanes(values: values, indices: returnIndices ? indices : nil)
  }

  private func samples<S: StorageScalar>(of batch: RaggedBatch<S>) throws -> [(offset: Int, geometry: PoolGeometry)] {
    try (0..<batch.count).map { (batch.offsets[$0], try batch.geometry(of: $0)) }
  }

  /// Pools `samples` of x (each an offset and the geometry of what starts there: the whole
  /// tensor, or one sample of a ragged batch) in S's arithmetic type.
  private func pool<S: StorageScalar>(
    _ x: [S], _ samples: [(offset: Int, geometry: PoolGeometry)], average: Bool, returnIndices: Bool
  ) -> (values: [S], indices: [Int64]) {
    x.withUnsafeBufferPointer { buffer in
      switch Source(buffer) {
      case .float(let x):
        let result = pool(x, samples, average: average, returnIndices: returnIndices)
        return (converted(result.values, to: S.self), result.indices)
      case .double(let x):
        let result = pool(x, samples, average: average, returnIndices: returnIndices)
        return (converted(result.values, to: S.self), result.indices)
      case .half(let x):
        let result = pool(x, samples, average: average, returnIndices: returnIndices)
        return (converted(result.values, to: S.self), result.indices)
      }
    }
  }

  /// A typed input's elements with their static type, so each case reaches code specialised for
  /// it (generic code opened on a type at run time ran ~50x slower here).
  private enum Source {
    case float(UnsafeBufferPointer<Float>)
    case double(UnsafeBufferPointer<Double>)
    case half(UnsafeBufferPointer<Float16>)

    init<S: StorageScalar>(_ buffer: UnsafeBufferPointer<S>) {
      let raw = UnsafeRawBufferPointer(buffer)
      switch S.scalarType {
      case .float32: self = .float(raw.assumingMemoryBound(to: Float.self))
      case .float64: self = .double(raw.assumingMemoryBound(to: Double.self))
      case .float16: self = .half(raw.assumingMemoryBound(to: Float16.self))
      }
    }
  }

  private func pool<E: PooledElement>(
    _ x: UnsafeBufferPointer<E>, _ samples: [(offset: Int, geometry: PoolGeometry)], average: Bool, returnIndices: Bool
  ) -> (values: [E.Arithmetic], indices: [Int64]) {
    var (values, indices): ([E.Arithmetic], [Int64]) = ([], [])
    for (offset, geometry) in samples {
      let start = x.baseAddress.map { $0 + offset }
      if average {
        values += averagePool(start, geometry)
      } else {
        let sample = maxPool(start, geometry, returnIndices: returnIndices)
        values += sample.values
        indices += sample.indices
      }
    }
    return (values, indices)
  }

  /// Plane means of the input at `x` laid out as `geometry` says (nil only when it is empty).
  private func averagePool<E: PooledElement>(_ x: UnsafePointer<E>?, _ geometry: PoolGeometry) -> [E.Arithmetic] {
    typealias T = E.Arithmetic
    guard let x, geometry.planes > 0 else { return [] }
    let chunking = CPUBackend.chunking(geometry)
    let chunks = chunking.chunks
    let divisor = T(geometry.spatialSize)
    // With one chunk per plane the partial sums are the outputs: the row loop takes the mean.
    let partialDivisor: T = chunks == 1 ? divisor : 1
    var partials = outputBuffer(T.self, geometry.planes * chunks)
    partials.withUnsafeMutableBufferPointer { partial in
      forEachChunk(
        geometry, chunking,
        rows: { items in
          for item in items {
            let (offset, length) = chunking.span(of: item)
            partial[item] = CPUPooling.sum(x + offset, count: length) / partialDivisor
          }
        },
        tile: { offset, length, channelWidth, slot in
          CPUPooling.sumChannels(
            x + offset, width: channelWidth, count: length, stride: geometry.channels,
            into: partial.baseAddress! + slot, outStride: chunks, divisor: partialDivisor)
        })
    }
    var output = partials
    if chunks > 1 {
      output = outputBuffer(T.self, geometry.planes)
      for plane in 0..<geometry.planes {
        var total = CompensatedSum<T>()
        for chunk in 0..<chunks { total.add(partials[plane * chunks + chunk]) }
        output[plane] = total.sum / divisor
      }
    }
    // A sum of finite values may overflow where their mean does not: those planes (and planes
    // with infinities or NaN, whose result stays what IEEE arithmetic gives) are summed again,
    // scaled. One check per plane on normal data.
    for plane in 0..<geometry.planes where !output[plane].isFinite {
      let (start, stride) = geometry.layout == .channelsFirst
        ? (plane * geometry.spatialSize, 1)
        : ((plane / geometry.channels) * geometry.spatialSize * geometry.channels + plane % geometry.channels, geometry.channels)
      output[plane] = CPUPooling.rescaledMean(x + start, count: geometry.spatialSize, stride: stride)
    }
    return output
  }

  /// Plane maxima of the input at `x` (nil only when it is empty) and, with `returnIndices`,
  /// their first-max positions (else no indices).
  private func maxPool<E: PooledElement>(_ x: UnsafePointer<E>?, _ geometry: PoolGeometry, returnIndices: Bool)
    -> (values: [E.Arithmetic], indices: [Int64])
  {
    typealias T = E.Arithmetic
    guard let x, geometry.planes > 0 else { return ([], []) }
    let chunking = CPUBackend.chunking(geometry)
    let chunks = chunking.chunks
    // Partial maxima per (plane, chunk); with one chunk they are the outputs. Positions are
    // needed to combine chunks.
    let needIndex = returnIndices || chunks > 1
    var partials = outputBuffer(T.self, geometry.planes * chunks)
    var partialIndices = [Int64](
      repeating: options.poisonOutputs ? BackendOptions.poisonIndex : 0,
      count: needIndex ? geometry.planes * chunks : 0)
    partials.withUnsafeMutableBufferPointer { partial in
      partialIndices.withUnsafeMutableBufferPointer { partialIndex in
        forEachChunk(
          geometry, chunking,
          rows: { items in
            for item in items {
              let (offset, length) = chunking.span(of: item)
              let (value, index) = CPUPooling.max(x + offset, count: length, needIndex: needIndex)
              partial[item] = value
              if needIndex { partialIndex[item] = Int64((item % chunks) * chunking.chunkLength + index) }
            }
          },
          tile: { offset, length, channelWidth, slot in
            CPUPooling.maxChannels(
              x + offset, width: channelWidth, count: length,
              stride: geometry.channels, into: partial.baseAddress! + slot,
              indices: needIndex ? partialIndex.baseAddress! + slot : nil, outStride: chunks)
            if needIndex {
              let chunkBegin = Int64((slot % chunks) * chunking.chunkLength)
              for c in 0..<channelWidth { partialIndex[slot + c * chunks] += chunkBegin }
            }
          })
      }
    }
    guard chunks > 1 else { return (partials, returnIndices ? partialIndices : []) }
    var output = outputBuffer(T.self, geometry.planes)
    var indices = [Int64](repeating: 0, count: returnIndices ? geometry.planes : 0)
    for plane in 0..<geometry.planes {
      var best = partials[plane * chunks]
      var bestIndex = Int(partialIndices[plane * chunks])
      for chunk in 1..<chunks {
        let slot = plane * chunks + chunk
        if maxIsBetter(partials[slot], Int(partialIndices[slot]), than: best, bestIndex) {
          best = partials[slot]
          bestIndex = Int(partialIndices[slot])
        }
      }
      output[plane] = best
      if returnIndices { indices[plane] = Int64(bestIndex) }
    }
    return (output, indices)
  }

  public func computePoolBackward(_ gradient: Tensor, indices: [Int64]?, _ geometry: PoolGeometry) throws -> [Float] {
    let divisor = Float(geometry.spatialSize)
    var dx = outputBuffer(Float.self, geometry.planes * geometry.spatialSize)
    dx.withUnsafeMutableBufferPointer { out in
      parallelFor(out.count, grain: 1 << 16) { range in
        for i in range {
          let (plane, position) = geometry.planeAndPosition(of: i)
          if let indices {
            out[i] = Int64(position) == indices[plane] ? gradient.scalars[plane] : 0
          } else {
            out[i] = gradient.scalars[plane] / divisor
          }
        }
      }
    }
    return dx
  }

  /// Chunks of `CPUPooling.chunkLength`: the plane size alone decides, never the batch or the
  /// core count.
  static func chunking(_ geometry: PoolGeometry) -> Chunking {
    Chunking(length: geometry.spatialSize, chunkLength: CPUPooling.chunkLength)
  }

  /// Runs every chunk of every plane, in parallel. channels-first: `rows` gets ranges of items
  /// (item = plane * chunks + chunk, located by `Chunking.span(of:)`), so short planes run in one
  /// tight loop. channels-last: `tile(offset, length, channelWidth, slot)` runs per (sample, chunk,
  /// tile of `channelTile` channels), `offset` at the tile's first element at the chunk's first
  /// position, `slot` = plane * chunks + chunk of the tile's first channel (the next channel's slot
  /// is `chunks` further).
  private func forEachChunk(
    _ geometry: PoolGeometry, _ chunking: Chunking, rows: (Range<Int>) -> Void,
    tile: (_ offset: Int, _ length: Int, _ channelWidth: Int, _ slot: Int) -> Void
  ) {
    let chunks = chunking.chunks
    let spatial = geometry.spatialSize
    let elementsPerChunk = min(spatial, chunking.chunkLength)
    switch geometry.layout {
    case .channelsFirst:
      parallelFor(geometry.planes * chunks, grain: max(1, 32_768 / elementsPerChunk), rows)
    case .channelsLast:
      let channels = geometry.channels
      let tiles = (channels + CPUPooling.channelTile - 1) / CPUPooling.channelTile
      guard tiles > 0 else { return }
      let work = elementsPerChunk * min(channels, CPUPooling.channelTile)
      parallelFor(geometry.batch * chunks * tiles, grain: max(1, 32_768 / work)) { items in
        for item in items {
          let tileIndex = item % tiles, chunk = (item / tiles) % chunks, n = item / (tiles * chunks)
          let c0 = tileIndex * CPUPooling.channelTile
          let begin = chunk * chunking.chunkLength
          tile(
            (n * spatial + begin) * channels + c0, min(chunking.chunkLength, spatial - begin),
            min(CPUPooling.channelTile, channels - c0), (n * channels + c0) * chunks + chunk)
        }
      }
    }
  }

  // MARK: Dense and the fused head

  public func computeDense<S: StorageScalar>(
    _ input: TypedTensor<S>, _ weight: TypedTensor<S>, _ bias: TypedTensor<S>?, _ geometry: DenseGeometry,
    _ activation: Activation
  ) throws -> [S] {
    try product(input, weight, bias, pool: nil, geometry, activation)
  }

  /// The head fused: blocks of samples are pooled into a scratch block that feeds the product
  /// straight away, so the [N, C] intermediate never exists whole and never leaves the call.
  public func computeHead<S: StorageScalar>(
    _ features: TypedTensor<S>, _ pool: PoolGeometry, _ weight: TypedTensor<S>, _ bias: TypedTensor<S>?,
    _ geometry: DenseGeometry, _ activation: Activation
  ) throws -> [S] {
    try product(features, weight, bias, pool: pool, geometry, activation)
  }

  /// dense (pool nil) or the fused head in S's arithmetic type: x through `Source`, so the
  /// arithmetic is specialised; a float16 head pools the halves directly.
  private func product<S: StorageScalar>(
    _ x: TypedTensor<S>, _ weight: TypedTensor<S>, _ bias: TypedTensor<S>?, pool: PoolGeometry?,
    _ geometry: DenseGeometry, _ activation: Activation
  ) throws -> [S] {
    try CPUBackend.checkBLAS(geometry)
    return try x.scalars.withUnsafeBufferPointer { buffer in
      switch Source(buffer) {
      case .double(let x):
        let (w, b) = (converted(weight.scalars, to: Double.self), bias.map { converted($0.scalars, to: Double.self) })
        return converted(try product(x, w, b, pool: pool, geometry, activation), to: S.self)
      case .float(let x):
        let (w, b) = (converted(weight.scalars, to: Float.self), bias.map { converted($0.scalars, to: Float.self) })
        return converted(try product(x, w, b, pool: pool, geometry, activation), to: S.self)
      case .half(let halves):
        let (w, b) = (converted(weight.scalars, to: Float.self), bias.map { converted($0.scalars, to: Float.self) })
        guard let pool else {
          let x = HalfConversion.widen(halves)
          return converted(try x.withUnsafeBufferPointer { try product($0, w, b, pool: nil, geometry, activation) }, to: S.self)
        }
        let output = try head(w, b, pool, geometry, activation) { first, rows in
          self.averagePool(halves.baseAddress! + first * pool.channels * pool.spatialSize, rows)
        }
        return converted(output, to: S.self)
      }
    }
  }

  /// Pooled elements per block of the fused head: 2 MiB of float32 (256 rows of ResNet-50's
  /// 2048 channels), still in cache when the product reads them, and enough rows that the GEMM
  /// runs at full speed (64-row blocks measured 15% slower than one call at N = 256).
  public static let headBlockElements = 1 << 19

  private func product<T: NativeScalar & PooledElement>(
    _ x: UnsafeBufferPointer<T>, _ weight: [T], _ bias: [T]?, pool: PoolGeometry?, _ geometry: DenseGeometry,
    _ activation: Activation
  ) throws -> [T] where T.Arithmetic == T {
    guard let pool else {
      var output = outputBuffer(T.self, geometry.rows * geometry.outputs)
      output.withUnsafeMutableBufferPointer { y in denseRows(x.baseAddress, weight, bias, geometry, activation, into: y) }
      return output
    }
    return try head(weight, bias, pool, geometry, activation) { first, rows in
      self.averagePool(x.baseAddress! + first * pool.channels * pool.spatialSize, rows)
    }
  }

  /// The fused head's loop: blocks of rows pooled by `pooledRows(first row, the block's
  /// geometry)` and multiplied straight away.
  private func head<T: NativeScalar>(
    _ weight: [T], _ bias: [T]?, _ pool: PoolGeometry, _ geometry: DenseGeometry, _ activation: Activation,
    pooledRows: (_ first: Int, _ rows: PoolGeometry) throws -> [T]
  ) throws -> [T] {
    let (n, m) = (geometry.rows, geometry.outputs)
    var output = outputBuffer(T.self, n * m)
    let blockRows = max(1, CPUBackend.headBlockElements / pool.channels)
    try output.withUnsafeMutableBufferPointer { y in
      for first in stride(from: 0, to: n, by: blockRows) {
        let rows = min(blockRows, n - first)
        var shape = pool.shape
        shape[0] = rows
        let pooled = try pooledRows(first, try PoolGeometry(shape: shape, layout: pool.layout))
        let block = try DenseGeometry(
          input: [rows, pool.channels], weight: geometry.weightLayout == .inOut ? [pool.channels, m] : [m, pool.channels],
          bias: nil, weightLayout: geometry.weightLayout)
        pooled.withUnsafeBufferPointer { pooledRows in
          denseRows(
            pooledRows.baseAddress, weight, bias, block, activation,
            into: UnsafeMutableBufferPointer(rebasing: y[(first * m)..<((first + rows) * m)]))
        }
      }
    }
    return output
  }

  private static func checkBLAS(_ geometry: DenseGeometry) throws {
    let (n, k, m) = (geometry.rows, geometry.inputs, geometry.outputs)
    guard n <= Int32.max, k <= Int32.max, m <= Int32.max else {
      throw CLPoolError.sizeLimit(
        "dense \(n)x\(k)x\(m) exceeds the BLAS limit of \(Int32.max) per dimension")
    }
  }

  /// y = activation(x · W + b) for the `geometry.rows` rows at x (nil only when there are none)
  /// into y, through BLAS: GEMV for one row, GEMM otherwise.
  private func denseRows<T: NativeScalar>(
    _ x: UnsafePointer<T>?, _ weight: [T], _ bias: [T]?, _ geometry: DenseGeometry, _ activation: Activation,
    into y: UnsafeMutableBufferPointer<T>
  ) {
    let (n, k, m) = (geometry.rows, geometry.inputs, geometry.outputs)
    guard let x, n > 0, m > 0 else { return }
    if let bias {
      for row in 0..<n { _ = UnsafeMutableBufferPointer(rebasing: y[(row * m)..<((row + 1) * m)]).initialize(from: bias) }
    }
    let beta: T = bias == nil ? 0 : 1
    let inOut = geometry.weightLayout == .inOut
    weight.withUnsafeBufferPointer { w in
      if n == 1 {  // batch 1 is a matrix-vector product: y = Wᵀx (in-out) or Wx (out-in)
        T.gemv(
          transpose: inOut, rows: Int32(inOut ? k : m), columns: Int32(inOut ? m : k), a: w.baseAddress!, x: x,
          beta: beta, y: y.baseAddress!)
      } else {
        T.gemm(
          transposeB: !inOut, m: Int32(n), n: Int32(m), k: Int32(k), a: x, lda: Int32(k), b: w.baseAddress!,
          ldb: Int32(inOut ? m : k), beta: beta, c: y.baseAddress!, ldc: Int32(m))
      }
    }
    CPUBackend.activate(y, rows: n, columns: m, activation)
  }

  static func activate<T: NativeScalar>(_ y: UnsafeMutableBufferPointer<T>, rows: Int, columns: Int, _ activation: Activation) {
    switch activation {
    case .none:
      break
    case .relu:
      for i in y.indices where y[i] < 0 { y[i] = 0 }  // NaN stays NaN
    case .sigmoid:
      for i in y.indices { y[i] = 1 / (1 + T.exponential(-y[i])) }
    case .softmax:
      for row in 0..<rows {
        let values = UnsafeMutableBufferPointer(rebasing: y[(row * columns)..<((row + 1) * columns)])
        let top = values.reduce(-T.infinity) { Swift.max($0, $1) }  // NaN reaches all via sum
        var sum: T = 0
        for value in values { sum += T.exponential(value - top) }
        for j in values.indices { values[j] = T.exponential(values[j] - top) / sum }
      }
    }
  }
}
