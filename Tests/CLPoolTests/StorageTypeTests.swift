import CLPool
import Testing

/// float16 and float64 storage: what each type promises beyond the parity grid.
@Suite struct StorageTypeTests {
  static let backends = TestBackends.all

  /// float16 storage accumulates in float32 and rounds once: a plane whose running sum leaves
  /// half's range (65504) still averages correctly, and a mean that half cannot hold is its
  /// nearest half.
  @Test(arguments: backends)
  func float16AccumulatesInFloat32(_ candidate: BackendUnderTest) throws {
    let x = try TypedTensor<Float16>(shape: [1, 2, 3], scalars: [60000, 60000, -60000, 1, 2, 2])
    let mean = try candidate.backend.globalAveragePool(x, layout: .channelsFirst, keepDims: false)
    #expect(mean.scalars == [20000, Float16(Float(5) / 3)], "\(candidate.name)")
    let max = try candidate.backend.globalMaxPool(x, layout: .channelsFirst, keepDims: false, returnIndices: true)
    #expect(max.values.scalars == [60000, 2] && max.indices == [0, 1], "\(candidate.name)")
    // The head's product too: 300 * 300 overflows half but not its float32 sums.
    let head = try candidate.backend.head(
      try TypedTensor<Float16>(shape: [1, 2, 1], scalars: [300, 300]), layout: .channelsFirst,
      weight: try TypedTensor<Float16>(shape: [2, 1], scalars: [300, -299]), bias: nil, weightLayout: .inOut,
      activation: .none)
    #expect(head.scalars == [300], "\(candidate.name)")
  }

  /// float64 keeps bits float32 cannot: values 1 + k·2^-40 average to within a few float64 ulps
  /// (float32 would return exactly 1), and so does a dense product of them.
  @Test(arguments: backends)
  func float64KeepsFloat64Precision(_ candidate: BackendUnderTest) throws {
    do {
      try candidate.backend.checkSupport(.float64)
    } catch {
      print("note: float64 test skipped on \(candidate.name): \(error)")
      return
    }
    let count = 1000
    let values = (0..<count).map { 1 + Double($0) * 0x1p-40 }
    let exact = 1 + Double(count - 1) / 2 * 0x1p-40
    for layout in Layout.allCases {
      let x = try TypedTensor<Double>(shape: layout == .channelsFirst ? [1, 1, count] : [1, count, 1], scalars: values)
      let mean = try candidate.backend.globalAveragePool(x, layout: layout, keepDims: false).scalars[0]
      #expect(abs(mean - exact) <= 4 * exact.ulp, "\(candidate.name) \(layout): \(mean - exact)")
    }
    let y = try candidate.backend.dense(
      try TypedTensor<Double>(shape: [1, count], scalars: values),
      weight: try TypedTensor<Double>(shape: [count, 1], repeating: 1.0 / 1024), bias: nil, weightLayout: .inOut,
      activation: .none)
    let exactSum = values.reduce(0, +) / 1024
    #expect(abs(y.scalars[0] - exactSum) <= 1e-14 * exactSum, "\(candidate.name): \(y.scalars[0] - exactSum)")
  }

  /// A float16 input of more than 2^20 elements, with planes past one Kahan block and
  /// channels-last rows past one vector, in both layouts, against the reference.
  @Test(arguments: backends)
  func largeFloat16Inputs(_ candidate: BackendUnderTest) throws {
    var random = SplitMix64(seed: TestBackends.seed)
    for layout in Layout.allCases {
      let x = TypedTensor<Float16>(
        converting: try TestData.poolInput([3, 512, 30, 30], layout: layout, special: .forMax, random: &random))
      let geometry = try PoolGeometry(shape: x.shape, layout: layout)
      let values = x.scalars.map(Double.init)
      let mean = try candidate.backend.globalAveragePool(x, layout: layout, keepDims: false)
      let meanCheck = CrossCheck.averagePool(mean.scalars, reference: Float64Reference.averagePool(values, geometry), type: .float16)
      #expect(meanCheck.passed, "\(candidate.name) \(layout): \(meanCheck.mismatch ?? "")")
      let max = try candidate.backend.globalMaxPool(x, layout: layout, keepDims: false, returnIndices: true)
      let maxCheck = CrossCheck.maxPool(max.values.scalars, indices: max.indices, reference: Float64Reference.maxPool(values, geometry))
      #expect(maxCheck.passed, "\(candidate.name) \(layout): \(maxCheck.mismatch ?? "")")
    }
  }

