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
  }

  public let operation: Operation
  /// Pooling and head: the channels-first shape [N, C, spatial...] (channels-last cases store the
  /// same values permuted to [N, spatial..., C]). Dense: [N, K, M]. Head: [N, C, spatial..., M].
  public let shape: [Int]
  /// Data with ties, NaN, +Inf and -Inf planes instead of plain uniform values.
  public let special: Bool

  public init(_ operation: Operation, _ shape: [Int], special: Bool = false) {
    self.operation = operation
    self.shape = shape
    self.special = special
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
    case .denseBackward(let weightLayout): text = weightLayout.rawValue
    case .dense(let weightLayout, let activation, let bias):
      text = "\(weightLayout.rawValue) \(activation.rawValue)" + (bias ? " +bias" : "")
    case .head(let layout, let activation): text = "\(layoutName(layout)) \(activation.rawValue)"
    }
    return special ? text + " ties/nan/inf" : text
  }

  public var description: String { "\(operationName) \(variant) \(Tensor.describe(shape))" }

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
    return cases
  }()
}

/// A case with its inputs drawn and its float64 reference computed, ready to run on backends.
public struct PreparedSelfTest: Sendable {
  public let testCase: SelfTestCase
  let inputs: [Tensor]
  let reference: Reference
  /// Max-pool backward: the forward pass's first-max positions.
  private var forwardIndices: [Int64] = []

  enum Reference: Sendable {
    case average(mean: [Double], meanAbs: [Double])
    case max(values: [Double], indices: [Int64])
    case dense([Double])
    /// Results that must match bit for bit (each is one rounding of the exact value).
    case exact([Double])
  }

  /// Draws the case's data from a generator seeded by `seed` and the case, so one seed
  /// reproduces a whole run and every case gets different data.
  public init(_ testCase: SelfTestCase, seed: UInt64) throws {
    self.testCase = testCase
    var random = SplitMix64(seed: seed ^ testCase.description.hashValueStable)
    switch testCase.operation {
    case .averagePool(let layout), .maxPool(let layout):
      let isMax = { if case .maxPool = testCase.operation { return true } else { return false } }()
      let x = try TestData.poolInput(
        testCase.shape, layout: layout, special: testCase.special ? (isMax ? .forMax : .forAverage) : nil,
        random: &random)
      let geometry = try PoolGeometry(shape: x.shape, layout: layout)
      inputs = [x]
      if isMax {
        let (values, indices) = Float64Reference.maxPool(x.scalars, geometry)
        reference = .max(values: values, indices: indices)
      } else {
        let (mean, meanAbs) = Float64Reference.averagePool(x.scalars, geometry)
        reference = .average(mean: mean, meanAbs: meanAbs)
      }
    case .dense(let weightLayout, let activation, let hasBias):
      let (n, k, m) = (testCase.shape[0], testCase.shape[1], testCase.shape[2])
      let x = try TestData.uniform([n, k], in: -1..<1, random: &random)
      let w = try TestData.uniform(weightLayout == .inOut ? [k, m] : [m, k], in: -1..<1, random: &random)
      let b = hasBias ? try TestData.uniform([m], in: -1..<1, random: &random) : nil
      let geometry = try DenseGeometry(input: x.shape, weight: w.shape, bias: b?.shape, weightLayout: weightLayout)
      inputs = [x, w] + (b.map { [$0] } ?? [])
      reference = .dense(
        Float64Reference.dense(x.scalars.map(Double.init), w.scalars, b?.scalars, geometry, activation))
    case .averagePoolBackward(let layout), .maxPoolBackward(let layout):
      let isMax = { if case .maxPoolBackward = testCase.operation { return true } else { return false } }()
      let x = try TestData.poolInput(testCase.shape, layout: layout, special: isMax ? .forMax : nil, random: &random)
      let geometry = try PoolGeometry(shape: x.shape, layout: layout)
      let dz = try TestData.uniform([geometry.batch, geometry.channels], in: -1..<1, random: &random)
      let forward = Float64Reference.maxPool(x.scalars, geometry)
      inputs = [x, dz]
      forwardIndices = forward.indices
      reference = .exact(
        isMax
          ? Float64Reference.maxPoolBackward(dz.scalars, indices: forward.indices, geometry)
          : Float64Reference.averagePoolBackward(dz.scalars, geometry))
    case .denseBackward(let weightLayout):
      let (n, k, m) = (testCase.shape[0], testCase.shape[1], testCase.shape[2])
      let x = try TestData.uniform([n, k], in: -1..<1, random: &random)
      let w = try TestData.uniform(weightLayout == .inOut ? [k, m] : [m, k], in: -1..<1, random: &random)
      let dy = try TestData.uniform([n, m], in: -1..<1, random: &random)
      let geometry = try DenseGeometry(input: x.shape, weight: w.shape, bias: nil, weightLayout: weightLayout)
      inputs = [x, w, dy]
      let gradients = Float64Reference.denseBackward(dy.scalars, x.scalars, w.scalars, geometry)
      reference = .dense(gradients.input + gradients.weight + gradients.bias)
    case .head(let layout, let activation):
      let poolShape = Array(testCase.shape.dropLast())
      let (c, m) = (poolShape[1], testCase.shape.last!)
      let x = try TestData.poolInput(poolShape, layout: layout, special: nil, random: &random)
      // Scaled like a trained layer (≈ 1/√C) so softmax is not saturated.
      let scale = Float(1 / Double(c).squareRoot())
      let w = try TestData.uniform([c, m], in: -scale..<scale, random: &random)
      let b = try TestData.uniform([m], in: -0.1..<0.1, random: &random)
      let poolGeometry = try PoolGeometry(shape: x.shape, layout: layout)
      let denseGeometry = try DenseGeometry(
        input: [poolGeometry.batch, c], weight: w.shape, bias: b.shape, weightLayout: .inOut)
      inputs = [x, w, b]
      let pooled = Float64Reference.averagePool(x.scalars, poolGeometry).mean
      reference = .dense(Float64Reference.dense(pooled, w.scalars, b.scalars, denseGeometry, activation))
    }
  }

