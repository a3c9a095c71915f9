import Foundation

/// What `auto` returns when it picks an OpenCL GPU or accelerator: calls run on the device unless
/// their input is too small to pay for a device launch, in which case the CPU backend runs them.
/// The break-even size is measured when the backend is made, per device, not guessed. Device
/// tensors (`device.upload`) always stay on the device: use `device` for them.
///
/// Thread safety: both backends are thread-safe and the threshold is immutable.
public final class DispatchingBackend: Backend, @unchecked Sendable {
  public let device: OpenCLBackend
  public let cpu: CPUBackend
  /// Inputs with fewer elements than this run on the CPU.
  public let threshold: Int

  public var kind: BackendKind { .opencl }
  public var deviceName: String {
    switch threshold {
    case 0: return device.deviceName
    case Int.max: return "\(device.deviceName); every call on the CPU (faster here at every size measured)"
    default: return "\(device.deviceName); inputs under \(threshold) elements on the CPU"
    }
  }

  /// - Parameter threshold: the break-even element count; nil measures it (a few milliseconds).
  public init(device: OpenCLBackend, cpu: CPUBackend, threshold: Int? = nil) throws {
    self.device = device
    self.cpu = cpu
    self.threshold = try threshold ?? DispatchingBackend.measureBreakEven(device, cpu)
  }

  /// Fits time = launch + size · per-element to global average pooling of a small and a larger
  /// input on each backend, and returns the size where the two lines cross (0 when the device is
  /// never slower, `Int.max` when it is never faster).
  static func measureBreakEven(_ device: OpenCLBackend, _ cpu: CPUBackend) throws -> Int {
    var random = SplitMix64(seed: 1)
    let small = try TestData.uniform([1, 64, 8, 8], in: -1..<1, random: &random)
    let large = try TestData.uniform([1, 64, 64, 64], in: -1..<1, random: &random)
    func fastest(_ backend: any Backend, _ x: Tensor) throws -> Double {
      _ = try backend.globalAveragePool(x, layout: .channelsFirst, keepDims: false)  // warm-up
      var best = Double.infinity
      for _ in 0..<5 {
        let start = DispatchTime.now().uptimeNanoseconds
        _ = try backend.globalAveragePool(x, layout: .channelsFirst, keepDims: false)
        best = min(best, Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9)
      }
      return best
    }
    let (deviceSmall, deviceLarge) = (try fastest(device, small), try fastest(device, large))
    let (cpuSmall, cpuLarge) = (try fastest(cpu, small), try fastest(cpu, large))
    let span = Double(large.count - small.count)
    let (devicePerElement, cpuPerElement) = ((deviceLarge - deviceSmall) / span, (cpuLarge - cpuSmall) / span)
    let (deviceLaunch, cpuLaunch) = (deviceSmall - devicePerElement * Double(small.count), cpuSmall - cpuPerElement * Double(small.count))
    guard deviceLaunch > cpuLaunch else { return 0 }
    guard cpuPerElement > devicePerElement else { return Int.max }
    return Int(min((deviceLaunch - cpuLaunch) / (cpuPerElement - devicePerElement), Double(Int.max / 2)))
  }

  private func pick(_ elements: Int) -> any Backend { elements < threshold ? cpu : device }

  /// Both backends must have the type: the call may go to either.
  public func checkSupport(_ type: ScalarType) throws {
    try device.checkSupport(type)
    try cpu.checkSupport(type)
  }

  public func globalAveragePool<S: StorageScalar>(_ input: TypedTensor<S>, layout: Layout, keepDims: Bool) throws
    -> TypedTensor<S>
  {
    try pick(input.count).globalAveragePool(input, layout: layout, keepDims: keepDims)
  }

  public func globalMaxPool<S: StorageScalar>(
    _ input: TypedTensor<S>, layout: Layout, keepDims: Bool, returnIndices: Bool
  ) throws -> MaxPoolResult<S> {
    try pick(input.count).globalMaxPool(input, layout: layout, keepDims: keepDims, returnIndices: returnIndices)
  }

  public func globalAveragePool<S: StorageScalar>(_ batch: RaggedBatch<S>) throws -> TypedTensor<S> {
    try pick(batch.scalars.count).globalAveragePool(batch)
  }

  public func globalMaxPool<S: StorageScalar>(_ batch: RaggedBatch<S>, returnIndices: Bool) throws -> MaxPoolResult<S> {
    try pick(batch.scalars.count).globalMaxPool(batch, returnIndices: returnIndices)
  }

  public func dense<S: StorageScalar>(
    _ input: TypedTensor<S>, weight: TypedTensor<S>, bias: TypedTensor<S>?, weightLayout: WeightLayout,
    activation: Activation
  ) throws -> TypedTensor<S> {
    try pick(input.count + weight.count).dense(
      input, weight: weight, bias: bias, weightLayout: weightLayout, activation: activation)
  }

  public func head<S: StorageScalar>(
    _ features: TypedTensor<S>, layout: Layout, weight: TypedTensor<S>, bias: TypedTensor<S>?,
    weightLayout: WeightLayout, activation: Activation
  ) throws -> TypedTensor<S> {
    try pick(features.count + weight.count).head(
      features, layout: layout, weight: weight, bias: bias, weightLayout: weightLayout, activation: activation)
  }

  public func globalAveragePoolBackward(_ gradient: Tensor, inputShape: [Int], layout: Layout) throws -> Tensor {
    try pick(try Tensor.elementCount(of: inputShape)).globalAveragePoolBackward(
      gradient, inputShape: inputShape, layout: layout)
  }

  public func globalMaxPoolBackward(_ gradient: Tensor, indices: [Int64], inputShape: [Int], layout: Layout)
    throws -> Tensor
  {
    try pick(try Tensor.elementCount(of: inputShape)).globalMaxPoolBackward(
      gradient, indices: indices, inputShape: inputShape, layout: layout)
  }
}
