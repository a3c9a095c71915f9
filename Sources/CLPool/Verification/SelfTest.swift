import Foundation

/// One cross-check: an operation, a shape, and how its data is drawn.
public struct SelfTestCase: Sendable, CustomStringConvertible {
  public enum Operation: Sendable, Equatable {
    case averagePool(Layout)
    case maxPool(Layout)
    case dense(WeightLayout, Activation, bias: Bool)
    /// Global average pool followed by a dense layer with bias and activation.
    case head(Layout, Activation)
    case averagePoolBackward(Layout)
    case maxPoolBackward(Layout)
    /// dx, dW, db of the linear part of a dense layer; shape [N, K, M].
    case denseBackward(WeightLayout)
    /// Pooling of a ragged batch; shape [N, C], each sample's spatial extent in `extents`.
    case raggedAveragePool(Layout)
    case raggedMaxPool(Layout)

    /// The forward operations, which run in every storage type.
    var isForward: Bool {
      switch self {
      case .averagePoolBackward, .maxPoolBackward, .denseBackward: return false
      default: return true
      }
    }
  }

  public let operation: Operation
  /// Pooling and head: the channels-first shape [N, C, spatial...] (channels-last cases store the
  /// same values permuted to [N, spatial..., C]). Dense: [N, K, M]. Head: [N, C, spatial..., M].
  /// Ragged: [N, C].
  public let shape: [Int]
  /// Data with ties, NaN, +Inf and -Inf planes instead of plain uniform values.
  public let special: Bool
  /// The storage type of inputs and outputs (forward operations only).
  public let scalarType: ScalarType
  /// Ragged cases: each sample's spatial extent.
  public let extents: [[Int]]

  public init(
    _ operation: Operation, _ shape: [Int], special: Bool = false, scalarType: ScalarType = .float32,
    extents: [[Int]] = []
  ) {
    self.operation = operation
    self.shape = shape
    self.special = special
    self.scalarType = scalarType
    self.extents = extents
  }

  /// "avg", "max", "dense", "head".
  public var operationName: String {
    switch operation {
    case .averagePool: return "avg"
    case .maxPool: return "max"
    case .dense: return "dense"
    case .head: return "head"
    case .averagePoolBackward: return "avg backward"
    case .maxPoolBackward: return "max backward"
    case .denseBackward: return "dense backward"
    case .raggedAveragePool: return "avg ragged"
    case .raggedMaxPool: return "max ragged"
    }
  }

  /// Layout and options, e.g. "nhwc", "out-in relu +bias".
  public var variant: String {
    func layoutName(_ layout: Layout) -> String {
      let rank = shape.count - (operationName == "head" ? 1 : 0)
      let spatial = ["l", "hw", "dhw"][max(0, min(2, rank - 3))]
      return layout == .channelsFirst ? "nc" + spatial : "n" + spatial + "c"
    }
    var text: String
    switch operation {
    case .averagePool(let layout), .maxPool(let layout), .averagePoolBackward(let layout),
      .maxPoolBackward(let layout):
      text = layoutName(layout)
    case .raggedAveragePool(let layout), .raggedMaxPool(let layout):
      text = layout == .channelsFirst ? "nc*" : "n*c"

    case .denseBackward(let weightLayout): text = weightLayout.rawValue
    case .dense(let weightLayout, let activation, let bias):
      text = "\(weightLayout.rawValue) \(activation.rawValue)" + (bias ? " +bias" : "")
    case .head(let layout, let activation): text = "\(layoutName(layout)) \(activation.rawValue)"
    }
    if scalarType != .float32 { text += " \(scalarType.rawValue)" }
    return special ? text + " ties/nan/inf" : text
  }

  /// The shape as the table prints it; a ragged batch lists its samples' extents.
  public var shapeDescription: String {
    guard !extents.isEmpty else { return Tensor.describe(shape) }
    return "\(Tensor.describe(shape)) [" + extents.map(Tensor.describe).joined(separator: ",") + "]"
  }

