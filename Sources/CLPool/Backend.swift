/// The kind of implementation behind a `Backend`.
public enum BackendKind: String, CaseIterable, Sendable {
  case cpu
  case opencl
}

/// Options every backend takes.
public struct BackendOptions: Sendable {
  /// Fill output buffers with `BackendOptions.poison` before computing, so an element a kernel
  /// fails to write shows up in a cross-check. Costs one fill per output; off by default.
  public var poisonOutputs: Bool

  /// A finite value no reduction of test data produces (−3.39e38, bit pattern 0xFF7FDEAD): an
  /// unwritten output differs from every reference value, including NaN and ±Inf.
  public static let poison = Float(bitPattern: 0xFF7F_DEAD)
  public static let poisonIndex = Int64.min

  public init(poisonOutputs: Bool = false) {
    self.poisonOutputs = poisonOutputs
  }
}

/// The operations of a CNN classifier head, implemented once per device family.
///
/// Every backend gives the same results to within SPEC.md's tolerances, validates shapes the same
/// way (through `PoolGeometry` and `DenseGeometry`) and throws `CLPoolError`, never traps.
/// Results are deterministic: the same input on the same backend gives bitwise the same output.
/// Implementations are safe to call from several threads.
public protocol Backend: AnyObject, Sendable {
  var kind: BackendKind { get }
  /// Human-readable description of the device the backend computes on.
  var deviceName: String { get }

  /// Mean of each (n, c) plane: [N, C], or with `keepDims` the spatial axes kept as 1s.
  func globalAveragePool(_ input: Tensor, layout: Layout, keepDims: Bool) throws -> Tensor

  /// Maximum of each (n, c) plane (NaN if the plane has one); with `returnIndices`, also the flat
  /// spatial index of the first maximum.
  func globalMaxPool(_ input: Tensor, layout: Layout, keepDims: Bool, returnIndices: Bool) throws
    -> MaxPoolResult

  /// y = activation(x · W + bias) with x [N, K] and W [K, M] (`.inOut`) or [M, K] (`.outIn`).
  func dense(
    _ input: Tensor, weight: Tensor, bias: Tensor?, weightLayout: WeightLayout,
    activation: Activation
  ) throws -> Tensor
}

extension Backend {
  public func globalAveragePool(_ input: Tensor, layout: Layout = .channelsFirst) throws -> Tensor {
    try globalAveragePool(input, layout: layout, keepDims: false)
  }

  public func globalMaxPool(_ input: Tensor, layout: Layout = .channelsFirst) throws -> Tensor {
    try globalMaxPool(input, layout: layout, keepDims: false, returnIndices: false).values
  }

  public func dense(
    _ input: Tensor, weight: Tensor, bias: Tensor? = nil, weightLayout: WeightLayout = .inOut
  ) throws -> Tensor {
    try dense(input, weight: weight, bias: bias, weightLayout: weightLayout, activation: .none)
  }

  /// "opencl: pthread-haswell-AMD EPYC (Portable Computing Language)" or "cpu: ...".
  public var label: String { "\(kind.rawValue): \(deviceName)" }
}