  /// Runs the case once on `backend` and checks it; errors become a failed result.
  public func run(on backend: any Backend) -> SelfTestResult {
    let start = DispatchTime.now().uptimeNanoseconds
    do {
      let outcome = try check(backend)
      let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9
      return SelfTestResult(testCase: testCase, backend: backend.label, outcome: outcome, seconds: seconds)
    } catch {
      let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9
      let outcome = CheckOutcome(maxError: .infinity, tolerance: 0, mismatch: "error: \(error)")
      return SelfTestResult(testCase: testCase, backend: backend.label, outcome: outcome, seconds: seconds)
    }
  }

  private func check(_ backend: any Backend) throws -> CheckOutcome {
    switch (testCase.operation, reference) {
    case (.averagePool(let layout), .average(let mean, let meanAbs)):
      let output = try backend.globalAveragePool(inputs[0], layout: layout, keepDims: false)
      return CrossCheck.averagePool(output.scalars, reference: (mean, meanAbs))
    case (.maxPool(let layout), .max(let values, let indices)):
      // Backends may take a faster path without positions: check the values of both.
      let withIndices = try backend.globalMaxPool(inputs[0], layout: layout, keepDims: false, returnIndices: true)
      let outcome = CrossCheck.maxPool(withIndices.values.scalars, indices: withIndices.indices, reference: (values, indices))
      guard outcome.passed else { return outcome }
      let valuesOnly = try backend.globalMaxPool(inputs[0], layout: layout, keepDims: false, returnIndices: false)
      var second = CrossCheck.maxPool(valuesOnly.values.scalars, indices: nil, reference: (values, indices))
      if let mismatch = second.mismatch { second.mismatch = "without indices: " + mismatch }
      return second
    case (.dense(let weightLayout, let activation, _), .dense(let expected)):
      let output = try backend.dense(
        inputs[0], weight: inputs[1], bias: inputs.count > 2 ? inputs[2] : nil,
        weightLayout: weightLayout, activation: activation)
      return CrossCheck.dense(output.scalars, reference: expected)
    case (.head(let layout, let activation), .dense(let expected)):
      let output = try backend.head(
        inputs[0], layout: layout, weight: inputs[1], bias: inputs[2], weightLayout: .inOut,
        activation: activation)
      return CrossCheck.dense(output.scalars, reference: expected)
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
  public var passed: Bool { outcome.passed }
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
