/// Where the channel axis sits in a pooling input.
public enum Layout: String, CaseIterable, Sendable {
  /// `[N, C, spatial...]` (NCL, NCHW, NCDHW): each plane is contiguous.
  case channelsFirst = "channels-first"
  /// `[N, spatial..., C]` (NLC, NHWC, NDHWC): the channels of one position are contiguous.
  case channelsLast = "channels-last"

  /// Accepts the canonical names and the framework spellings (`nchw`, `nhwc`, `ncl`, ...).
  public init?(name: String) {
    switch name.lowercased() {
    case "channels-first", "channels_first", "nchw", "ncl", "ncdhw": self = .channelsFirst
    case "channels-last", "channels_last", "nhwc", "nlc", "ndhwc": self = .channelsLast
    default: return nil
    }
  }

  /// The framework spelling for an input with `spatialRank` (1–3) spatial axes: "ncl", "nchw",
  /// "ncdhw" channels-first; "nlc", "nhwc", "ndhwc" channels-last.
  public func name(spatialRank: Int) -> String {
    let spatial = ["l", "hw", "dhw"][max(0, min(2, spatialRank - 1))]
    return self == .channelsFirst ? "nc" + spatial : "n" + spatial + "c"
  }
}

public enum PoolOperation: String, CaseIterable, Sendable {
  case average = "avg"
  case max = "max"
}

/// How a dense layer's weight matrix is stored.
public enum WeightLayout: String, CaseIterable, Sendable {
  /// `[K, M]`, inputs × outputs (Keras).
  case inOut = "in-out"
  /// `[M, K]`, outputs × inputs (PyTorch `nn.Linear.weight`).
  case outIn = "out-in"
}

public enum Activation: String, CaseIterable, Sendable {
  case none, relu, sigmoid
  /// Over the M outputs of each row, computed as exp(v − max) / Σ exp(v − max).
  case softmax
}

/// The result of a global max pool: the maxima and, when asked for, the flat row-major spatial
/// index of each plane's first maximum (of its first NaN when the plane has one).
public struct MaxPoolResult<Scalar: StorageScalar>: Equatable, Sendable {
  public var values: TypedTensor<Scalar>
  public var indices: [Int64]?

  public init(values: TypedTensor<Scalar>, indices: [Int64]?) {
    self.values = values
    self.indices = indices
  }
}

/// A pooling input's shape read as N planes × C channels × S spatial positions.
public struct PoolGeometry: Equatable, Sendable {
  public let shape: [Int]
  public let layout: Layout
  public let batch: Int
  public let channels: Int
  public let spatialShape: [Int]
  /// Number of elements each (n, c) plane is reduced over.
  public let spatialSize: Int

  /// - Throws: `CLPoolError.invalidShape` unless the rank is 3, 4 or 5 (1, 2 or 3 spatial axes)
  ///   and every spatial axis is non-empty. N = 0 or C = 0 are valid and give empty outputs.
  public init(shape: [Int], layout: Layout) throws {
    guard (3...5).contains(shape.count) else {
      throw CLPoolError.invalidShape(
        "pooling takes a rank 3, 4 or 5 input ([N,C,L], [N,C,H,W], [N,C,D,H,W] or channels-last), "
          + "got rank \(shape.count) (\(Tensor.describe(shape)))")
    }
    _ = try Tensor.elementCount(of: shape)
    self.shape = shape
    self.layout = layout
    batch = shape[0]
    switch layout {
    case .channelsFirst:
      channels = shape[1]
      spatialShape = Array(shape[2...])
    case .channelsLast:
      channels = shape[shape.count - 1]
      spatialShape = Array(shape[1..<(shape.count - 1)])
    }
    // Checked on its own: a zero batch or channel count lets the whole shape's product pass.
    spatialSize = try Tensor.elementCount(of: spatialShape)
    guard spatialSize > 0 else {
      throw CLPoolError.invalidShape(
        "cannot pool over an empty spatial extent (\(Tensor.describe(spatialShape)) in input "
          + "\(Tensor.describe(shape)), \(layout.rawValue))")
    }
  }

  /// Number of (n, c) planes, which is also the number of outputs.
  public var planes: Int { batch * channels }

  /// The geometry of a pooling backward pass, after checking the gradient (and max-pool indices).
  public init(gradient: [Int], inputShape: [Int], layout: Layout, indices: [Int64]? = nil) throws {
    try self.init(shape: inputShape, layout: layout)
    try checkGradient(gradient)
    if let indices { try checkIndices(indices) }
  }

