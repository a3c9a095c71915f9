import CLPoolCPU
import Foundation

/// The native backend: pooling and the dense layer in C kernels (Sources/CLPoolCPU) compiled for
/// baseline x86-64, for AVX2 + FMA + F16C and (the product) AVX-512, picked by cpuid at start-up,
/// run on every core. The
/// product is clpool's own (`CPUDense.swift`) rather than a BLAS library's, because BLAS libraries
/// sum a row differently depending on the batch it is in; this one does not. Always available.
///
/// Thread safety: the backend holds only immutable configuration; every call allocates its own
/// outputs, so concurrent calls are safe (`@unchecked` only because `final class` with `let`s of
/// Sendable types is checked conservatively).
public final class CPUBackend: Backend, @unchecked Sendable {
  public let kind = BackendKind.cpu
  public let deviceName: String
  let options: BackendOptions

  public init(options: BackendOptions = BackendOptions()) {
    self.options = options
    deviceName = "host CPU, \(CPUInfo.activeCores) threads, \(CPUInstructions.name)"
  }

  /// Every storage type: float16 computes in float32.
  public func checkSupport(_ type: ScalarType) throws {}

  /// `count` elements of S for the kernels to fill (poisoned first when the options ask).
  func outputs<S: StorageScalar>(_: S.Type, _ count: Int, _ fill: (UnsafeMutableRawPointer) throws -> Void) rethrows -> [S] {
    try [S](unsafeUninitializedCapacity: count) { buffer, initialized in
      if options.poisonOutputs { buffer.initialize(repeating: S.poison) }
      if let base = buffer.baseAddress { try fill(UnsafeMutableRawPointer(base)) }
      initialized = count
    }
  }

  /// Poisons an output buffer of the caller's when the options ask.
  private func poison(_ values: UnsafeMutableRawBufferPointer, _ type: ScalarType, _ indices: UnsafeMutableBufferPointer<Int64>?) {
    guard options.poisonOutputs else { return }
    func fill<S: StorageScalar>(_: S.Type) { values.bindMemory(to: S.self).initialize(repeating: S.poison) }
    fill(type.staticType)
    indices?.initialize(repeating: BackendOptions.poisonIndex)
  }

  // MARK: Pooling

  public func computePool(
    _ input: UnsafeRawBufferPointer, _ type: ScalarType, _ geometry: PoolGeometry, _ operation: PoolOperation,
    into values: UnsafeMutableRawBufferPointer, indices: UnsafeMutableBufferPointer<Int64>?
  ) throws {
    poison(values, type, indices)
    CPUPooling.pool(
      input.baseAddress!, type, geometry, average: operation == .average, into: values.baseAddress!,
      indices: indices?.baseAddress)
  }

  /// Each sample pooled over its own extent, one after another (each on every core).
  public func computePool<S: StorageScalar>(_ batch: RaggedBatch<S>, _ operation: PoolOperation, returnIndices: Bool)
    throws -> PooledPlanes<S>
  {
    let c = batch.channels
    let geometries = try (0..<batch.count).map { try batch.geometry(of: $0) }
    var indices = [Int64](repeating: options.poisonOutputs ? BackendOptions.poisonIndex : 0, count: returnIndices ? batch.count * c : 0)
    let width = S.scalarType.byteWidth
    let values = batch.scalars.withUnsafeBytes { x in
      indices.withUnsafeMutableBufferPointer { positions in
        outputs(S.self, batch.count * c) { out in
          for (n, geometry) in geometries.enumerated() {
            CPUPooling.pool(
              x.baseAddress! + batch.offsets[n] * width, S.scalarType, geometry, average: operation == .average,
              into: out + n * c * width, indices: returnIndices ? positions.baseAddress! + n * c : nil)
          }
        }
      }
    }
    return PooledPlanes(values: values, indices: returnIndices ? indices : nil)
  }

  public func computePoolBackward(_ gradient: Tensor, indices: [Int64]?, _ geometry: PoolGeometry) throws -> [Float] {
    let divisor = Float(geometry.spatialSize)
    return outputs(Float.self, geometry.planes * geometry.spatialSize) { raw in
      let out = raw.assumingMemoryBound(to: Float.self)
      parallelFor(geometry.planes * geometry.spatialSize, grain: 1 << 16) { range in
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
  }

  // MARK: Dense and the fused head

  public func computeDense(
    _ input: UnsafeRawBufferPointer, _ weight: UnsafeRawBufferPointer, _ bias: UnsafeRawBufferPointer?,
    _ type: ScalarType, _ geometry: DenseGeometry, _ activation: Activation, into output: UnsafeMutableRawBufferPointer
  ) throws {
    poison(output, type, nil)
    let product = try CPUDense(weight, bias, type, geometry)
    try product.rows(of: input.baseAddress!, count: geometry.rows, activation, into: output.baseAddress!)
  }

  /// Pooled elements per block of the fused head: 2 MiB of float32 (256 rows of ResNet-50's
  /// 2048 channels), still in cache when the product reads them.
  public static let headBlockElements = 1 << 19

  /// The head fused: blocks of samples are pooled into a scratch block that feeds the product
  /// straight away, so the [N, C] intermediate never exists whole and never leaves the call.
  /// The pooled rows are stored in the storage type, as an unfused GAP's output would be.
  public func computeHead(
    _ features: UnsafeRawBufferPointer, _ pool: PoolGeometry, _ weight: UnsafeRawBufferPointer,
    _ bias: UnsafeRawBufferPointer?, _ type: ScalarType, _ geometry: DenseGeometry, _ activation: Activation,
    into output: UnsafeMutableRawBufferPointer
  ) throws {
    poison(output, type, nil)
    let product = try CPUDense(weight, bias, type, geometry)
    let (n, c, m) = (geometry.rows, pool.channels, geometry.outputs)
    let width = type.byteWidth
    let blockRows = max(1, Self.headBlockElements / max(c, 1))
    let pooled = UnsafeMutableRawPointer.allocate(byteCount: min(blockRows, n) * c * width, alignment: 64)
    defer { pooled.deallocate() }
    let sampleBytes = pool.channels * pool.spatialSize * width
    for first in stride(from: 0, to: n, by: blockRows) {
      let rows = min(blockRows, n - first)
      let block = try pool.samples(first..<(first + rows))
      CPUPooling.pool(features.baseAddress! + first * sampleBytes, type, block, average: true, into: pooled, indices: nil)
      try product.rows(of: pooled, count: rows, activation, into: output.baseAddress! + first * m * width)
    }
  }
}
