import CLPool
import Testing

/// Every operation of the standard grid on every backend against the float64 reference, with
/// fresh random data and poisoned outputs.
@Suite struct ParityTests {
  @Test(arguments: SelfTestCase.standard)
  func matchesFloat64Reference(_ testCase: SelfTestCase) throws {
    let prepared = try PreparedSelfTest(testCase, seed: TestBackends.seed)
    for candidate in TestBackends.all {
      let result = prepared.run(on: candidate.backend)
      #expect(
        result.passed,
        "\(candidate.name): \(testCase): \(result.outcome.mismatch ?? "") (max error \(result.outcome.maxError), tolerance \(result.outcome.tolerance), seed \(TestBackends.seed))")
    }
  }

  /// SPEC.md's pooling precision holds up to 2^26 elements per plane, where a naive float32
  /// running sum is off by far more than 4e-6 · mean|x|.
  @Test(arguments: [Layout.channelsFirst, .channelsLast])
  func averagePoolPrecisionAtTwoToTheTwentySix(_ layout: Layout) throws {
    var random = SplitMix64(seed: TestBackends.seed)
    let shape = layout == .channelsFirst ? [1, 1, 8192, 8192] : [1, 8192, 8192, 1]
    let x = try TestData.uniform(shape, in: 0.5..<1.5, random: &random)
    let reference = Float64Reference.averagePool(x.scalars, try PoolGeometry(shape: shape, layout: layout))
    var naive: Float = 0
    for value in x.scalars { naive += value }
    let naiveError = abs(Double(naive / Float(x.count)) - reference.mean[0]) / reference.meanAbs[0]
    #expect(naiveError > CrossCheck.poolTolerance, "the naive sum should fail this test (error \(naiveError))")
    for candidate in TestBackends.all {
      let output = try candidate.backend.globalAveragePool(x, layout: layout, keepDims: false)
      let outcome = CrossCheck.averagePool(output.scalars, reference: reference)
      #expect(outcome.passed, "\(candidate.name): \(outcome.mismatch ?? "") error \(outcome.maxError)")
    }
  }

  /// Dense stays within 1e-5 for a very long reduction (K = 2^18), where one running float32 sum
  /// per output would not.
  @Test func densePrecisionForLongRows() throws {
    var random = SplitMix64(seed: TestBackends.seed)
    let (n, k, m) = (7, 1 << 18, 19)
    let x = try TestData.uniform([n, k], in: 0..<1, random: &random)
    let w = try TestData.uniform([k, m], in: 0..<1, random: &random)
    let geometry = try DenseGeometry(input: x.shape, weight: w.shape, bias: nil, weightLayout: .inOut)
    let reference = Float64Reference.dense(x.scalars.map(Double.init), w.scalars, nil, geometry, .none)
    for candidate in TestBackends.all {
      let y = try candidate.backend.dense(x, weight: w, bias: nil, weightLayout: .inOut, activation: .none)
      let check = CrossCheck.dense(y.scalars, reference: reference)
      #expect(check.passed, "\(candidate.name): relative error \(check.maxError)")
    }
  }

  /// The fused head over a batch the CPU pools and multiplies in several blocks (C = 2048 gives
  /// 256-row blocks, `CPUBackend.headBlockElements`; 300 rows end in a partial one), with every
  /// activation, against the float64 reference and against the unfused two calls.
  @Test func fusedHeadMatchesReferenceAcrossBlocks() throws {
    var random = SplitMix64(seed: TestBackends.seed)
    let (n, c) = (300, 2048)
    #expect(n > CPUBackend.headBlockElements / c, "the batch must span more than one block")
    let x = try TestData.poolInput([n, c, 1, 2], layout: .channelsFirst, special: nil, random: &random)
    let w = try TestData.uniform([10, c], in: -0.02..<0.02, random: &random)
    let b = try TestData.uniform([10], in: -0.1..<0.1, random: &random)
    let poolGeometry = try PoolGeometry(shape: x.shape, layout: .channelsFirst)
    let denseGeometry = try DenseGeometry(input: [n, c], weight: w.shape, bias: b.shape, weightLayout: .outIn)
    let pooled = Float64Reference.averagePool(x.scalars, poolGeometry).mean
    for activation in Activation.allCases {
      let reference = Float64Reference.dense(pooled, w.scalars, b.scalars, denseGeometry, activation)
      for candidate in TestBackends.all {
        let backend = candidate.backend
        let fused = try backend.head(x, layout: .channelsFirst, weight: w, bias: b, weightLayout: .outIn, activation: activation)
        let check = CrossCheck.dense(fused.scalars, reference: reference)
        #expect(check.passed, "\(candidate.name) \(activation): \(check.mismatch ?? "")")
        let unfused = try backend.dense(
          try backend.globalAveragePool(x, layout: .channelsFirst, keepDims: false), weight: w, bias: b,
          weightLayout: .outIn, activation: activation)
        #expect(CrossCheck.dense(unfused.scalars, reference: reference).passed, "\(candidate.name) \(activation) unfused")
      }
    }
  }

  /// The same input twice gives bitwise the same output on each backend.
  @Test func resultsAreDeterministic() throws {
    var random = SplitMix64(seed: TestBackends.seed)
    let x = try TestData.uniform([3, 5, 1031, 1019], in: -1..<3, random: &random)
    let w = try TestData.uniform([5, 7], in: -1..<1, random: &random)
    for candidate in TestBackends.all {
      let backend = candidate.backend
      for layout in Layout.allCases {
        let first = try backend.globalAveragePool(x, layout: layout, keepDims: false)
        let second = try backend.globalAveragePool(x, layout: layout, keepDims: false)
        #expect(first.scalars.map(\.bitPattern) == second.scalars.map(\.bitPattern), "\(candidate.name) avg \(layout)")
        let firstMax = try backend.globalMaxPool(x, layout: layout, keepDims: false, returnIndices: true)
        let secondMax = try backend.globalMaxPool(x, layout: layout, keepDims: false, returnIndices: true)
        #expect(firstMax == secondMax, "\(candidate.name) max \(layout)")
      }
      let pooled = try backend.globalAveragePool(x, layout: .channelsFirst, keepDims: false)
      let y1 = try backend.dense(pooled, weight: w, bias: nil, weightLayout: .inOut, activation: .softmax)
      let y2 = try backend.dense(pooled, weight: w, bias: nil, weightLayout: .inOut, activation: .softmax)
      #expect(y1.scalars.map(\.bitPattern) == y2.scalars.map(\.bitPattern), "\(candidate.name) dense")
      let bits: [(String, () throws -> Tensor)] = [
        ("head", { try backend.head(x, layout: .channelsFirst, weight: w, bias: nil, weightLayout: .inOut, activation: .sigmoid) }),
        ("avg backward", { try backend.globalAveragePoolBackward(y1, inputShape: [3, 5, 7, 7], layout: .channelsLast) }),
        ("dense backward", { try backend.denseBackward(y1, input: pooled, weight: w, weightLayout: .inOut).weight }),
        ("cam", { try backend.classActivationMaps(try x.reshaped([3, 5, 1031, 1019]), weight: w, classIndices: [0, 6, 3]) }),
      ]
      for (name, run) in bits {
        #expect(try run().scalars.map(\.bitPattern) == run().scalars.map(\.bitPattern), "\(candidate.name) \(name)")
      }
    }
  }

  /// The checks themselves can fail: a wrong value, a wrong index, an unwritten (poisoned)
  /// element and a missing NaN are all caught.
  @Test func crossChecksRejectWrongOutputs() {
    let reference = (mean: [1.0, 2.0], meanAbs: [1.0, 2.0])
    #expect(CrossCheck.averagePool([1, 2], reference: reference).passed)
    #expect(!CrossCheck.averagePool([1, 2.0001], reference: reference).passed)
    #expect(!CrossCheck.averagePool([1, BackendOptions.poison], reference: reference).passed)
    #expect(!CrossCheck.averagePool([1, .nan], reference: reference).passed)
    let maxReference = (values: [3.0, .nan], indices: [Int64(4), 0])
    #expect(CrossCheck.maxPool([3, .nan], indices: [4, 0], reference: maxReference).passed)
    #expect(!CrossCheck.maxPool([3, .nan], indices: [5, 0], reference: maxReference).passed)
    #expect(!CrossCheck.maxPool([3, 1], indices: [4, 0], reference: maxReference).passed)
    #expect(CrossCheck.dense([1, 2], reference: [1, 2]).passed)
    #expect(!CrossCheck.dense([1, 2.001], reference: [1, 2]).passed)
    #expect(!CrossCheck.dense([1, .nan], reference: [1, 2]).passed)
  }
}
