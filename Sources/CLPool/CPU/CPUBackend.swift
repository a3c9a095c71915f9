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
    let chunking = CPUBackend.chunking(geometry)
    let chunks = chunking.chunks
    let divisor = Float(geometry.spatialSize)
    // With one chunk per plane the partial sums are the outputs: the row loop takes the mean.
    let partialDivisor: Float = chunks == 1 ? divisor : 1
    var partials = outputBuffer(geometry.planes * chunks)
    input.scalars.withUnsafeBufferPointer { x in
      partials.withUnsafeMutableBufferPointer { partial in
        forEachChunk(
          geometry, chunking,
          rows: { items in
            for item in items {
              let (offset, length) = chunking.span(of: item)
              partial[item] = CPUPooling.sum(x.baseAddress! + offset, count: length) / partialDivisor
            }
          },
          tile: { offset, length, channelWidth, slot in
            CPUPooling.sumChannels(
              x.baseAddress! + offset, width: channelWidth, count: length, stride: geometry.channels,
              into: partial.baseAddress! + slot, outStride: chunks, divisor: partialDivisor)
          })
      }
    }
    var output = partials
    if chunks > 1 {
      output = outputBuffer(geometry.planes)
      for plane in 0..<geometry.planes {
        var total = CompensatedSum()
        for chunk in 0..<chunks { total.add(partials[plane * chunks + chunk]) }
        output[plane] = total.sum / divisor
      }
    }
    return try Tensor(shape: geometry.outputShape(keepDims: keepDims), scalars: output)
  }

  public func globalMaxPool(
    _ input: Tensor, layout: Layout, keepDims: Bool, returnIndices: Bool
  ) throws -> MaxPoolResult {
    let geometry = try PoolGeometry(shape: input.shape, layout: layout)
    let chunking = CPUBackend.chunking(geometry)
    let chunks = chunking.chunks
    // Partial maxima per (plane, chunk); with one chunk they are the outputs. Positions are
    // needed to combine chunks.
    let needIndex = returnIndices || chunks > 1
    var partials = outputBuffer(geometry.planes * chunks)
    var partialIndices = [Int64](
      repeating: options.poisonOutputs ? BackendOptions.poisonIndex : 0,
      count: needIndex ? geometry.planes * chunks : 0)
    input.scalars.withUnsafeBufferPointer { x in
      partials.withUnsafeMutableBufferPointer { partial in
        partialIndices.withUnsafeMutableBufferPointer { partialIndex in
          forEachChunk(
            geometry, chunking,
            rows: { items in
              for item in items {
                let (offset, length) = chunking.span(of: item)
                let (value, index) = CPUPooling.max(x.baseAddress! + offset, count: length, needIndex: needIndex)
                partial[item] = value
                if needIndex { partialIndex[item] = Int64((item % chunks) * chunking.chunkLength + index) }
              }
            },
            tile: { offset, length, channelWidth, slot in
              CPUPooling.maxChannels(
                x.baseAddress! + offset, width: channelWidth, count: length,
                stride: geometry.channels, into: partial.baseAddress! + slot,
                indices: needIndex ? partialIndex.baseAddress! + slot : nil, outStride: chunks)
              if needIndex {
                let chunkBegin = Int64((slot % chunks) * chunking.chunkLength)
                for c in 0..<channelWidth { partialIndex[slot + c * chunks] += chunkBegin }
              }
            })
        }
      }
    }
    guard chunks > 1 else {
      return MaxPoolResult(
        values: try Tensor(shape: geometry.outputShape(keepDims: keepDims), scalars: partials),
        indices: returnIndices ? partialIndices : nil)
    }
    var output = outputBuffer(geometry.planes)
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
    return MaxPoolResult(
      values: try Tensor(shape: geometry.outputShape(keepDims: keepDims), scalars: output),
      indices: returnIndices ? indices : nil)
  }

  public func globalAveragePoolBackward(_ gradient: Tensor, inputShape: [Int], layout: Layout) throws -> Tensor {
    let geometry = try PoolGeometry(gradient: gradient.shape, inputShape: inputShape, layout: layout)
    let divisor = Float(geometry.spatialSize)
    var dx = outputBuffer(try Tensor.elementCount(of: inputShape))
    dx.withUnsafeMutableBufferPointer { out in
      parallelFor(out.count, grain: 1 << 16) { range in
        for i in range { out[i] = gradient.scalars[geometry.planeAndPosition(of: i).plane] / divisor }
      }
    }
    return try Tensor(shape: inputShape, scalars: dx)
  }

  public func globalMaxPoolBackward(
    _ gradient: Tensor, indices: [Int64], inputShape: [Int], layout: Layout
  ) throws -> Tensor {
    let geometry = try PoolGeometry(gradient: gradient.shape, inputShape: inputShape, layout: layout, indices: indices)
    var dx = outputBuffer(try Tensor.elementCount(of: inputShape))
    dx.withUnsafeMutableBufferPointer { out in
      parallelFor(out.count, grain: 1 << 16) { range in
        for i in range {
          let (plane, position) = geometry.planeAndPosition(of: i)
          out[i] = Int64(position) == indices[plane] ? gradient.scalars[plane] : 0
        }
      }
    }
    return try Tensor(shape: inputShape, scalars: dx)
  }

  static func chunking(_ geometry: PoolGeometry) -> Chunking {
    Chunking(
      length: geometry.spatialSize, maximumChunks: Int.max,
      minimumChunkLength: CPUPooling.chunkLength, granule: CPUPooling.block)
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
    let beta: Float = bias == nil ? 0 : 1
    input.scalars.withUnsafeBufferPointer { x in
      weight.scalars.withUnsafeBufferPointer { w in
        output.withUnsafeMutableBufferPointer { y in
          if n == 1 {  // batch 1 is a matrix-vector product: y = Wᵀx (in-out) or Wx (out-in)
            let (rows, columns) = weightLayout == .inOut ? (k, m) : (m, k)
            cblas_sgemv(
              CblasRowMajor, weightLayout == .inOut ? CblasTrans : CblasNoTrans, Int32(rows),
              Int32(columns), 1, w.baseAddress, Int32(columns), x.baseAddress, 1, beta, y.baseAddress, 1)
          } else {
            cblas_sgemm(
              CblasRowMajor, CblasNoTrans, transposeWeight, Int32(n), Int32(m), Int32(k), 1,
              x.baseAddress, Int32(k), w.baseAddress, Int32(weightLayout == .inOut ? m : k), beta,
              y.baseAddress, Int32(m))
          }
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
