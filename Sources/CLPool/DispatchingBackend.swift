import CLPoolCPU

/// What `auto` returns when it picks an OpenCL GPU or accelerator. Every call gives the bits the
/// CPU backend gives, so a sample's output never depends on the batch it came in, although calls
/// of different sizes run on different processors (batch invariance):
/// - pooling (forward, ragged, backward) runs on the CPU: it reads each input byte once, and a host
///   tensor would first have to cross to the device, at no more than the CPU's own read rate;
/// - a product of at least `rule.multiplyAdds` multiply-adds (dense, or the head's dense after the
///   CPU's pooling) runs on the device, whose kernels compute the CPU's fma chains bit for bit
///   (in float32 for float16 storage, the CPU's arithmetic); the CPU then applies the activation,
///   since exponentials differ between implementations. A smaller product runs on the CPU.
/// Two exceptions keep a sample's bits independent of the batch all the same: a CPU without fma
/// (the baseline build, every host but x86-64) rounds each step of its chains, so there every
/// product runs on the device and gives the device's bits (unless the rule is `cpuOnly`); and a
/// device built with another `-DK_BLOCK` folds its chains in other blocks, so there every product
/// runs on the CPU. A product the device cannot hold (its allocation limit) runs on the CPU too.
/// Where a call goes follows the rule, written down from the call's size, never a timing.
/// `backend(for:)` says where a call goes; the CLI reports that backend. Device tensors
/// (`device.upload`) always stay on the device: use `device` for them.
///
/// Thread safety: both backends are thread-safe and the rule is immutable.
public final class DispatchingBackend: Backend, @unchecked Sendable {
  public let device: OpenCLBackend
  public let cpu: CPUBackend
  /// The rule in force: the one given; `deviceOnly` on a CPU without fma; `cpuOnly` for a device
  /// whose products fold in other blocks than the CPU's.
  public let rule: DispatchRule

  public var kind: BackendKind { .opencl }
  public var deviceName: String { "\(device.deviceName); pooling and \(rule.description) on the CPU" }

  public init(device: OpenCLBackend, cpu: CPUBackend, rule: DispatchRule = DispatchRule()) {
    self.device = device
    self.cpu = cpu
    if !device.foldsProductsAsTheCPU {
      self.rule = .cpuOnly
    } else if clpool_cpu_isa() == Int32(CLPOOL_ISA_BASELINE) && rule != .cpuOnly {
      self.rule = .deviceOnly
    } else {
      self.rule = rule
    }
  }

  /// The CPU backend for pooling and small products; this backend itself for a product it splits
  /// between the device and the CPU.
  public func backend(for work: Work) -> any Backend {
    if case .pool = work { return cpu }
    return rule.runsOnDevice(work) ? self : cpu
  }

  /// Both backends must have the type: the call may go to either.
  public func checkSupport(_ type: ScalarType) throws {
    try device.checkSupport(type)
    try cpu.checkSupport(type)
  }

  public func computePool(
    _ input: UnsafeRawBufferPointer, _ type: ScalarType, _ geometry: PoolGeometry, _ operation: PoolOperation,
    into values: UnsafeMutableRawBufferPointer, indices: UnsafeMutableBufferPointer<Int64>?
  ) throws {
    try cpu.computePool(input, type, geometry, operation, into: values, indices: indices)
  }

  public func computePool<S: StorageScalar>(_ batch: RaggedBatch<S>, _ operation: PoolOperation, returnIndices: Bool)
    throws -> PooledPlanes<S>
  {
    try cpu.computePool(batch, operation, returnIndices: returnIndices)
  }

  public func computeDense(
    _ input: UnsafeRawBufferPointer, _ weight: UnsafeRawBufferPointer, _ bias: UnsafeRawBufferPointer?,
    _ type: ScalarType, _ geometry: DenseGeometry, _ activation: Activation, into output: UnsafeMutableRawBufferPointer
  ) throws {
    guard rule.runsOnDevice(.dense(geometry)) else {
      return try cpu.computeDense(input, weight, bias, type, geometry, activation, into: output)
    }
    do {
      try product(input, weight, bias, type, geometry, activation, into: output)
    } catch CLPoolError.sizeLimit(_) where rule != .deviceOnly {  // more than the device holds: the same bits on the CPU
      try cpu.computeDense(input, weight, bias, type, geometry, activation, into: output)
    }
  }