  /// Checks a pooling gradient: [N, C] or the keep-dims output shape.
  public func checkGradient(_ gradient: [Int]) throws {
    guard gradient == outputShape(keepDims: false) || gradient == outputShape(keepDims: true) else {
      throw CLPoolError.invalidShape(
        "pooling gradient must be \(Tensor.describe(outputShape(keepDims: false))) or \(Tensor.describe(outputShape(keepDims: true))) for input \(Tensor.describe(shape)), got \(Tensor.describe(gradient))")
    }
  }

  /// Checks max-pool indices: one per plane, each a position inside its plane.
  public func checkIndices(_ indices: [Int64]) throws {
    guard indices.count == planes else {
      throw CLPoolError.invalidShape("max-pool indices must number \(planes) (one per plane), got \(indices.count)")
    }
    if let bad = indices.first(where: { $0 < 0 || $0 >= Int64(spatialSize) }) {
      throw CLPoolError.invalidArgument("max-pool index \(bad) is outside the plane's 0..<\(spatialSize) positions")
    }
  }

  /// Where input element `i` lies: its plane (n · C + c) and its spatial position.
  @inline(__always)
  public func planeAndPosition(of i: Int) -> (plane: Int, position: Int) {
    switch layout {
    case .channelsFirst:
      return (i / spatialSize, i % spatialSize)
    case .channelsLast:
      let samplePosition = i / channels
      return ((samplePosition / spatialSize) * channels + i % channels, samplePosition % spatialSize)
    }
  }

  /// `[N, C]`, or with `keepDims` the input's rank with every spatial axis set to 1.
  public func outputShape(keepDims: Bool) -> [Int] {
    guard keepDims else { return [batch, channels] }
    let ones = [Int](repeating: 1, count: spatialShape.count)
    switch layout {
    case .channelsFirst: return [batch, channels] + ones
    case .channelsLast: return [batch] + ones + [channels]
    }
  }
}

/// The sizes of a dense layer: x [N, K] times W gives y [N, M].
public struct DenseGeometry: Equatable, Sendable {
  public let rows: Int  // N
  public let inputs: Int  // K
  public let outputs: Int  // M
  public let weightLayout: WeightLayout

  /// - Throws: `CLPoolError.invalidShape` when x is not rank 2, W is not rank 2 or does not match
  ///   K in the given layout, the bias is not [M], or K is 0.
  public init(input: [Int], weight: [Int], bias: [Int]?, weightLayout: WeightLayout) throws {
    guard input.count == 2 else {
      throw CLPoolError.invalidShape(
        "dense input must be rank 2 [N,K], got \(Tensor.describe(input))")
    }
    guard weight.count == 2 else {
      throw CLPoolError.invalidShape(
        "dense weight must be rank 2, got \(Tensor.describe(weight))")
    }
    let weightInputs = weightLayout == .inOut ? weight[0] : weight[1]
    let weightOutputs = weightLayout == .inOut ? weight[1] : weight[0]
    let expected = weightLayout == .inOut ? "[K,M] = [\(input[1]),M]" : "[M,K] = [M,\(input[1])]"
    guard weightInputs == input[1] else {
      throw CLPoolError.invalidShape(
        "dense weight \(Tensor.describe(weight)) does not match input \(Tensor.describe(input)): "
          + "with weight layout \(weightLayout.rawValue) it must be \(expected)")
    }
    guard input[1] > 0 else {
      throw CLPoolError.invalidShape("dense input \(Tensor.describe(input)) has no features (K = 0)")
    }
    if let bias, bias != [weightOutputs] {
      throw CLPoolError.invalidShape(
        "dense bias must be [\(weightOutputs)] to match the weight, got \(Tensor.describe(bias))")
    }
    _ = try Tensor.elementCount(of: input)
    _ = try Tensor.elementCount(of: weight)
    rows = input[0]
    inputs = input[1]
    outputs = weightOutputs
    self.weightLayout = weightLayout
  }

  public var outputShape: [Int] { [rows, outputs] }
  /// Multiply-adds counted as two operations.
  public var flops: Double { 2 * Double(rows) * Double(inputs) * Double(outputs) }
}

/// The shapes of a classifier head, dense(globalAveragePool(features)), validated together.
public func headGeometry(
  _ features: [Int], _ layout: Layout, _ weight: [Int], _ bias: [Int]?, _ weightLayout: WeightLayout
) throws -> (pool: PoolGeometry, dense: DenseGeometry) {
  let pool = try PoolGeometry(shape: features, layout: layout)
  let dense = try DenseGeometry(
    input: [pool.batch, pool.channels], weight: weight, bias: bias, weightLayout: weightLayout)
  return (pool, dense)
}

/// A dense weight's output width (0 for a weight that is not 2-D, which `DenseGeometry` refuses).
func weightOutputs(_ weight: [Int], _ layout: WeightLayout) -> Int {
  weight.count == 2 ? (layout == .inOut ? weight[1] : weight[0]) : 0
}