  /// Calls of different storage types reuse one backend's buffers: poisoning fills only what
  /// each call writes (a float16 call may leave a buffer whose size is no multiple of 4 or 8).
  @Test(arguments: backends)
  func typesShareReusedBuffers(_ candidate: BackendUnderTest) throws {
    let backend = candidate.backend
    let halves = try TypedTensor<Float16>(shape: [1, 3, 2], scalars: [1, 2, 3, 4, 5, 6])
    #expect(try backend.globalAveragePool(halves, layout: .channelsFirst).scalars == [1.5, 3.5, 5.5])
    #expect(try backend.globalAveragePool(try Tensor(shape: [1, 1, 2], scalars: [1, 2]), layout: .channelsFirst).scalars == [1.5])
    let five = try TypedTensor<Float16>(shape: [1, 5, 1], scalars: [1, 2, 3, 4, 5])
    #expect(try backend.globalMaxPool(five, layout: .channelsFirst).scalars == [1, 2, 3, 4, 5])
    if (try? backend.checkSupport(.float64)) != nil {
      #expect(try backend.globalAveragePool(try TypedTensor<Double>(shape: [1, 1, 2], scalars: [1, 2]), layout: .channelsFirst).scalars == [1.5])
    }
  }

  /// What each backend says it supports matches the device: the CPU everything, OpenCL float16
  /// everywhere (storage only, through vload_half) and float64 exactly where cl_khr_fp64 is.
  @Test(arguments: backends)
  func supportFollowsTheDevice(_ candidate: BackendUnderTest) throws {
    try candidate.backend.checkSupport(.float32)
    try candidate.backend.checkSupport(.float16)
    guard let device = (candidate.backend as? OpenCLBackend)?.device else {
      try candidate.backend.checkSupport(.float64)
      return
    }
    if device.supportsFP64 {
      try candidate.backend.checkSupport(.float64)
    } else {
      #expect(throws: CLPoolError.self) { try candidate.backend.checkSupport(.float64) }
    }
  }

  /// Every typed forward op repeats bit for bit.
  @Test(arguments: backends)
  func typedResultsAreDeterministic(_ candidate: BackendUnderTest) throws {
    func check<S: StorageScalar>(_: S.Type) throws {
      var random = SplitMix64(seed: TestBackends.seed)
      let x = TypedTensor<S>(converting: try TestData.uniform([3, 40, 61, 67], in: -1..<3, random: &random))
      let w = TypedTensor<S>(converting: try TestData.uniform([40, 9], in: -0.2..<0.2, random: &random))
      let backend = candidate.backend
      let runs: [(String, () throws -> [S])] = [
        ("avg", { try backend.globalAveragePool(x, layout: .channelsLast, keepDims: false).scalars }),
        ("max", { try backend.globalMaxPool(x, layout: .channelsFirst, keepDims: false, returnIndices: true).values.scalars }),
        ("head", { try backend.head(x, layout: .channelsFirst, weight: w, bias: nil, weightLayout: .inOut, activation: .softmax).scalars }),
        ("dense", { try backend.dense(try x.reshaped([3 * 40 * 61, 67]), weight: try TypedTensor<S>(shape: [67, 2], repeating: 1)).scalars }),
      ]
      for (name, run) in runs {
        #expect(try run().map { Double($0) }.elementsEqualBitwise(run().map { Double($0) }), "\(candidate.name) \(S.self) \(name)")
      }
    }
    try check(Float16.self)
    if (try? candidate.backend.checkSupport(.float64)) != nil { try check(Double.self) }
  }

  /// The library's own float16 → float32 widening (the compiler's is a slow library call on
  /// x86-64) agrees with the standard conversion on all 65,536 halves.
  @Test func wideningIsExactForEveryHalf() throws {
    let halves = (0...UInt16.max).map { Float16(bitPattern: $0) }
    let widened = TypedTensor<Float>(converting: try TypedTensor<Float16>(shape: [halves.count], scalars: halves)).scalars
    for (half, float) in zip(halves, widened) {
      let expected = Float(half)
      #expect(expected.isNaN ? float.isNaN : float.bitPattern == expected.bitPattern, "half bits \(half.bitPattern)")
    }
  }

