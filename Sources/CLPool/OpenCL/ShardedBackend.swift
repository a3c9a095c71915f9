import Dispatch
import Foundation

/// Every selected OpenCL device of a host on one call (`--device all`): a batch is split into
/// ranges of whole samples, one per device, in proportion to each device's throughput (measured
/// once, when the backend is made), computed concurrently and gathered in order. A sample's result
/// does not depend on the batch it is in (SPEC), and every shard computes the same bits (one
/// `computationKey`: devices of one OpenCL implementation and type), so the split changes no bit:
/// the result is the one a single device gives. Ragged batches split by samples too; the backward
/// passes run on the first device.
///
/// Thread safety: the shard backends are thread-safe and the split is immutable.
public final class ShardedBackend: Backend, @unchecked Sendable {
  public let shards: [OpenCLBackend]
  /// Each shard's share of a batch (summing to 1), from its measured pooling throughput.
  public let shares: [Double]

  public var kind: BackendKind { .opencl }
  public var deviceName: String {
    zip(shards, shares).map { "\($0.device.index): \($0.deviceName) \(Int(($1 * 100).rounded()))%" }.joined(separator: ", ")
  }

  /// - Parameters:
  ///   - shards: one backend per device, each batch split among them in order.
  ///   - shares: each shard's share (nil measures them: GAP of 64 samples [512, 7, 7] on each
  ///     device, best of three: large enough that launch overheads do not decide).
  /// - Throws: `invalidConfiguration` for shards that compute different bits (another OpenCL
  ///   implementation or device type): the bits would then depend on the split.
  public init(_ shards: [OpenCLBackend], shares: [Double]? = nil) throws {
    guard !shards.isEmpty else { throw CLPoolError.unavailable("no OpenCL device to shard over") }
    if let other = shards.first(where: { $0.computationKey != shards[0].computationKey }) {
      throw CLPoolError.invalidConfiguration(
        "devices \(shards[0].device.index) (\(shards[0].deviceName)) and \(other.device.index) (\(other.deviceName)) compute "
          + "different bits; a batch is split only over devices of one OpenCL implementation and type, so that the split "
          + "changes no bit")
    }
    self.shards = shards
    let rates = try shares ?? shards.map(Self.measure)
    let total = rates.reduce(0, +)
    self.shares = rates.map { total > 0 ? $0 / total : 1 / Double(rates.count) }
  }

  /// Samples per second of a small fixed pooling call on `backend`.
  private static func measure(_ backend: OpenCLBackend) throws -> Double {
    let x = try Tensor(shape: [64, 512, 7, 7], repeating: 1)
    _ = try backend.globalAveragePool(x)
    var best = Double.infinity
    for _ in 0..<3 {
      let start = DispatchTime.now().uptimeNanoseconds
      _ = try backend.globalAveragePool(x)
      best = min(best, Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9)
    }
    return 64 / max(best, 1e-9)
  }

  /// Sample ranges of a batch of `count`, one per shard (possibly empty), in order.
  public func ranges(_ count: Int) -> [Range<Int>] {
    var bounds = [0]
    var cumulative = 0.0
    for share in shares.dropLast() {
      cumulative += share
      bounds.append(min(count, max(bounds.last!, Int((cumulative * Double(count)).rounded()))))
    }
    bounds.append(count)
    return (0..<shards.count).map { bounds[$0]..<bounds[$0 + 1] }
  }

  /// Runs `work(shard, samples)` on every shard with a non-empty range, concurrently; the first
  /// error wins.
  private func split(_ count: Int, _ work: (OpenCLBackend, Range<Int>) throws -> Void) throws {
    let parts = Array(zip(shards, ranges(count)).filter { !$0.1.isEmpty })
    let errors = LockedValue<[any Error]>([])
    withoutActuallyEscaping(work) { work in
      let shared = UncheckedSendable(work)
      DispatchQueue.concurrentPerform(iterations: parts.count) { index in
        do {
          try shared.value(parts[index].0, parts[index].1)
        } catch {
          errors.withLock { $0.append(error) }
        }
      }
    }
    if let first = errors.withLock({ $0.first }) { throw first }
  }

  public func checkSupport(_ type: ScalarType) throws {
    for shard in shards { try shard.checkSupport(type) }
  }