  public var description: String { "\(operationName) \(variant) \(shapeDescription)" }

  /// Operation and variant, e.g. "avg nchw": what a row prints before the shape.
  public var label: String { "\(operationName) \(variant)" }

  /// The grid `clpool selftest` and the parity tests run: spatial 1×1 to ≥ 2^20 elements per
  /// plane, N and C including 1 and primes, ranks 3–5, both layouts, the ResNet-50 head, and max
  /// data with ties, NaN and ±Inf.
  public static let standard: [SelfTestCase] = {
    let poolShapes: [[Int]] = [
      [1, 1, 1, 1], [2, 3, 1, 1], [3, 5, 3, 5], [1, 7, 7, 7], [8, 2048, 7, 7], [5, 7, 13, 17],
      [2, 13, 56, 56], [1, 3, 224, 224], [2, 3, 1031, 1019], [1, 1, 1], [3, 5, 97], [1, 2, 8191],
      [2, 3, 4, 5, 6], [7, 1, 2, 3, 1],
    ]
    var cases: [SelfTestCase] = []
    for layout in Layout.allCases {
      for shape in poolShapes {
        cases.append(SelfTestCase(.averagePool(layout), shape))
        cases.append(SelfTestCase(.maxPool(layout), shape, special: true))
      }
      cases.append(SelfTestCase(.averagePool(layout), [4, 6, 7, 7], special: true))
      // Planes of several blocks: an infinity must survive the compensated sums that follow it.
      cases.append(SelfTestCase(.averagePool(layout), [2, 5, 37, 41], special: true))
      cases.append(SelfTestCase(.maxPool(layout), [2, 5, 37, 41], special: true))
      cases.append(SelfTestCase(.maxPool(layout), [4, 9, 7, 7]))
    }
    cases += [
      SelfTestCase(.dense(.inOut, .none, bias: true), [8, 2048, 1000]),
      SelfTestCase(.dense(.outIn, .relu, bias: true), [1, 2048, 1000]),
      SelfTestCase(.dense(.inOut, .sigmoid, bias: false), [7, 13, 5]),
      SelfTestCase(.dense(.outIn, .softmax, bias: true), [33, 129, 67]),
      SelfTestCase(.dense(.inOut, .softmax, bias: true), [5, 1000, 3]),
      SelfTestCase(.dense(.inOut, .none, bias: false), [1, 1, 1]),
      SelfTestCase(.dense(.outIn, .none, bias: false), [64, 64, 1]),
      SelfTestCase(.dense(.inOut, .relu, bias: true), [17, 31, 9]),
      SelfTestCase(.dense(.outIn, .relu, bias: true), [17, 31, 9]),
      SelfTestCase(.head(.channelsFirst, .softmax), [8, 2048, 7, 7, 1000]),
      SelfTestCase(.head(.channelsLast, .none), [3, 64, 5, 5, 10]),
      SelfTestCase(.head(.channelsFirst, .relu), [13, 37, 3, 1, 29]),
      SelfTestCase(.head(.channelsLast, .sigmoid), [1, 5, 2, 3, 4, 17]),
    ]
    for layout in Layout.allCases {
      for shape in [[8, 2048, 7, 7], [3, 5, 13, 17], [2, 3, 97], [1, 7, 2, 3, 5]] {
        cases.append(SelfTestCase(.averagePoolBackward(layout), shape))
        cases.append(SelfTestCase(.maxPoolBackward(layout), shape, special: true))
      }
    }
    for weightLayout in WeightLayout.allCases {
      cases.append(SelfTestCase(.denseBackward(weightLayout), [8, 2048, 1000]))
      cases.append(SelfTestCase(.denseBackward(weightLayout), [7, 13, 5]))
      cases.append(SelfTestCase(.denseBackward(weightLayout), [1, 3, 1]))
    }
    // Ragged batches: 1x1 to 56x56 samples, 1-D and 3-D ones, a C that is no multiple of 8 and
    // ones that are (the channels-last kernel's vector path), in every storage type.
    let ragged: [(channels: Int, extents: [[Int]])] = [
      (13, [[1, 1], [7, 5], [13, 17], [56, 56], [2, 3], [1, 9]]),
      (16, [[9, 9], [1, 1], [31, 7]]),
      (5, [[97], [1], [300]]),
      (3, [[2, 3, 4], [1, 1, 1], [5, 1, 7]]),
      (2048, [[7, 7], [5, 9]]),
    ]
    for type in ScalarType.allCases {
      for layout in Layout.allCases {
        for (channels, extents) in ragged {
          let shape = [extents.count, channels]
          cases.append(SelfTestCase(.raggedAveragePool(layout), shape, scalarType: type, extents: extents))
          cases.append(SelfTestCase(.raggedMaxPool(layout), shape, special: true, scalarType: type, extents: extents))
        }
      }
    }
    // float16 and float64 storage: pooling over awkward shapes, dense and the head.
    for type in [ScalarType.float16, .float64] {
      for layout in Layout.allCases {
        for shape in [[1, 1, 1, 1], [5, 7, 13, 17], [2, 13, 9, 9], [8, 2048, 7, 7], [3, 5, 97], [2, 3, 4, 5, 6], [1, 2, 300, 300]] {
          cases.append(SelfTestCase(.averagePool(layout), shape, scalarType: type))
          cases.append(SelfTestCase(.maxPool(layout), shape, special: true, scalarType: type))
        }
        cases.append(SelfTestCase(.averagePool(layout), [2, 5, 37, 41], special: true, scalarType: type))
        // Plain data: float64's low-order bits must survive the max too.
        cases.append(SelfTestCase(.maxPool(layout), [3, 5, 13, 17], scalarType: type))
      }
      cases += [
        SelfTestCase(.dense(.inOut, .none, bias: true), [8, 2048, 1000], scalarType: type),
        SelfTestCase(.dense(.outIn, .softmax, bias: true), [33, 129, 67], scalarType: type),
        SelfTestCase(.dense(.inOut, .sigmoid, bias: false), [1, 13, 5], scalarType: type),
        SelfTestCase(.dense(.outIn, .relu, bias: true), [17, 31, 9], scalarType: type),
        SelfTestCase(.head(.channelsFirst, .softmax), [8, 2048, 7, 7, 1000], scalarType: type),
        SelfTestCase(.head(.channelsLast, .relu), [13, 37, 3, 1, 29], scalarType: type),
      ]
    }
    return cases
  }()
}