  @Test func conversionRoundsToNearestEven() throws {
    let values: [Float] = [1 + 0x1p-11, 1 + 3 * 0x1p-11, 70000]  // a tie, a tie, beyond half's range
    let x = try Tensor(shape: [3], scalars: values)
    let halves: [Float16] = [1, 1 + 4 * 0x1p-11, .infinity]
    #expect(TypedTensor<Float16>(converting: x).scalars == halves)
    let doubles: [Double] = values.map(Double.init)
    #expect(TypedTensor<Double>(converting: x).scalars == doubles)
  }
}

extension Array where Element == Double {
  /// Equal bit patterns element by element (so NaN equals the same NaN, and -0 differs from 0).
  func elementsEqualBitwise(_ other: [Double]) -> Bool { map(\.bitPattern) == other.map(\.bitPattern) }
}

/// A backend without float64 (as an OpenCL device without cl_khr_fp64 is), to check that the
/// selftest reports such a case as skipped, with the reason, and neither as passed nor failed.
final class NoFloat64Backend: Backend, @unchecked Sendable {
  let base = CPUBackend()
  var kind: BackendKind { base.kind }
  var deviceName: String { "no-float64 test double of \(base.deviceName)" }

  func checkSupport(_ type: ScalarType) throws {
    guard type != .float64 else { throw CLPoolError.unavailable("this test device does not report cl_khr_fp64") }
  }
  func computePool(
    _ input: UnsafeRawBufferPointer, _ type: ScalarType, _ geometry: PoolGeometry, _ operation: PoolOperation,
    into values: UnsafeMutableRawBufferPointer, indices: UnsafeMutableBufferPointer<Int64>?
  ) throws {
    try base.computePool(input, type, geometry, operation, into: values, indices: indices)
  }
  func computePool<S: StorageScalar>(_ batch: RaggedBatch<S>, _ operation: PoolOperation, returnIndices: Bool) throws
    -> PooledPlanes<S>
  {
    try base.computePool(batch, operation, returnIndices: returnIndices)
  }
  func computeDense(
    _ input: UnsafeRawBufferPointer, _ weight: UnsafeRawBufferPointer, _ bias: UnsafeRawBufferPointer?,
    _ type: ScalarType, _ geometry: DenseGeometry, _ activation: Activation, into output: UnsafeMutableRawBufferPointer
  ) throws {
    try base.computeDense(input, weight, bias, type, geometry, activation, into: output)
  }
  func computeHead(
    _ features: UnsafeRawBufferPointer, _ pool: PoolGeometry, _ weight: UnsafeRawBufferPointer,
    _ bias: UnsafeRawBufferPointer?, _ type: ScalarType, _ geometry: DenseGeometry, _ activation: Activation,
    into output: UnsafeMutableRawBufferPointer
  ) throws {
    try base.computeHead(features, pool, weight, bias, type, geometry, activation, into: output)
  }
  func computePoolBackward(_ gradient: Tensor, indices: [Int64]?, _ geometry: PoolGeometry) throws -> [Float] {
    try base.computePoolBackward(gradient, indices: indices, geometry)
  }
}

@Suite struct SelfTestSkipTests {
  @Test func missingTypeIsSkippedWithItsReason() throws {
    let backend = NoFloat64Backend()
    let cases = SelfTestCase.standard.filter { $0.scalarType != .float32 }
    #expect(cases.contains { $0.scalarType == .float64 } && cases.contains { $0.scalarType == .float16 })
    for testCase in cases {
      let result = try PreparedSelfTest(testCase, seed: TestBackends.seed).run(on: backend)
      if testCase.scalarType == .float64 {
        #expect(result.skipped?.contains("cl_khr_fp64") == true && !result.passed && !result.failed, "\(testCase)")
      } else {
        #expect(result.skipped == nil && result.passed, "\(testCase): \(result.outcome.mismatch ?? "")")
      }
    }
  }
}
