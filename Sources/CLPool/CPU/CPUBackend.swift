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

  private func outputBuffer(_ count: Int) -> [Float] {
    [Float](repeating: options.poisonOutputs ? BackendOptions.poison : 0, count: count)
  }

  // MARK: Pooling

  public func globalAveragePool(_ input: Tensor, layout: Layout, keepDims: Bool) throws -> Tensor {
    let geometry = try PoolGeometry(shape: input.shape, layout: layout)
    var output = outputBuffer(geometry.planes)
    let chunking = CPUBackend.chunking(geometry)
    let chunks = chunking.chunks
    var partials = [Float](repeating: 0, count: geometry.planes * chunks)
    input.scalars.withUnsafeBufferPointer { x in
      partials.withUnsafeMutableBufferPointer { partial in
        forEachChunk(geometry, chunking) { offset, length, channelWidth, slot in
          if geometry.layout == .channelsFirst {
            partial[slot] = CPUPooling.sum(x.baseAddress! + offset, count: length)
          } else {
            CPUPooling.sumChannels(
              x.baseAddress! + offset, width: channelWidth, count: length,
              stride: geometry.channels, into: partial.baseAddress! + slot, outStride: chunks)
          }
        }
      }
    }
    let divisor = Float(geometry.spatialSize)
    for plane in 0..<geometry.planes {
      var total = CompensatedSum()
      for chunk in 0..<chunks { total.add(partials[plane * chunks + chunk]) }
      output[plane] = total.sum / divisor
    }
    return try Tensor(shape: geometry.outputShape(keepDims: keepDims), scalars: output)
  }

  public func globalMaxPool(
    _ input: Tensor, layout: Layout, keepDims: Bool, returnIndices: Bool
  ) throws -> MaxPoolResult {
    let geometry = try PoolGeometry(shape: input.shape, layout: layout)
    var output = outputBuffer(geometry.planes)
    var indices = [Int64](
      repeating: options.poisonOutputs ? BackendOptions.poisonIndex : 0,
      count: returnIndices ? geometry.planes : 0)
    let chunking = CPUBackend.chunking(geometry)
    let chunks = chunking.chunks
    var partials = [Float](repeating: 0, count: geometry.planes * chunks)
    var partialIndices = [Int64](repeating: 0, count: geometry.planes * chunks)
    input.scalars.withUnsafeBufferPointer { x in
      partials.withUnsafeMutableBufferPointer { partial in
        partialIndices.withUnsafeMutableBufferPointer { partialIndex in
          forEachChunk(geometry, chunking) { offset, length, channelWidth, slot in
            let chunkBegin = (slot % chunks) * chunking.chunkLength
            if geometry.layout == .channelsFirst {
              let (value, index) = CPUPooling.max(x.baseAddress! + offset, count: length)
              partial[slot] = value
              partialIndex[slot] = Int64(chunkBegin + index)
            } else {
              CPUPooling.maxChannels(
                x.baseAddress! + offset, width: channelWidth, count: length,
                stride: geometry.channels, into: partial.baseAddress! + slot,
                indices: partialIndex.baseAddress! + slot, outStride: chunks)
              for c in 0..<channelWidth { partialIndex[slot + c * chunks] += Int64(chunkBegin) }
            }
          }
        }
      }
    }
    for plane in 0..<geometry.planes {
      var best = partials[plane * chunks]
      var bestIndex = Int(partialIndices[plane * chunks])
      for chunk in 1..<max(chunks, 1) {
        let slot = plane * chunks + chunk
        if maxIsBetter(partials[slot], Int(partialIndices[slot]), than: best, bestIndex) {
          best = partials[slot]
          bestIndex = Int(partialIndices[slot])
        }
      }
      output[plane] = best
      if returnIndices { indices[plane] = Int64(bestIndex) }
    }
    return MaxPoolResult(
      values: try Tensor(shape: geometry.outputShape(keepDims: keepDims), scalars: output),
      indices: returnIndices ? indices : nil)
  }

  static func chunking(_ geometry: PoolGeometry) -> Chunking {
    Chunking(
      length: geometry.spatialSize, maximumChunks: Int.max,
      minimumChunkLength: CPUPooling.chunkLength, granule: CPUPooling.block)
  }

  /// Calls `body(offset, length, channelWidth, slot)` for every chunk of every plane, in parallel.
  /// channels-first: one call per (plane, chunk), `offset` of its first element, width 1.
  /// channels-last: one call per (sample, chunk, tile of `channelTile` channels), `offset` of the
  /// tile's first element at the chunk's first position. `slot` = plane * chunks + chunk of the
  /// first plane covered; a tile's channels follow every `chunks` slots.
  private func forEachChunk(
    _ geometry: PoolGeometry, _ chunking: Chunking,
    _ body: (_ offset: Int, _ length: Int, _ channelWidth: Int, _ slot: Int) -> Void
  ) {
    let chunks = chunking.chunks
    let spatial = geometry.spatialSize
    let elementsPerChunk = min(spatial, chunking.chunkLength)
    switch geometry.layout {
    case .channelsFirst:
      parallelFor(geometry.planes * chunks, grain: max(1, 32_768 / elementsPerChunk)) { items in
        for item in items {
          let plane = item / chunks, chunk = item % chunks
          let begin = chunk * chunking.chunkLength
          body(plane * spatial + begin, min(chunking.chunkLength, spatial - begin), 1, item)
        }
      }
    case .channelsLast:
      let channels = geometry.channels
      let tiles = (channels + CPUPooling.channelTile - 1) / CPUPooling.channelTile
      guard tiles > 0 else { return }
      let work = elementsPerChunk * min(channels, CPUPooling.channelTile)
      parallelFor(geometry.batch * chunks * tiles, grain: max(1, 32_768 / work)) { items in
        for item in items {
          let tile = item % tiles, chunk = (item / tiles) % chunks, n = item / (tiles * chunks)
          let c0 = tile * CPUPooling.channelTile
          let begin = chunk * chunking.chunkLength
          body(
            (n * spatial + begin) * channels + c0, min(chunking.chunkLength, spatial - begin),
            min(CPUPooling.channelTile, channels - c0), (n * channels + c0) * chunks + chunk)
        }
      }
    }
  }

  // MARK: Dense

  public func dense(
    _ input: Tensor, weight: Tensor, bias: Tensor?, weightLayout: WeightLayout,
    activation: Activation
  ) throws -> Tensor {
    let geometry = try DenseGeometry(
      input: input.shape, weight: weight.shape, bias: bias?.shape, weightLayout: weightLayout)
    let (n, k, m) = (geometry.rows, geometry.inputs, geometry.outputs)
    guard n <= Int32.max, k <= Int32.max, m <= Int32.max else {
      throw CLPoolError.sizeLimit(
        "dense \(n)x\(k)x\(m) exceeds the BLAS limit of \(Int32.max) per dimension")
    }
    var output = outputBuffer(n * m)
    guard n > 0, m > 0 else { return try Tensor(shape: geometry.outputShape, scalars: output) }
    if let bias {
      for row in 0..<n {
        output.withUnsafeMutableBufferPointer { y in
          _ = UnsafeMutableBufferPointer(rebasing: y[(row * m)..<((row + 1) * m)])
            .initialize(from: bias.scalars)
        }
      }
    }
    let transposeWeight = weightLayout == .outIn ? CblasTrans : CblasNoTrans
    input.scalars.withUnsafeBufferPointer { x in
      weight.scalars.withUnsafeBufferPointer { w in
        output.withUnsafeMutableBufferPointer { y in
          cblas_sgemm(
            CblasRowMajor, CblasNoTrans, transposeWeight, Int32(n), Int32(m), Int32(k), 1,
            x.baseAddress, Int32(k), w.baseAddress, Int32(weightLayout == .inOut ? m : k),
            bias == nil ? 0 : 1, y.baseAddress, Int32(m))
        }
      }
    }
    CPUBackend.activate(&output, rows: n, columns: m, activation)
    return try Tensor(shape: geometry.outputShape, scalars: output)
  }

  static func activate(_ y: inout [Float], rows: Int, columns: Int, _ activation: Activation) {
    switch activation {
    case .none:
      break
    case .relu:
      for i in y.indices where y[i] < 0 { y[i] = 0 }  // NaN stays NaN
    case .sigmoid:
      for i in y.indices { y[i] = 1 / (1 + Foundation.exp(-y[i])) }
    case .softmax:
      y.withUnsafeMutableBufferPointer { buffer in
        for row in 0..<rows {
          let values = UnsafeMutableBufferPointer(rebasing: buffer[(row * columns)..<((row + 1) * columns)])
          let top = values.reduce(-Float.infinity) { Swift.max($0, $1) }  // NaN reaches all via sum
          var sum: Float = 0
          for value in values { sum += Foundation.exp(value - top) }
          for j in values.indices { values[j] = Foundation.exp(values[j] - top) / sum }
        }
      }
    }
  }
}
