/// The operations callers use, the same for every backend: check the shapes, check that the result
/// fits in host memory, answer empty requests, call the backend's `compute…` requirement, and
/// shape its output (PyTorch's pooling front end, then its kernel). Each operation exists on typed
/// tensors and on memory the caller owns (raw buffers of a `ScalarType`, no copy: what the CLI's
/// streams and the C ABI use); the tensor forms run through the buffer forms.
extension Backend {
  /// Mean of each (n, c) plane: [N, C], or with `keepDims` the spatial axes kept as 1s.
  public func globalAveragePool<S: StorageScalar>(
    _ input: TypedTensor<S>, layout: Layout = .channelsFirst, keepDims: Bool = false
  ) throws -> TypedTensor<S> {
    let geometry = try PoolGeometry(shape: input.shape, layout: layout)
    let values = try [S].computed(geometry.planes, "pooling output") { out in
      try input.scalars.withUnsafeBytes { try globalPool($0, type: S.scalarType, shape: input.shape, layout: layout, operation: .average, into: out) }
    }
    return try TypedTensor(shape: geometry.outputShape(keepDims: keepDims), scalars: values)
  }

  /// Maximum of each (n, c) plane (NaN if the plane has one); with `returnIndices`, also the flat
  /// spatial index of the first maximum (of the first NaN), [N, C] whatever `keepDims` does.
  public func globalMaxPool<S: StorageScalar>(
    _ input: TypedTensor<S>, layout: Layout = .channelsFirst, keepDims: Bool = false, returnIndices: Bool
  ) throws -> MaxPoolResult<S> {
    let geometry = try PoolGeometry(shape: input.shape, layout: layout)
    try HostMemory.check(elements: geometry.planes, 1, width: S.scalarType.byteWidth + 8, what: "pooling output")
    var indices = [Int64](repeating: 0, count: returnIndices ? geometry.planes : 0)
    let values = try [S].computed(geometry.planes, "pooling output") { out in
      try input.scalars.withUnsafeBytes { x in
        try indices.withUnsafeMutableBufferPointer { positions in
          try globalPool(
            x, type: S.scalarType, shape: input.shape, layout: layout, operation: .max, into: out,
            indices: returnIndices ? positions : nil)
        }
      }
    }
    return MaxPoolResult(
      values: try TypedTensor(shape: geometry.outputShape(keepDims: keepDims), scalars: values),
      indices: returnIndices ? indices : nil)
  }

  /// The maxima alone, [N, C].
  public func globalMaxPool<S: StorageScalar>(_ input: TypedTensor<S>, layout: Layout = .channelsFirst) throws
    -> TypedTensor<S>
  {
    try globalMaxPool(input, layout: layout, keepDims: false, returnIndices: false).values
  }

  /// Global average (or max) pooling of the caller's memory: `input` holds the elements of `shape`
  /// in `type`, row-major; `values` receives one element of `type` per (n, c) plane in [N, C]
  /// order, and `indices` (max only) each plane's first-max position. No copy is made.
  /// - Throws: `CLPoolError` as the tensor forms do, and `.invalidArgument` when a buffer is
  ///   smaller than the shapes need.
  public func globalPool(
    _ input: UnsafeRawBufferPointer, type: ScalarType, shape: [Int], layout: Layout, operation: PoolOperation,
    into values: UnsafeMutableRawBufferPointer, indices: UnsafeMutableBufferPointer<Int64>? = nil
  ) throws {
    try checkSupport(type)
    let geometry = try PoolGeometry(shape: shape, layout: layout)
    try HostMemory.check(
      elements: geometry.planes, 1, width: type.byteWidth + (indices == nil ? 0 : 8), what: "pooling output")
    try Buffers.check(input.count, holds: try Tensor.elementCount(of: shape), type, "the pooling input")
    try Buffers.check(values.count, holds: geometry.planes, type, "the pooling output")
    if let indices {
      guard operation == .max else { throw CLPoolError.invalidArgument("indices are the positions of maxima: they need max pooling") }
      try Buffers.check(indices.count * 8, holds: geometry.planes, .float64, "the indices")
    }
    guard geometry.planes > 0 else { return }
    try computePool(input, type, geometry, operation, into: values, indices: indices)
  }

