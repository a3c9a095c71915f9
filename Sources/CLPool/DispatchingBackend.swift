/// What `auto` returns when it picks an OpenCL GPU or accelerator: a call runs on the device unless
/// it is too small to pay for a device launch (and, for host tensors, the trip over the bus), in
/// which case the CPU backend runs it. Where a call goes follows `DispatchRule`, a rule per
/// operation written down from the call's size, never a timing, so the same call goes the same
/// way in every process and gives the same bits. `backend(for:)` says where a call goes; the CLI
/// reports that backend, and its stream, shard and MPI paths route a whole job once. Device
/// tensors (`device.upload`) always stay on the device: use `device` for them.
///
/// Thread safety: both backends are thread-safe and the rule is immutable.
public final class DispatchingBackend: Backend, @unchecked Sendable {
  public let device: OpenCLBackend
  public let cpu: CPUBackend
  public let rule: DispatchRule

  public var kind: BackendKind { .opencl }
  public var deviceName: String { "\(device.deviceName); \(rule.description) on the CPU" }

  public init(device: OpenCLBackend, cpu: CPUBackend, rule: DispatchRule = DispatchRule()) {
    self.device = device
    self.cpu = cpu
    self.rule = rule
  }

  public func backend(for work: Work) -> any Backend { rule.runsOnDevice(work) ? device : cpu }

  /// Both backends must have the type: the call may go to either.
  public func checkSupport(_ type: ScalarType) throws {
    try device.checkSupport(type)
    try cpu.checkSupport(type)
  }

  public func computePool(
    _ input: UnsafeRawBufferPointer, _ type: ScalarType, _ geometry: PoolGeometry, _ operation: PoolOperation,
    into values: UnsafeMutableRawBufferPointer, indices: UnsafeMutableBufferPointer<Int64>?
  ) throws {
    try backend(for: .pool(elements: geometry.planes * geometry.spatialSize))
      .computePool(input, type, geometry, operation, into: values, indices: indices)
  }

  public func computePool<S: StorageScalar>(_ batch: RaggedBatch<S>, _ operation: PoolOperation, returnIndices: Bool)
    throws -> PooledPlanes<S>
  {
    try backend(for: .pool(elements: batch.scalars.count)).computePool(batch, operation, returnIndices: returnIndices)
  }

  public func computeDense(
    _ input: UnsafeRawBufferPointer, _ weight: UnsafeRawBufferPointer, _ bias: UnsafeRawBufferPointer?,
    _ type: ScalarType, _ geometry: DenseGeometry, _ activation: Activation, into output: UnsafeMutableRawBufferPointer
  ) throws {
    try backend(for: .dense(geometry)).computeDense(input, weight, bias, type, geometry, activation, into: output)
  }

  public func computeHead(
    _ features: UnsafeRawBufferPointer, _ pool: PoolGeometry, _ weight: UnsafeRawBufferPointer,
    _ bias: UnsafeRawBufferPointer?, _ type: ScalarType, _ geometry: DenseGeometry, _ activation: Activation,
    into output: UnsafeMutableRawBufferPointer
  ) throws {
    try backend(for: .head(pool, geometry)).computeHead(features, pool, weight, bias, type, geometry, activation, into: output)
  }

  public func computePoolBackward(_ gradient: Tensor, indices: [Int64]?, _ geometry: PoolGeometry) throws -> [Float] {
    try backend(for: .pool(elements: geometry.planes * geometry.spatialSize))
      .computePoolBackward(gradient, indices: indices, geometry)
  }
}

/// The size of a call, as `DispatchRule` weighs it.
public enum Work: Sendable {
  /// Pooling (forward, ragged or backward) over this many input elements.
  case pool(elements: Int)
  case dense(DenseGeometry)
  case head(PoolGeometry, DenseGeometry)

  /// Multiply-adds of the product (dense, head), or 0.
  var multiplyAdds: Double {
    switch self {
    case .pool: return 0
    case .dense(let geometry), .head(_, let geometry):
      return Double(geometry.rows) * Double(geometry.inputs) * Double(geometry.outputs)
    }
  }
}

/// Where `DispatchingBackend` runs a call: on the device from a fixed size per operation up,
/// below it on the CPU. Pooling is bound by memory, so it pays for a launch and a copy over the
/// bus only from millions of elements; dense and the head are bound by arithmetic, so they go
/// to the device once the product has tens of millions of multiply-adds (the ResNet-50 head
/// from about N = 16), whatever the pooling part adds. The numbers are a rule, not a timing:
/// every process decides alike. `scripts/gpu-check` measures the break-even of each operation
/// on a real GPU, which is how these numbers are to be revised.
public struct DispatchRule: Equatable, Sendable, CustomStringConvertible {
  /// Pooling calls with at least this many input elements run on the device.
  public var poolElements: Int
  /// Dense and head calls with at least this many multiply-adds run on the device.
  public var multiplyAdds: Double

  public init(poolElements: Int = 1 << 21, multiplyAdds: Double = 32_000_000) {
    self.poolElements = poolElements
    self.multiplyAdds = multiplyAdds
  }

  /// Every call on the device, or every call on the CPU.
  public static let deviceOnly = DispatchRule(poolElements: 0, multiplyAdds: 0)
  public static let cpuOnly = DispatchRule(poolElements: .max, multiplyAdds: .infinity)

  public func runsOnDevice(_ work: Work) -> Bool {
    switch work {
    case .pool(let elements): return elements >= poolElements
    case .dense, .head: return work.multiplyAdds >= multiplyAdds
    }
  }

  public var description: String {
    switch self {
    case .deviceOnly: return "no call"
    case .cpuOnly: return "every call"
    default: return "pooling under \(poolElements) elements and products under \(Int(multiplyAdds)) multiply-adds"
    }
  }
}
