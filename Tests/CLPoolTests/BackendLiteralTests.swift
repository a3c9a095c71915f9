import CLPool
import Testing

/// Hand-computed results every backend must reproduce exactly (the values are exact in float32).
@Suite struct BackendLiteralTests {
  static let backends = TestBackends.all

  @Test(arguments: backends)
  func averageAndMaxOfSmallPlanes(_ candidate: BackendUnderTest) throws {
    let backend = candidate.backend
    // [N=1, C=2, H=2, W=2]: channel 0 = 1 2 3 4, channel 1 = -1 5 5 0.
    let x = try Tensor(shape: [1, 2, 2, 2], scalars: [1, 2, 3, 4, -1, 5, 5, 0])
    #expect(try backend.globalAveragePool(x, layout: .channelsFirst, keepDims: false) == Tensor(shape: [1, 2], scalars: [2.5, 2.25]))
    let max = try backend.globalMaxPool(x, layout: .channelsFirst, keepDims: true, returnIndices: true)
    #expect(max.values == (try Tensor(shape: [1, 2, 1, 1], scalars: [4, 5])))
    #expect(max.indices == [3, 1])  // the first of the tied 5s
    // The same planes channels-last: [N=1, H=2, W=2, C=2].
    let nhwc = try Tensor(shape: [1, 2, 2, 2], scalars: [1, -1, 2, 5, 3, 5, 4, 0])
    #expect(try backend.globalAveragePool(nhwc, layout: .channelsLast, keepDims: true) == Tensor(shape: [1, 1, 1, 2], scalars: [2.5, 2.25]))
    let maxLast = try backend.globalMaxPool(nhwc, layout: .channelsLast, keepDims: false, returnIndices: true)
    #expect(maxLast.values.scalars == [4, 5])
    #expect(maxLast.indices == [3, 1])
    #expect(try backend.globalMaxPool(nhwc, layout: .channelsLast, keepDims: false, returnIndices: false).indices == nil)
  }

  @Test(arguments: backends)
  func maxPropagatesNaNAndFindsFirstNaN(_ candidate: BackendUnderTest) throws {
    let x = try Tensor(shape: [1, 3, 4], scalars: [
      1, .nan, 7, .nan,  // NaN wins, first NaN at 1
      -.infinity, -.infinity, -.infinity, -.infinity,  // all -Inf: index 0
      .infinity, 2, .infinity, 3,  // +Inf tie: first at 0
    ])
    let result = try candidate.backend.globalMaxPool(x, layout: .channelsFirst, keepDims: false, returnIndices: true)
    #expect(result.values.scalars[0].isNaN)
    #expect(Array(result.values.scalars[1...]) == [-.infinity, .infinity])
    #expect(result.indices == [1, 0, 0])
    let mean = try candidate.backend.globalAveragePool(x, layout: .channelsFirst, keepDims: false)
    #expect(mean.scalars[0].isNaN && mean.scalars[1] == -.infinity && mean.scalars[2] == .infinity)
  }

  @Test(arguments: backends)
  func denseWithBiasAndActivations(_ candidate: BackendUnderTest) throws {
    let backend = candidate.backend
    let x = try Tensor(shape: [2, 2], scalars: [1, 2, -1, 0])
    let inOut = try Tensor(shape: [2, 3], scalars: [1, 0, -1, 2, 1, 0])  // [K=2, M=3]
    let outIn = try Tensor(shape: [3, 2], scalars: [1, 2, 0, 1, -1, 0])  // the same, [M, K]
    let bias = try Tensor(shape: [3], scalars: [0.5, 0, 1])
    let expected: [Float] = [5.5, 2, 0, -0.5, 0, 2]
    #expect(try backend.dense(x, weight: inOut, bias: bias, weightLayout: .inOut, activation: .none).scalars == expected)
    #expect(try backend.dense(x, weight: outIn, bias: bias, weightLayout: .outIn, activation: .none).scalars == expected)
    #expect(try backend.dense(x, weight: inOut, bias: bias, weightLayout: .inOut, activation: .relu).scalars == [5.5, 2, 0, 0, 0, 2])
    let sigmoid = try backend.dense(x, weight: inOut, bias: nil, weightLayout: .inOut, activation: .sigmoid)
    expectClose(sigmoid.scalars, [0.99330715, 0.88079708, 0.26894142, 0.26894142, 0.5, 0.73105858])
    let softmax = try backend.dense(x, weight: inOut, bias: bias, weightLayout: .inOut, activation: .softmax)
    // softmax(5.5, 2, 0) and softmax(-0.5, 0, 2), from numpy in float64.
    expectClose(softmax.scalars, [0.96685229, 0.02919641, 0.0039513, 0.06742536, 0.11116562, 0.82140902])
  }

  private func expectClose(_ got: [Float], _ want: [Double], sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(got.count == want.count, sourceLocation: sourceLocation)
    for (g, w) in zip(got, want) {
      #expect(abs(Double(g) - w) <= 1e-6 * max(1, abs(w)), "\(g) vs \(w)", sourceLocation: sourceLocation)
    }
  }

  @Test(arguments: backends)
  func emptyBatchAndChannelsGiveEmptyOutputs(_ candidate: BackendUnderTest) throws {
    let noBatch = try Tensor(shape: [0, 3, 7, 7], repeating: 1)
    #expect(try candidate.backend.globalAveragePool(noBatch, layout: .channelsFirst, keepDims: false).shape == [0, 3])
    let noChannels = try Tensor(shape: [2, 7, 7, 0], repeating: 1)
    #expect(try candidate.backend.globalMaxPool(noChannels, layout: .channelsLast, keepDims: true, returnIndices: true).values.shape == [2, 1, 1, 0])
  }
}