/// A case with its inputs drawn and its float64 reference computed, ready to run on backends.
public struct PreparedSelfTest: Sendable {
  public let testCase: SelfTestCase
  /// The inputs in the case's storage type.
  let inputs: StoredInputs
  let reference: Reference
  /// Max-pool backward: the forward pass's first-max positions.
  private let forwardIndices: [Int64]

  enum StoredInputs: Sendable {
    case float16([TypedTensor<Float16>])
    case float32([Tensor])
    case float64([TypedTensor<Double>])
  }

  enum Reference: Sendable {
    case average(mean: [Double], meanAbs: [Double])
    case max(values: [Double], indices: [Int64])
    case dense([Double])
    /// Results that must match bit for bit (each is one rounding of the exact value).
    case exact([Double])
  }

  /// Draws the case's data from a generator seeded by `seed` and the case, so one seed
  /// reproduces a whole run and every case gets different data. The data are drawn in float32
  /// and stored in the case's type: rounded for float16, given low-order bits float32 cannot hold
  /// for float64 (so a backend computing float64 in float32 fails); the reference is computed on
  /// the stored values.
  public init(_ testCase: SelfTestCase, seed: UInt64) throws {
    self.testCase = testCase
    guard testCase.scalarType == .float32 || testCase.operation.isForward else {
      throw CLPoolError.invalidArgument("\(testCase): backward passes run in float32 only")
    }
    var random = SplitMix64(seed: seed ^ testCase.description.hashValueStable)
    let drawn = try Self.draw(testCase, &random)
    let values: [[Double]]
    switch testCase.scalarType {
    case .float16:
      let stored = drawn.map { TypedTensor<Float16>(converting: $0) }
      inputs = .float16(stored)
      values = stored.map { $0.scalars.map(Double.init) }
    case .float32:
      inputs = .float32(drawn)
      values = drawn.map { $0.scalars.map(Double.init) }
    case .float64:
      // Ties stay ties (special max data sit on a grid); everything else gets bits below float32's.
      let stored = try drawn.map { tensor in
        try TypedTensor<Double>(
          shape: tensor.shape,
          scalars: tensor.scalars.map { value in
            testCase.special ? Double(value) : Double(value) * (1 + Double(random.nextFloat(in: -1..<1)) * 0x1p-30)
          })
      }
      inputs = .float64(stored)
      values = stored.map(\.scalars)
    }
    (reference, forwardIndices) = try Self.reference(testCase, shapes: drawn.map(\.shape), values)
  }