  /// The CPU backend's head is its pooling, in the storage type, then its product: so is this one.
  public func computeHead(
    _ features: UnsafeRawBufferPointer, _ pool: PoolGeometry, _ weight: UnsafeRawBufferPointer,
    _ bias: UnsafeRawBufferPointer?, _ type: ScalarType, _ geometry: DenseGeometry, _ activation: Activation,
    into output: UnsafeMutableRawBufferPointer
  ) throws {
    guard rule.runsOnDevice(.head(pool, geometry)) else {
      return try cpu.computeHead(features, pool, weight, bias, type, geometry, activation, into: output)
    }
    do {
      try HostMemory.check(elements: geometry.rows, geometry.inputs, width: type.byteWidth, what: "pooled features")
      let pooled = UnsafeMutableRawBufferPointer.allocate(byteCount: geometry.rows * geometry.inputs * type.byteWidth, alignment: 64)
      defer { pooled.deallocate() }
      try cpu.computePool(features, type, pool, .average, into: pooled, indices: nil)
      try product(UnsafeRawBufferPointer(pooled), weight, bias, type, geometry, activation, into: output)
    } catch CLPoolError.sizeLimit(_) where rule != .deviceOnly {  // as in computeDense
      try cpu.computeHead(features, pool, weight, bias, type, geometry, activation, into: output)
    }
  }

  public func computePoolBackward(_ gradient: Tensor, indices: [Int64]?, _ geometry: PoolGeometry) throws -> [Float] {
    try cpu.computePoolBackward(gradient, indices: indices, geometry)
  }

  /// activation(x · W + b) with the CPU's bits: the product on the device (float16 storage widened
  /// to float32 first, as the CPU computes it), then the activation and the rounding to the
  /// storage type on the CPU.
  private func product(
    _ input: UnsafeRawBufferPointer, _ weight: UnsafeRawBufferPointer, _ bias: UnsafeRawBufferPointer?,
    _ type: ScalarType, _ geometry: DenseGeometry, _ activation: Activation, into output: UnsafeMutableRawBufferPointer
  ) throws {
    let (n, k, m) = (geometry.rows, geometry.inputs, geometry.outputs)
    let arithmetic = type.accumulator
    guard arithmetic != type else {
      try device.computeDense(input, weight, bias, type, geometry, .none, into: output)
      return CPUDense.activate(output.baseAddress!, rows: n, outputs: m, type, activation)
    }
    let width = arithmetic.byteWidth
    try HostMemory.check(elements: n, k, width: width, what: "dense input, widened")
    try HostMemory.check(elements: k, m, width: width, what: "dense weight, widened")
    try HostMemory.check(elements: n, m, width: width, what: "dense output")
    let x = CPUDense.Buffer(converting: input.baseAddress!, count: n * k, from: type)
    let w = CPUDense.Buffer(converting: weight.baseAddress!, count: k * m, from: type)
    let b = bias.map { CPUDense.Buffer(converting: $0.baseAddress!, count: m, from: type) }
    let y = UnsafeMutableRawBufferPointer.allocate(byteCount: n * m * width, alignment: 64)
    defer { y.deallocate() }
    try withExtendedLifetime((x, w, b)) {
      try device.computeDense(
        UnsafeRawBufferPointer(start: x.pointer, count: n * k * width), UnsafeRawBufferPointer(start: w.pointer, count: k * m * width),
        b.map { UnsafeRawBufferPointer(start: $0.pointer, count: m * width) }, arithmetic, geometry, .none, into: y)
    }
    CPUDense.activate(y.baseAddress!, rows: n, outputs: m, arithmetic, activation)
    clpool_convert(arithmetic.kernelCode, y.baseAddress, 0, type.kernelCode, output.baseAddress, n * m)
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

/// Which products `DispatchingBackend` runs on the device: those of at least `multiplyAdds`
/// multiply-adds (dense, and the head's dense); smaller ones, and all pooling, run on the CPU.
/// Products are bound by arithmetic, so they go to the device once they have tens of millions of
/// multiply-adds (the ResNet-50 head from about N = 16). The number is a rule, not a timing: every
/// process decides alike, and since both sides give the same bits, it never changes a result.
/// `scripts/gpu-check` measures the break-even on a real GPU, which is how it is to be revised.
public struct DispatchRule: Equatable, Sendable, CustomStringConvertible {
  /// Dense and head calls with at least this many multiply-adds run their product on the device.
  public var multiplyAdds: Double

  public init(multiplyAdds: Double = 32_000_000) {
    self.multiplyAdds = multiplyAdds
  }

  /// Every product on the device, or every call on the CPU.
  public static let deviceOnly = DispatchRule(multiplyAdds: 0)
  public static let cpuOnly = DispatchRule(multiplyAdds: .infinity)

  /// Whether a call of this size runs its product on the device (pooling never does).
  public func runsOnDevice(_ work: Work) -> Bool {
    switch work {
    case .pool: return false
    case .dense, .head: return work.multiplyAdds >= multiplyAdds
    }
  }

  public var description: String {
    switch self {
    case .deviceOnly: return "no product"
    case .cpuOnly: return "every product"
    default: return "products under \(Int(multiplyAdds)) multiply-adds"
    }
  }
}