  /// Mean of each sample's planes over that sample's own extent: [N, C], in one launch.
  public func globalAveragePool<S: StorageScalar>(_ batch: RaggedBatch<S>) throws -> TypedTensor<S> {
    try TypedTensor(shape: batch.outputShape, scalars: try pooled(batch, .average, returnIndices: false).values)
  }

  /// Maximum of each sample's planes over its own extent, [N, C]; indices are flat positions
  /// within the sample's plane.
  public func globalMaxPool<S: StorageScalar>(_ batch: RaggedBatch<S>, returnIndices: Bool) throws -> MaxPoolResult<S> {
    let result = try pooled(batch, .max, returnIndices: returnIndices)
    return MaxPoolResult(
      values: try TypedTensor(shape: batch.outputShape, scalars: result.values),
      indices: returnIndices ? result.indices ?? [] : nil)
  }

  public func globalMaxPool<S: StorageScalar>(_ batch: RaggedBatch<S>) throws -> TypedTensor<S> {
    try globalMaxPool(batch, returnIndices: false).values
  }

  /// y = activation(x · W + bias) with x [N, K] and W [K, M] (`.inOut`) or [M, K] (`.outIn`).
  public func dense<S: StorageScalar>(
    _ input: TypedTensor<S>, weight: TypedTensor<S>, bias: TypedTensor<S>? = nil, weightLayout: WeightLayout = .inOut,
    activation: Activation = .none
  ) throws -> TypedTensor<S> {
    let geometry = try DenseGeometry(input: input.shape, weight: weight.shape, bias: bias?.shape, weightLayout: weightLayout)
    try HostMemory.check(elements: geometry.rows, geometry.outputs, width: S.scalarType.byteWidth, what: "dense output")
    let values = try [S].computed(geometry.rows * geometry.outputs, "dense output") { out in
      try withProductBytes(input, weight, bias) { x, w, b in
        try dense(
          x, shape: input.shape, weight: w, shape: weight.shape, bias: b, type: S.scalarType, weightLayout: weightLayout,
          activation: activation, into: out)
      }
    }
    return try TypedTensor(shape: geometry.outputShape, scalars: values)
  }

  /// The dense layer on the caller's memory (no copy): x [N, K], W and bias [M] in `type`, y [N, M].
  public func dense(
    _ input: UnsafeRawBufferPointer, shape inputShape: [Int], weight: UnsafeRawBufferPointer, shape weightShape: [Int],
    bias: UnsafeRawBufferPointer?, type: ScalarType, weightLayout: WeightLayout = .inOut, activation: Activation = .none,
    into output: UnsafeMutableRawBufferPointer
  ) throws {
    try checkSupport(type)
    let geometry = try DenseGeometry(
      input: inputShape, weight: weightShape, bias: bias == nil ? nil : [inputShape.count == 2 ? weightOutputs(weightShape, weightLayout) : 0],
      weightLayout: weightLayout)
    try checkProduct(input, weight, bias, type, geometry, rows: try Tensor.elementCount(of: inputShape), output, "dense")
    guard geometry.rows > 0, geometry.outputs > 0 else { return }
    try computeDense(input, weight, bias, type, geometry, activation, into: output)
  }

  /// The classifier head, dense(globalAveragePool(features)) with bias and activation, fused:
  /// the pooled [N, C] rows are never handed back between the two steps.
  public func head<S: StorageScalar>(
    _ features: TypedTensor<S>, layout: Layout = .channelsFirst, weight: TypedTensor<S>, bias: TypedTensor<S>? = nil,
    weightLayout: WeightLayout = .inOut, activation: Activation = .none
  ) throws -> TypedTensor<S> {
    let (_, geometry) = try headGeometry(features.shape, layout, weight.shape, bias?.shape, weightLayout)
    try HostMemory.check(elements: geometry.rows, geometry.outputs, width: S.scalarType.byteWidth, what: "head output")
    let values = try [S].computed(geometry.rows * geometry.outputs, "head output") { out in
      try withProductBytes(features, weight, bias) { x, w, b in
        try head(
          x, shape: features.shape, layout: layout, weight: w, shape: weight.shape, bias: b, type: S.scalarType,
          weightLayout: weightLayout, activation: activation, into: out)
      }
    }
    return try TypedTensor(shape: geometry.outputShape, scalars: values)
  }