  /// The case's inputs in float32: the pooling input, dense x / W / b, and so on.
  private static func draw(_ testCase: SelfTestCase, _ random: inout SplitMix64) throws -> [Tensor] {
    let isMax = {
      switch testCase.operation {
      case .maxPool, .maxPoolBackward, .raggedMaxPool: return true
      default: return false
      }
    }()
    let special: TestData.Special? = testCase.special ? (isMax ? .forMax : .forAverage) : nil
    switch testCase.operation {
    case .averagePool(let layout), .maxPool(let layout):
      return [try TestData.poolInput(testCase.shape, layout: layout, special: special, random: &random)]
    case .raggedAveragePool(let layout), .raggedMaxPool(let layout):
      // Each sample drawn as a batch of one, then stored without the batch axis.
      return try testCase.extents.map { extent in
        let sample = try TestData.poolInput([1, testCase.shape[1]] + extent, layout: layout, special: special, random: &random)
        return try sample.reshaped(Array(sample.shape.dropFirst()))
      }
    case .dense(let weightLayout, _, let hasBias):
      let (n, k, m) = (testCase.shape[0], testCase.shape[1], testCase.shape[2])
      let x = try TestData.uniform([n, k], in: -1..<1, random: &random)
      let w = try TestData.uniform(weightLayout == .inOut ? [k, m] : [m, k], in: -1..<1, random: &random)
      return [x, w] + (hasBias ? [try TestData.uniform([m], in: -1..<1, random: &random)] : [])
    case .averagePoolBackward(let layout), .maxPoolBackward(let layout):
      let x = try TestData.poolInput(testCase.shape, layout: layout, special: isMax ? .forMax : nil, random: &random)
      let geometry = try PoolGeometry(shape: x.shape, layout: layout)
      return [x, try TestData.uniform([geometry.batch, geometry.channels], in: -1..<1, random: &random)]
    case .denseBackward(let weightLayout):
      let (n, k, m) = (testCase.shape[0], testCase.shape[1], testCase.shape[2])
      let x = try TestData.uniform([n, k], in: -1..<1, random: &random)
      let w = try TestData.uniform(weightLayout == .inOut ? [k, m] : [m, k], in: -1..<1, random: &random)
      return [x, w, try TestData.uniform([n, m], in: -1..<1, random: &random)]
    case .head(let layout, _):
      let poolShape = Array(testCase.shape.dropLast())
      let (c, m) = (poolShape[1], testCase.shape.last!)
      let x = try TestData.poolInput(poolShape, layout: layout, special: nil, random: &random)
      // Scaled like a trained layer (≈ 1/√C) so softmax is not saturated.
      let scale = Float(1 / Double(c).squareRoot())
      let w = try TestData.uniform([c, m], in: -scale..<scale, random: &random)
      return [x, w, try TestData.uniform([m], in: -0.1..<0.1, random: &random)]
    }
  }