  public func computePool(
    _ input: UnsafeRawBufferPointer, _ type: ScalarType, _ geometry: PoolGeometry, _ operation: PoolOperation,
    into values: UnsafeMutableRawBufferPointer, indices: UnsafeMutableBufferPointer<Int64>?
  ) throws {
    let (sampleBytes, c, width) = (geometry.channels * geometry.spatialSize * type.byteWidth, geometry.channels, type.byteWidth)
    try split(geometry.batch) { shard, samples in
      try shard.computePool(
        input.rows(samples, of: sampleBytes), type, try geometry.samples(samples), operation,
        into: values.rows(samples, of: c * width),
        indices: indices.map { UnsafeMutableBufferPointer(rebasing: $0[(samples.lowerBound * c)..<(samples.upperBound * c)]) })
    }
  }

  public func computePool<S: StorageScalar>(_ batch: RaggedBatch<S>, _ operation: PoolOperation, returnIndices: Bool)
    throws -> PooledPlanes<S>
  {
    let c = batch.channels
    let parts = LockedValue<[Int: PooledPlanes<S>]>([:])
    try split(batch.count) { shard, samples in
      let part = try RaggedBatch(
        packed: batch.scalars, channels: c, extents: Array(batch.extents[samples]), offsets: Array(batch.offsets[samples]),
        layout: batch.layout)
      let result = try shard.computePool(part, operation, returnIndices: returnIndices)
      parts.withLock { $0[samples.lowerBound] = result }
    }
    let ordered = parts.withLock { $0 }.sorted { $0.key < $1.key }.map(\.value)
    return PooledPlanes(
      values: ordered.flatMap(\.values), indices: returnIndices ? ordered.flatMap { $0.indices ?? [] } : nil)
  }

  public func computeDense(
    _ input: UnsafeRawBufferPointer, _ weight: UnsafeRawBufferPointer, _ bias: UnsafeRawBufferPointer?,
    _ type: ScalarType, _ geometry: DenseGeometry, _ activation: Activation, into output: UnsafeMutableRawBufferPointer
  ) throws {
    let (k, m, width) = (geometry.inputs, geometry.outputs, type.byteWidth)
    try split(geometry.rows) { shard, rows in
      try shard.computeDense(
        input.rows(rows, of: k * width), weight, bias, type, try geometry.rows(rows.count), activation,
        into: output.rows(rows, of: m * width))
    }
  }

  public func computeHead(
    _ features: UnsafeRawBufferPointer, _ pool: PoolGeometry, _ weight: UnsafeRawBufferPointer,
    _ bias: UnsafeRawBufferPointer?, _ type: ScalarType, _ geometry: DenseGeometry, _ activation: Activation,
    into output: UnsafeMutableRawBufferPointer
  ) throws {
    let (sampleBytes, m, width) = (pool.channels * pool.spatialSize * type.byteWidth, geometry.outputs, type.byteWidth)
    try split(geometry.rows) { shard, rows in
      try shard.computeHead(
        features.rows(rows, of: sampleBytes), try pool.samples(rows), weight, bias, type, try geometry.rows(rows.count),
        activation, into: output.rows(rows, of: m * width))
    }
  }

  public func computePoolBackward(_ gradient: Tensor, indices: [Int64]?, _ geometry: PoolGeometry) throws -> [Float] {
    try shards[0].computePoolBackward(gradient, indices: indices, geometry)
  }
}

extension DenseGeometry {
  /// The same layer for `count` rows.
  func rows(_ count: Int) throws -> DenseGeometry {
    try DenseGeometry(
      input: [count, inputs], weight: weightLayout == .inOut ? [inputs, outputs] : [outputs, inputs], bias: nil,
      weightLayout: weightLayout)
  }
}

/// The bytes of rows `range` of a buffer whose rows are `bytes` long: a shard's part of a batch.
extension UnsafeRawBufferPointer {
  fileprivate func rows(_ range: Range<Int>, of bytes: Int) -> UnsafeRawBufferPointer {
    UnsafeRawBufferPointer(rebasing: self[(range.lowerBound * bytes)..<(range.upperBound * bytes)])
  }
}

extension UnsafeMutableRawBufferPointer {
  fileprivate func rows(_ range: Range<Int>, of bytes: Int) -> UnsafeMutableRawBufferPointer {
    UnsafeMutableRawBufferPointer(rebasing: self[(range.lowerBound * bytes)..<(range.upperBound * bytes)])
  }
}