  /// The fused head on the caller's memory (no copy): features in `layout`, W and bias [M] in
  /// `type`, y [N, M].
  public func head(
    _ features: UnsafeRawBufferPointer, shape: [Int], layout: Layout, weight: UnsafeRawBufferPointer,
    shape weightShape: [Int], bias: UnsafeRawBufferPointer?, type: ScalarType, weightLayout: WeightLayout = .inOut,
    activation: Activation = .none, into output: UnsafeMutableRawBufferPointer
  ) throws {
    try checkSupport(type)
    let (pool, geometry) = try headGeometry(
      shape, layout, weightShape, bias == nil ? nil : [weightOutputs(weightShape, weightLayout)], weightLayout)
    try checkProduct(features, weight, bias, type, geometry, rows: try Tensor.elementCount(of: shape), output, "head")
    guard geometry.rows > 0, geometry.outputs > 0 else { return }
    try computeHead(features, pool, weight, bias, type, geometry, activation, into: output)
  }

  /// Gradient of global average pooling: dx = dz / (spatial size), broadcast over each plane.
  /// - Parameters:
  ///   - gradient: dz, [N, C] or the keep-dims output shape.
  ///   - inputShape: the forward input's shape.
  ///   - layout: the forward input's layout.
  public func globalAveragePoolBackward(_ gradient: Tensor, inputShape: [Int], layout: Layout) throws -> Tensor {
    try poolGradient(gradient, indices: nil, try PoolGeometry(gradient: gradient.shape, inputShape: inputShape, layout: layout))
  }

  /// Gradient of global max pooling: each plane's dz goes to the forward pass's first-maximum
  /// position (`indices`, as `globalMaxPool(returnIndices: true)` gives them), zero elsewhere.
  public func globalMaxPoolBackward(_ gradient: Tensor, indices: [Int64], inputShape: [Int], layout: Layout)
    throws -> Tensor
  {
    let geometry = try PoolGeometry(gradient: gradient.shape, inputShape: inputShape, layout: layout, indices: indices)
    return try poolGradient(gradient, indices: indices, geometry)
  }

  // MARK: The shared steps

  private func pooled<S: StorageScalar>(_ batch: RaggedBatch<S>, _ operation: PoolOperation, returnIndices: Bool) throws
    -> PooledPlanes<S>
  {
    let planes = batch.count * batch.channels
    try HostMemory.check(elements: planes, 1, width: S.scalarType.byteWidth + (returnIndices ? 8 : 0), what: "pooling output")
    try checkSupport(S.scalarType)
    guard planes > 0 else { return PooledPlanes(values: [], indices: returnIndices ? [] : nil) }
    return try computePool(batch, operation, returnIndices: returnIndices && operation == .max)
  }

  /// The buffers of a product are large enough for its shapes, and the output fits in memory.
  private func checkProduct(
    _ input: UnsafeRawBufferPointer, _ weight: UnsafeRawBufferPointer, _ bias: UnsafeRawBufferPointer?, _ type: ScalarType,
    _ geometry: DenseGeometry, rows inputElements: Int, _ output: UnsafeMutableRawBufferPointer, _ name: String
  ) throws {
    try HostMemory.check(elements: geometry.rows, geometry.outputs, width: type.byteWidth, what: "\(name) output")
    try Buffers.check(input.count, holds: inputElements, type, "the \(name) input")
    try Buffers.check(weight.count, holds: geometry.inputs * geometry.outputs, type, "the \(name) weight")
    if let bias { try Buffers.check(bias.count, holds: geometry.outputs, type, "the \(name) bias") }
    try Buffers.check(output.count, holds: geometry.rows * geometry.outputs, type, "the \(name) output")
  }

  private func poolGradient(_ gradient: Tensor, indices: [Int64]?, _ geometry: PoolGeometry) throws -> Tensor {
    let count = try Tensor.elementCount(of: geometry.shape)
    try HostMemory.check(elements: count, 1, width: 4, what: "pooling gradient")
    guard count > 0 else { return try Tensor(shape: geometry.shape, scalars: []) }
    return try Tensor(shape: geometry.shape, scalars: try computePoolBackward(gradient, indices: indices, geometry))
  }
}