  /// The float64 reference of the case on `values` (the inputs as stored, widened exactly), and
  /// for max-pool backward the forward pass's indices.
  private static func reference(_ testCase: SelfTestCase, shapes: [[Int]], _ values: [[Double]]) throws
    -> (Reference, [Int64])
  {
    switch testCase.operation {
    case .averagePool(let layout):
      let (mean, meanAbs) = Float64Reference.averagePool(values[0], try PoolGeometry(shape: shapes[0], layout: layout))
      return (.average(mean: mean, meanAbs: meanAbs), [])
    case .maxPool(let layout):
      let (maxima, indices) = Float64Reference.maxPool(values[0], try PoolGeometry(shape: shapes[0], layout: layout))
      return (.max(values: maxima, indices: indices), [])
    case .raggedAveragePool(let layout):
      var (mean, meanAbs): ([Double], [Double]) = ([], [])
      for (shape, sample) in zip(shapes, values) {
        let result = Float64Reference.averagePool(sample, try PoolGeometry(shape: [1] + shape, layout: layout))
        mean += result.mean
        meanAbs += result.meanAbs
      }
      return (.average(mean: mean, meanAbs: meanAbs), [])
    case .raggedMaxPool(let layout):
      var (maxima, indices): ([Double], [Int64]) = ([], [])
      for (shape, sample) in zip(shapes, values) {
        let result = Float64Reference.maxPool(sample, try PoolGeometry(shape: [1] + shape, layout: layout))
        maxima += result.values
        indices += result.indices
      }
      return (.max(values: maxima, indices: indices), [])
    case .dense(let weightLayout, let activation, let hasBias):
      let geometry = try DenseGeometry(
        input: shapes[0], weight: shapes[1], bias: hasBias ? shapes[2] : nil, weightLayout: weightLayout)
      return (.dense(Float64Reference.dense(values[0], values[1], hasBias ? values[2] : nil, geometry, activation)), [])
    case .averagePoolBackward(let layout), .maxPoolBackward(let layout):
      let geometry = try PoolGeometry(shape: shapes[0], layout: layout)
      guard case .maxPoolBackward = testCase.operation else {
        return (.exact(Float64Reference.averagePoolBackward(values[1], geometry)), [])
      }
      let forward = Float64Reference.maxPool(values[0], geometry)
      return (.exact(Float64Reference.maxPoolBackward(values[1], indices: forward.indices, geometry)), forward.indices)
    case .denseBackward(let weightLayout):
      let geometry = try DenseGeometry(input: shapes[0], weight: shapes[1], bias: nil, weightLayout: weightLayout)
      let gradients = Float64Reference.denseBackward(values[2], values[0], values[1], geometry)
      return (.dense(gradients.input + gradients.weight + gradients.bias), [])
    case .head(let layout, let activation):
      let poolGeometry = try PoolGeometry(shape: shapes[0], layout: layout)
      let denseGeometry = try DenseGeometry(
        input: [poolGeometry.batch, poolGeometry.channels], weight: shapes[1], bias: shapes[2], weightLayout: .inOut)
      let pooled = Float64Reference.averagePool(values[0], poolGeometry).mean
      return (.dense(Float64Reference.dense(pooled, values[1], values[2], denseGeometry, activation)), [])
    }
  }

  /// Runs the case once on `backend` and checks it; errors become a failed result, a storage
  /// type the backend does not have a skipped one (with the reason).
  public func run(on backend: any Backend) -> SelfTestResult {
    let start = DispatchTime.now().uptimeNanoseconds
    func result(_ outcome: CheckOutcome, skipped: String? = nil) -> SelfTestResult {
      let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9
      return SelfTestResult(testCase: testCase, backend: backend.label, outcome: outcome, seconds: seconds, skipped: skipped)
    }
    do {
      try backend.checkSupport(testCase.scalarType)
    } catch {
      return result(CheckOutcome(maxError: 0, tolerance: 0, mismatch: nil), skipped: "\(error)")
    }
    do {
      return result(try check(backend))
    } catch {
      return result(CheckOutcome(maxError: .infinity, tolerance: 0, mismatch: "error: \(error)"))
    }
  }

