import CLPool
import Testing

/// Backward passes against central finite differences of the float64 forward ops, on every backend
/// (the selftest grid checks them against the closed-form float64 gradients as well).
@Suite struct BackwardTests {
  static let backends = TestBackends.all
  static let h = 1e-2

  /// f(x) = Σ dz ⊙ op(x); returns ∂f/∂x_i by central differences for every element.
  private func numericGradient(_ x: Tensor, _ f: ([Float]) -> Double) -> [Double] {
    (0..<x.count).map { i in
      var plus = x.scalars, minus = x.scalars
      plus[i] += Float(Self.h)
      minus[i] -= Float(Self.h)
      // Divide by the step actually taken in float32.
      return (f(plus) - f(minus)) / (Double(plus[i]) - Double(minus[i]))
    }
  }

  private func expectClose(_ got: Tensor, _ want: [Double], _ what: String, sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(got.count == want.count, sourceLocation: sourceLocation)
    for (i, (g, w)) in zip(got.scalars, want).enumerated() where abs(Double(g) - w) > 1e-3 * max(1, abs(w)) {
      Issue.record("\(what): element \(i) is \(g), finite differences give \(w)", sourceLocation: sourceLocation)
      return
    }
  }

  @Test(arguments: backends)
  func poolingGradientsMatchFiniteDifferences(_ candidate: BackendUnderTest) throws {
    var random = SplitMix64(seed: TestBackends.seed)
    for layout in Layout.allCases {
      for shape in [[2, 3, 4, 5], [1, 2, 7], [2, 2, 2, 3, 2]] {
        let x = try TestData.poolInput(shape, layout: layout, special: nil, random: &random)
        let geometry = try PoolGeometry(shape: x.shape, layout: layout)
        let dz = try TestData.uniform([geometry.batch, geometry.channels], in: -1..<1, random: &random)
        func dot(_ values: [Double]) -> Double { zip(values, dz.scalars).reduce(0) { $0 + $1.0 * Double($1.1) } }

        let dxAverage = try candidate.backend.globalAveragePoolBackward(dz, inputShape: x.shape, layout: layout)
        expectClose(dxAverage, numericGradient(x) { dot(Float64Reference.averagePool($0, geometry).mean) }, "\(candidate.name) avg \(layout) \(shape)")

        // Distinct values 0.25 apart in random order: a step of h cannot move a maximum.
        var order = Array(0..<x.count)
        order.shuffle(using: &random)
        let spaced = try Tensor(shape: x.shape, scalars: order.map { Float($0) * 0.25 })
        let forward = try candidate.backend.globalMaxPool(spaced, layout: layout, keepDims: false, returnIndices: true)
        let dxMax = try candidate.backend.globalMaxPoolBackward(dz, indices: forward.indices!, inputShape: x.shape, layout: layout)
        expectClose(dxMax, numericGradient(spaced) { dot(Float64Reference.maxPool($0, geometry).values) }, "\(candidate.name) max \(layout) \(shape)")
      }
    }
  }

  @Test(arguments: backends)
  func denseGradientsMatchFiniteDifferences(_ candidate: BackendUnderTest) throws {
    var random = SplitMix64(seed: TestBackends.seed)
    for weightLayout in WeightLayout.allCases {
      let (n, k, m) = (3, 5, 4)
      let x = try TestData.uniform([n, k], in: -1..<1, random: &random)
      let w = try TestData.uniform(weightLayout == .inOut ? [k, m] : [m, k], in: -1..<1, random: &random)
      let b = try TestData.uniform([m], in: -1..<1, random: &random)
      let dy = try TestData.uniform([n, m], in: -1..<1, random: &random)
      let geometry = try DenseGeometry(input: x.shape, weight: w.shape, bias: b.shape, weightLayout: weightLayout)
      func loss(_ x: [Float], _ w: [Float], _ b: [Float]) -> Double {
        zip(Float64Reference.dense(x.map(Double.init), w, b, geometry, .none), dy.scalars).reduce(0) { $0 + $1.0 * Double($1.1) }
      }
      let gradients = try candidate.backend.denseBackward(dy, input: x, weight: w, weightLayout: weightLayout)
      #expect(gradients.weight.shape == w.shape && gradients.input.shape == x.shape && gradients.bias.shape == [m])
      expectClose(gradients.input, numericGradient(x) { loss($0, w.scalars, b.scalars) }, "\(candidate.name) dx \(weightLayout)")
      expectClose(gradients.weight, numericGradient(w) { loss(x.scalars, $0, b.scalars) }, "\(candidate.name) dW \(weightLayout)")
      expectClose(gradients.bias, numericGradient(b) { loss(x.scalars, w.scalars, $0) }, "\(candidate.name) db \(weightLayout)")
    }
  }

  @Test(arguments: backends)
  func badGradientsAreErrors(_ candidate: BackendUnderTest) throws {
    let backend = candidate.backend
    #expect(throws: CLPoolError.self) {
      try backend.globalAveragePoolBackward(try Tensor(shape: [2, 4], repeating: 1), inputShape: [2, 3, 5, 5], layout: .channelsFirst)
    }
    #expect(throws: CLPoolError.self) {
      try backend.globalMaxPoolBackward(try Tensor(shape: [1, 2], repeating: 1), indices: [0, 25], inputShape: [1, 2, 5, 5], layout: .channelsFirst)
    }
    #expect(throws: CLPoolError.self) {
      try backend.denseBackward(try Tensor(shape: [2, 3], repeating: 1), input: try Tensor(shape: [2, 4], repeating: 1), weight: try Tensor(shape: [4, 2], repeating: 1), weightLayout: .inOut)
    }
    // Keep-dims gradients are accepted.
    let dx = try backend.globalAveragePoolBackward(try Tensor(shape: [1, 2, 1, 1], scalars: [4, 8]), inputShape: [1, 2, 2, 2], layout: .channelsFirst)
    #expect(dx.scalars == [1, 1, 1, 1, 2, 2, 2, 2])
  }
}
