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