  private func check(_ backend: any Backend) throws -> CheckOutcome {
    switch inputs {
    case .float16(let tensors): return try checkForward(tensors, backend)
    case .float64(let tensors): return try checkForward(tensors, backend)
    case .float32(let tensors):
      return testCase.operation.isForward ? try checkForward(tensors, backend) : try checkBackward(tensors, backend)
    }
  }

  private func checkForward<S: StorageScalar>(_ inputs: [TypedTensor<S>], _ backend: any Backend) throws -> CheckOutcome {
    let type = S.scalarType
    /// Backends may take a faster path without positions: check the values of both.
    func checkMax(_ reference: (values: [Double], indices: [Int64]), _ pool: (Bool) throws -> MaxPoolResult<S>) throws
      -> CheckOutcome
    {
      let withIndices = try pool(true)
      let outcome = CrossCheck.maxPool(withIndices.values.scalars, indices: withIndices.indices, reference: reference)
      guard outcome.passed else { return outcome }
      var second = CrossCheck.maxPool(try pool(false).values.scalars, indices: nil, reference: reference)
      if let mismatch = second.mismatch { second.mismatch = "without indices: " + mismatch }
      return second
    }
    switch (testCase.operation, reference) {
    case (.averagePool(let layout), .average(let mean, let meanAbs)):
      let output = try backend.globalAveragePool(inputs[0], layout: layout, keepDims: false)
      return CrossCheck.averagePool(output.scalars, reference: (mean, meanAbs), type: type)
    case (.maxPool(let layout), .max(let values, let indices)):
      return try checkMax((values, indices)) {
        try backend.globalMaxPool(inputs[0], layout: layout, keepDims: false, returnIndices: $0)
      }
    case (.raggedAveragePool(let layout), .average(let mean, let meanAbs)):
      let output = try backend.globalAveragePool(try RaggedBatch(samples: inputs, layout: layout))
      return CrossCheck.averagePool(output.scalars, reference: (mean, meanAbs), type: type)
    case (.raggedMaxPool(let layout), .max(let values, let indices)):
      let batch = try RaggedBatch(samples: inputs, layout: layout)
      return try checkMax((values, indices)) { try backend.globalMaxPool(batch, returnIndices: $0) }
    case (.dense(let weightLayout, let activation, _), .dense(let expected)):
      let output = try backend.dense(
        inputs[0], weight: inputs[1], bias: inputs.count > 2 ? inputs[2] : nil,
        weightLayout: weightLayout, activation: activation)
      return CrossCheck.dense(output.scalars, reference: expected, type: type)
    case (.head(let layout, let activation), .dense(let expected)):
      let output = try backend.head(
        inputs[0], layout: layout, weight: inputs[1], bias: inputs[2], weightLayout: .inOut,
        activation: activation)
      return CrossCheck.dense(output.scalars, reference: expected, type: type)
    default:
      preconditionFailure("reference does not match the operation")
    }
  }

  private func checkBackward(_ inputs: [Tensor], _ backend: any Backend) throws -> CheckOutcome {
    switch (testCase.operation, reference) {
    case (.averagePoolBackward(let layout), .exact(let expected)):
      let dx = try backend.globalAveragePoolBackward(inputs[1], inputShape: inputs[0].shape, layout: layout)
      return CrossCheck.exact(dx.scalars, reference: expected)
    case (.maxPoolBackward(let layout), .exact(let expected)):
      let dx = try backend.globalMaxPoolBackward(
        inputs[1], indices: forwardIndices, inputShape: inputs[0].shape, layout: layout)
      return CrossCheck.exact(dx.scalars, reference: expected)
    case (.denseBackward(let weightLayout), .dense(let expected)):
      let gradients = try backend.denseBackward(inputs[2], input: inputs[0], weight: inputs[1], weightLayout: weightLayout)
      return CrossCheck.dense(gradients.input.scalars + gradients.weight.scalars + gradients.bias.scalars, reference: expected)
    default:
      preconditionFailure("reference does not match the operation")
    }
  }
}

