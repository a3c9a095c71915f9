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
  public static let poison = Float.poison
  public static let poisonIndex = Int64.min

  public init(poisonOutputs: Bool = false) {
    self.poisonOutputs = poisonOutputs
  }
}

/// The operations of a CNN classifier head, implemented once per device family.
///
/// Callers use the operations of the extension in `BackendOperations.swift` (`globalAveragePool`,
/// `dense`, `head`, …), which validate shapes (through `PoolGeometry` and `DenseGeometry`), check
/// the host memory the result needs, answer empty inputs, and shape the outputs, the same way for
/// every backend. A backend implements the narrower `compute…` requirements below, which the
/// front end calls only with an already-checked geometry and a non-empty request.
///
/// Every backend gives the same results to within SPEC.md's tolerances and throws `CLPoolError`,
/// never traps. Results are deterministic and batch-invariant: the same input on the same backend
/// gives bitwise the same output, and a sample's output does not depend on the batch it came in.
/// Implementations are safe to call from several threads.
///
/// The forward operations take any storage type (`TypedTensor<Float16 | Float | Double>`; float16
/// computes in float32); `checkSupport` says whether this backend's device has one. The backward
/// passes and class activation maps take float32 `Tensor`s.
public protocol Backend: AnyObject, Sendable {
  var kind: BackendKind { get }
  /// Human-readable description of the device the backend computes on.
  var deviceName: String { get }

  /// Throws `CLPoolError.unavailable`, saying why, when this backend cannot compute in `type`
  /// (an OpenCL device without cl_khr_fp64 for float64).
  func checkSupport(_ type: ScalarType) throws

  /// Pools every (n, c) plane of `input` (the elements of `geometry.shape` in `type`), laid out as
  /// `geometry` says (`geometry.planes` > 0), into `values`: one element of `type` per plane in
  /// [N, C] order, and with `indices` (max only) the flat spatial index of each plane's first
  /// maximum (of its first NaN when it has one). The buffers are the caller's, valid for the call.
  func computePool(
    _ input: UnsafeRawBufferPointer, _ type: ScalarType, _ geometry: PoolGeometry, _ operation: PoolOperation,
    into values: UnsafeMutableRawBufferPointer, indices: UnsafeMutableBufferPointer<Int64>?
  ) throws

  /// Pools each sample of a ragged batch over its own extent (count × channels > 0), in one
  /// launch where the device allows; indices are positions within each sample's plane.
  func computePool<S: StorageScalar>(_ batch: RaggedBatch<S>, _ operation: PoolOperation, returnIndices: Bool)
    throws -> PooledPlanes<S>

  /// y = activation(x · W + bias) into `output` ([N, M] of `type`, N, M > 0), from the caller's
  /// x [N, K], W (in `geometry.weightLayout`) and bias [M].
  func computeDense(
    _ input: UnsafeRawBufferPointer, _ weight: UnsafeRawBufferPointer, _ bias: UnsafeRawBufferPointer?,
    _ type: ScalarType, _ geometry: DenseGeometry, _ activation: Activation, into output: UnsafeMutableRawBufferPointer
  ) throws

  /// The fused head, dense(globalAveragePool(features)), into `output` ([N, M] of `type`, N, M >
  /// 0); the pooled [N, C] rows are never handed back between the two steps.
  func computeHead(
    _ features: UnsafeRawBufferPointer, _ pool: PoolGeometry, _ weight: UnsafeRawBufferPointer,
    _ bias: UnsafeRawBufferPointer?, _ type: ScalarType, _ geometry: DenseGeometry, _ activation: Activation,
    into output: UnsafeMutableRawBufferPointer
  ) throws

  /// The gradient of a global pooling, in the forward input's layout (its element count > 0):
  /// average (`indices` nil) spreads dz / S over each plane; max sends dz to each plane's
  /// `indices` position (already checked to lie inside the plane).
  func computePoolBackward(_ gradient: Tensor, indices: [Int64]?, _ geometry: PoolGeometry) throws -> [Float]

  /// The backend that runs a call of this size: this one, or the one a `DispatchingBackend`'s
  /// rule picks. The CLI reports it, and routes a streamed or sharded job through it once.
  func backend(for work: Work) -> any Backend
}

extension Backend {
  public func backend(for work: Work) -> any Backend { self }

  /// "opencl: pthread-haswell-AMD EPYC (Portable Computing Language)" or "cpu: ...".
  public var label: String { "\(kind.rawValue): \(deviceName)" }
}

/// What `Backend.computePool` returns: one value per plane, and the first-max positions when
/// they were asked for.
public struct PooledPlanes<Scalar: StorageScalar>: Sendable {
  public var values: [Scalar]
  public var indices: [Int64]?

  public init(values: [Scalar], indices: [Int64]?) {
    self.values = values
    self.indices = indices
  }
}

/// The gradients `Backend.denseBackward` returns, each shaped like what it is the gradient of.
public struct DenseGradients: Equatable, Sendable {
  public var input: Tensor
  public var weight: Tensor
  public var bias: Tensor
}