/// Checks of the caller's buffers against the shapes they are said to hold.
enum Buffers {
  static func check(_ bytes: Int, holds elements: Int, _ type: ScalarType, _ what: String) throws {
    let (needed, overflow) = elements.multipliedReportingOverflow(by: type.byteWidth)
    guard !overflow, bytes >= needed else {
      throw CLPoolError.invalidArgument("\(what) holds \(bytes) bytes, fewer than its \(elements) \(type.rawValue) elements need")
    }
  }
}

extension Array where Element: StorageScalar {
  /// `count` elements written by `fill` into zeroed memory (so a failed fill leaves no garbage),
  /// after checking that they fit in host memory.
  static func computed(_ count: Int, _ what: String, _ fill: (UnsafeMutableRawBufferPointer) throws -> Void) throws
    -> [Element]
  {
    try HostMemory.check(elements: count, 1, width: MemoryLayout<Element>.stride, what: what)
    return try [Element](unsafeUninitializedCapacity: count) { buffer, initialized in
      let raw = UnsafeMutableRawBufferPointer(buffer)
      raw.initializeMemory(as: UInt8.self, repeating: 0)
      initialized = count
      try fill(raw)
    }
  }
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
    let dx = try dense(gradient, weight: weight, weightLayout: weightLayout == .inOut ? .outIn : .inOut)
    // dW = xᵀ · dy [K,M] (in-out) or dyᵀ · x [M,K] (out-in).
    let dw =
      weightLayout == .inOut
      ? try dense(try input.transposed(), weight: gradient) : try dense(try gradient.transposed(), weight: input)
    // db [M] = ones [1,N] · dy.
    let db = try dense(try Tensor(shape: [1, n], repeating: 1), weight: gradient)
    return DenseGradients(input: dx, weight: dw, bias: try db.reshaped([m]))
  }

  /// The class activation map of one sample: cam[h, w] = Σ_c W[c, k] · x[c, h, w], bias excluded
  /// (Zhou et al. 2016). It is one matrix-vector product, so it runs on the backend's dense op.
  /// - Parameters:
  ///   - features: [C, H, W] or [1, C, H, W]; with `.channelsLast`, [H, W, C] or [1, H, W, C].
  ///   - layout: where the channels are in `features`.
  ///   - weight: the head's dense weight, [C, M] (`.inOut`) or [M, C] (`.outIn`).
  ///   - weightLayout: how `weight` is stored.
  ///   - classIndex: k in 0..<M.
  /// - Returns: [H, W].
  public func classActivationMap(
    _ features: Tensor, layout: Layout = .channelsFirst, weight: Tensor,
    weightLayout: WeightLayout = .inOut, classIndex: Int
  ) throws -> Tensor {
    let geometry = try MapGeometry(features: features.shape, layout: layout, weight: weight.shape, weightLayout: weightLayout)
    let map = try [Float].computed(geometry.positions, "class activation map") { out in
      try features.scalars.withUnsafeBytes { x in
        try weight.scalars.withUnsafeBytes { w in
          try classActivationMap(
            x, shape: features.shape, layout: layout, weight: w, shape: weight.shape, type: .float32,
            weightLayout: weightLayout, classIndex: classIndex, into: out)
        }
      }
    }
    return try Tensor(shape: [geometry.height, geometry.width], scalars: map)
  }

  /// Class activation maps of a batch: sample n's map for class `classIndices[n]`, [N, H, W].
  /// - Parameters:
  ///   - features: [N, C, H, W] (channels-last: [N, H, W, C]).
  ///   - layout: where the channels are in `features`.
  ///   - weight: the head's dense weight, [C, M] (`.inOut`) or [M, C] (`.outIn`).
  ///   - weightLayout: how `weight` is stored.
  ///   - classIndices: one class in 0..<M per sample.
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

/// The bytes of a product's operands, for the tensor forms of dense and head (nil: no bias).
private func withProductBytes<S: StorageScalar, R>(
  _ input: TypedTensor<S>, _ weight: TypedTensor<S>, _ bias: TypedTensor<S>?,
  _ body: (UnsafeRawBufferPointer, UnsafeRawBufferPointer, UnsafeRawBufferPointer?) throws -> R
) rethrows -> R {
  try input.scalars.withUnsafeBytes { x in
    try weight.scalars.withUnsafeBytes { w in
      try (bias?.scalars ?? []).withUnsafeBytes { b in try body(x, w, bias == nil ? nil : b) }
    }
  }
}