public struct SelfTestResult: Sendable {
  public let testCase: SelfTestCase
  /// `Backend.label`, e.g. "opencl: pthread-haswell-AMD EPYC (Portable Computing Language)".
  public let backend: String
  public let outcome: CheckOutcome
  public let seconds: Double
  /// Why the case did not run on this backend (a storage type its device lacks); nil if it ran.
  public let skipped: String?
  public var passed: Bool { skipped == nil && outcome.passed }
  public var failed: Bool { skipped == nil && !outcome.passed }
}

/// Input data for cross-checks: fresh random values, never zeros, with optional planes of
/// special values.
public enum TestData {
  public enum Special: Sendable {
    /// Values on a 0.25 grid (many ties), planes with NaN, with two +Inf, all −Inf.
    case forMax
    /// Planes with NaN, +Inf, −Inf, and both infinities (whose mean is NaN).
    case forAverage
  }

  public static func uniform(_ shape: [Int], in range: Range<Float>, random: inout SplitMix64) throws -> Tensor {
    let count = try Tensor.elementCount(of: shape)
    var values = [Float](repeating: 0, count: count)
    for i in 0..<count { values[i] = random.nextFloat(in: range) }
    return try Tensor(shape: shape, scalars: values)
  }

  /// Values uniform in [−1, 3) (a non-zero mean makes accumulation error visible), drawn for the
  /// channels-first shape [N, C, spatial...] and stored in `layout`.
  public static func poolInput(
    _ channelsFirstShape: [Int], layout: Layout, special: Special?, random: inout SplitMix64
  ) throws -> Tensor {
    let (batch, channels) = (channelsFirstShape[0], channelsFirstShape[1])
    let spatial = channelsFirstShape[2...].reduce(1, *)
    var planes = try uniform(channelsFirstShape, in: -1..<3, random: &random).scalars
    if let special {
      for plane in 0..<(batch * channels) {
        let base = plane * spatial
        func at(_ value: Float) { planes[base + Int(random.next() % UInt64(spatial))] = value }
        if special == .forMax {
          for s in 0..<spatial { planes[base + s] = (planes[base + s] * 4).rounded() / 4 }
        }
        switch (plane % 5, special) {
        case (1, _): at(.nan); at(.nan)
        case (2, _): at(.infinity); at(.infinity)
        case (3, .forMax): for s in 0..<spatial { planes[base + s] = -.infinity }
        case (3, .forAverage): at(.infinity); at(-.infinity)
        case (4, _): at(-.infinity)
        default: break
        }
      }
    }
    guard layout == .channelsLast else { return try Tensor(shape: channelsFirstShape, scalars: planes) }
    var permuted = [Float](repeating: 0, count: planes.count)
    for n in 0..<batch {
      for c in 0..<channels {
        for s in 0..<spatial {
          permuted[(n * spatial + s) * channels + c] = planes[(n * channels + c) * spatial + s]
        }
      }
    }
    let shape = [batch] + Array(channelsFirstShape[2...]) + [channels]
    return try Tensor(shape: shape, scalars: permuted)
  }
}

/// A small, fast, seedable generator (SplitMix64), so every run draws the same data.
public struct SplitMix64: RandomNumberGenerator, Sendable {
  private var state: UInt64

  public init(seed: UInt64) { state = seed }

  public mutating func next() -> UInt64 {
    state &+= 0x9E37_79B9_7F4A_7C15
    var z = state
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
  }

  /// Uniform in `range`, on a 2^-24 grid.
  public mutating func nextFloat(in range: Range<Float>) -> Float {
    let unit = Float(next() >> 40) * 0x1p-24
    return range.lowerBound + unit * (range.upperBound - range.lowerBound)
  }
}

extension String {
  /// FNV-1a of the UTF-8 bytes: unlike `hashValue`, the same in every process.
  var hashValueStable: UInt64 {
    utf8.reduce(0xcbf2_9ce4_8422_2325) { ($0 ^ UInt64($1)) &* 0x0000_0100_0000_01B3 }
  }
}
