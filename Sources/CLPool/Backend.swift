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
/// Every backend gives the same results to within SPEC.md's tolerances, validates shapes the same
/// way (through `PoolGeometry` and `DenseGeometry`) and throws `CLPoolError`, never traps.
/// Results are deterministic: the same input on the same backend gives bitwise the same output.
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

  /// Mean of each (n, c) plane: [N, C], or with `keepDims` the spatial axes kept as 1s.
  func globalAveragePool<S: StorageScalar>(_ input: TypedTensor<S>, layout: Layout, keepDims: Bool) throws
    -> TypedTensor<S>

  /// Maximum of each (n, c) plane (NaN if the plane has one); with `returnIndices`, also the flat
  /// spatial index of the first maximum.
  func globalMaxPool<S: StorageScalar>(
    _ input: TypedTensor<S>, layout: Layout, keepDims: Bool, returnIndices: Bool
  ) throws -> MaxPoolResult<S>

  /// Mean of each sample's planes over that sample's own extent: [N, C], in one launch.
  func globalAveragePool<S: StorageScalar>(_ batch: RaggedBatch<S>) throws -> TypedTensor<S>

  /// Maximum of each sample's planes over its own extent, [N, C]; indices are flat positions
  /// within the sample's plane.
  func globalMaxPool<S: StorageScalar>(_ batch: RaggedBatch<S>, returnIndices: Bool) throws -> MaxPoolResult<S>

  /// y = activation(x · W + bias) with x [N, K] and W [K, M] (`.inOut`) or [M, K] (`.outIn`).
  func dense<S: StorageScalar>(
    _ input: TypedTensor<S>, weight: TypedTensor<S>, bias: TypedTensor<S>?, weightLayout: WeightLayout,
    activation: Activation
  ) throws -> TypedTensor<S>

  /// The classifier head, dense(globalAveragePool(features)) with bias and activation, fused:
  /// the pooled [N, C] rows are never handed back between the two steps.
  func head<S: StorageScalar>(
    _ features: TypedTensor<S>, layout: Layout, weight: TypedTensor<S>, bias: TypedTensor<S>?,
    weightLayout: WeightLayout, activation: Activation
  ) throws -> TypedTensor<S>

  /// Gradient of global average pooling: dx = dz / (spatial size), broadcast over each plane.
  /// - Parameters:
  ///   - gradient: dz, [N, C] or the keep-dims output shape.
  ///   - inputShape: the forward input's shape.
  func globalAveragePoolBackward(_ gradient: Tensor, inputShape: [Int], layout: Layout) throws -> Tensor

  /// Gradient of global max pooling: each plane's dz goes to the forward pass's first-maximum
  /// position (`indices`, as `globalMaxPool(returnIndices: true)` gives them), zero elsewhere.
  func globalMaxPoolBackward(_ gradient: Tensor, indices: [Int64], inputShape: [Int], layout: Layout)
    throws -> Tensor
}

extension Backend {
  /// Gradients of a dense layer's linear part, y = x · W + b, given dy = ∂L/∂y (before any
  /// activation): dx = dy · Wᵀ, dW = xᵀ · dy (returned in `weightLayout`), db = Σ_n dy. All three
  /// run on the backend's dense operation.
  public func denseBackward(
    _ gradient: Tensor, input: Tensor, weight: Tensor, weightLayout: WeightLayout
  ) throws -> DenseGradients {
    let geometry = try DenseGeometry(input: input.shape, weight: weight.shape, bias: nil, weightLayout: weightLayout)
    let (n, k, m) = (geometry.rows, geometry.inputs, geometry.outputs)
    guard gradient.shape == [n, m] else {
      throw CLPoolError.invalidShape(
        "dense gradient must be [N,M] = [\(n),\(m)] to match input \(Tensor.describe(input.shape)) and weight \(Tensor.describe(weight.shape)), got \(Tensor.describe(gradient.shape))")
    }
    guard n > 0, m > 0 else {  // nothing flows back: zero gradients of the right shapes
      return DenseGradients(
        input: try Tensor(shape: [n, k], repeating: 0), weight: try Tensor(shape: weight.shape, repeating: 0),
        bias: try Tensor(shape: [m], repeating: 0))
    }
    // dx [N,K] = dy [N,M] · Wᵀ: W [K,M] read as out-in, or W [M,K] read as in-out.
    let dx = try dense(
      gradient, weight: weight, bias: nil, weightLayout: weightLayout == .inOut ? .outIn : .inOut,
      activation: .none)
    // dW = xᵀ · dy [K,M] (in-out) or dyᵀ · x [M,K] (out-in).
    let dw =
      weightLayout == .inOut
      ? try dense(try input.transposed(), weight: gradient, bias: nil, weightLayout: .inOut, activation: .none)
      : try dense(try gradient.transposed(), weight: input, bias: nil, weightLayout: .inOut, activation: .none)
    // db [M] = ones [1,N] · dy.
    let db = try dense(
      try Tensor(shape: [1, n], repeating: 1), weight: gradient, bias: nil, weightLayout: .inOut, activation: .none)
    return DenseGradients(input: dx, weight: dw, bias: try db.reshaped([m]))
  }

  /// The class activation map of one sample: cam[h, w] = Σ_c W[c, k] · x[c, h, w], bias excluded
  /// (Zhou et al. 2016). It is one matrix-vector product, so it runs on the backend's dense op.
  /// - Parameters:
  ///   - features: [C, H, W] or [1, C, H, W]; with `.channelsLast`, [H, W, C] or [1, H, W, C].
  ///   - weight: the head's dense weight, [C, M] (`.inOut`) or [M, C] (`.outIn`).
  ///   - classIndex: k in 0..<M.
  /// - Returns: [H, W].
  public func classActivationMap(
    _ features: Tensor, layout: Layout = .channelsFirst, weight: Tensor,
    weightLayout: WeightLayout = .inOut, classIndex: Int
  ) throws -> Tensor {
    var shape = features.shape
    if shape.count == 4 {
      guard shape[0] == 1 else {
        throw CLPoolError.invalidShape(
          "a class activation map takes one sample ([C,H,W] or [1,C,H,W]), got batch \(shape[0]) in \(Tensor.describe(shape))")
      }
      shape.removeFirst()
    }
    guard shape.count == 3 else {
      throw CLPoolError.invalidShape(
        "a class activation map takes [C,H,W] or [1,C,H,W] features (channels-last: [H,W,C]), got \(Tensor.describe(features.shape))")
    }
    let channels = layout == .channelsFirst ? shape[0] : shape[2]
    let (height, width) = layout == .channelsFirst ? (shape[1], shape[2]) : (shape[0], shape[1])
    guard height > 0, width > 0 else {
      throw CLPoolError.invalidShape("a class activation map needs a non-empty spatial extent, got \(Tensor.describe(features.shape))")
    }
    let geometry = try DenseGeometry(input: [1, channels], weight: weight.shape, bias: nil, weightLayout: weightLayout)
    guard (0..<geometry.outputs).contains(classIndex) else {
      throw CLPoolError.invalidArgument("class \(classIndex) is out of range: the weight has \(geometry.outputs) classes (0...\(geometry.outputs - 1))")
    }
    let column = (0..<channels).map {
      weightLayout == .inOut ? weight.scalars[$0 * geometry.outputs + classIndex] : weight.scalars[classIndex * channels + $0]
    }
    let positions = height * width
    let map: Tensor
    if layout == .channelsFirst {
      // [1, C] · [C, H·W]: the class's weights against every position.
      map = try dense(
        try Tensor(shape: [1, channels], scalars: column),
        weight: try Tensor(shape: [channels, positions], scalars: features.scalars), bias: nil,
        weightLayout: .inOut, activation: .none)
    } else {
      // [H·W, C] · [C, 1].
      map = try dense(
        try Tensor(shape: [positions, channels], scalars: features.scalars),
        weight: try Tensor(shape: [channels, 1], scalars: column), bias: nil, weightLayout: .inOut,
        activation: .none)
    }
    return try map.reshaped([height, width])
  }

  /// Class activation maps of a batch: sample n's map for class `classIndices[n]`, [N, H, W].
  /// - Parameter features: [N, C, H, W] (channels-last: [N, H, W, C]).
  public func classActivationMaps(
    _ features: Tensor, layout: Layout = .channelsFirst, weight: Tensor,
    weightLayout: WeightLayout = .inOut, classIndices: [Int]
  ) throws -> Tensor {
    guard features.rank == 4, features.shape[0] == classIndices.count else {
      throw CLPoolError.invalidShape(
        "batched class activation maps take [N,C,H,W] (or [N,H,W,C]) features and one class per sample, got \(Tensor.describe(features.shape)) and \(classIndices.count) classes")
    }
    let sampleShape = Array(features.shape.dropFirst())
    let sampleCount = sampleShape.reduce(1, *)
    var maps: [Float] = []
    for (n, classIndex) in classIndices.enumerated() {
      let sample = try Tensor(shape: sampleShape, scalars: Array(features.scalars[(n * sampleCount)..<((n + 1) * sampleCount)]))
      maps += try classActivationMap(sample, layout: layout, weight: weight, weightLayout: weightLayout, classIndex: classIndex).scalars
    }
    let (height, width) = layout == .channelsFirst ? (sampleShape[1], sampleShape[2]) : (sampleShape[0], sampleShape[1])
    return try Tensor(shape: [classIndices.count, height, width], scalars: maps)
  }
}

extension Backend {
  public func globalAveragePool<S: StorageScalar>(_ input: TypedTensor<S>, layout: Layout = .channelsFirst) throws
    -> TypedTensor<S>
  {
    try globalAveragePool(input, layout: layout, keepDims: false)
  }

  public func globalMaxPool<S: StorageScalar>(_ input: TypedTensor<S>, layout: Layout = .channelsFirst) throws
    -> TypedTensor<S>
  {
    try globalMaxPool(input, layout: layout, keepDims: false, returnIndices: false).values
  }

  public func globalMaxPool<S: StorageScalar>(_ batch: RaggedBatch<S>) throws -> TypedTensor<S> {
    try globalMaxPool(batch, returnIndices: false).values
  }

  public func dense<S: StorageScalar>(
    _ input: TypedTensor<S>, weight: TypedTensor<S>, bias: TypedTensor<S>? = nil, weightLayout: WeightLayout = .inOut
  ) throws -> TypedTensor<S> {
    try dense(input, weight: weight, bias: bias, weightLayout: weightLayout, activation: .none)
  }

  /// "opencl: pthread-haswell-AMD EPYC (Portable Computing Language)" or "cpu: ...".
  public var label: String { "\(kind.rawValue): \(deviceName)" }
}

/// The gradients `Backend.denseBackward` returns, each shaped like what it is the gradient of.
public struct DenseGradients: Equatable, Sendable {
  public var input: Tensor
  public var weight: Tensor
  public var bias: Tensor
}
