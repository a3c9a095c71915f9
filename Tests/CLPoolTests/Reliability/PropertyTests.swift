import CLPool
import Testing

/// Random shapes, layouts and data (a seeded generator; the seed is printed and reproducible):
/// every op on every backend against the float64 reference, a thousand cases per run.
@Suite struct PropertyTests {
  @Test func randomCasesMatchTheReference() throws {
    var random = SplitMix64(seed: TestBackends.seed ^ 0xC0FFEE)
    var checked = 0
    for caseNumber in 0..<1000 {
      let rank = 3 + Int(random.next() % 3)
      // Mostly small sizes, sometimes 1, sometimes larger, to hit tails and chunking edges.
      var shape = (0..<rank).map { _ -> Int in
        switch random.next() % 8 {
        case 0: return 1
        case 1: return 9 + Int(random.next() % 40)
        default: return 1 + Int(random.next() % 8)
        }
      }
      // Keep each case small (≤ 2^20 elements) so a run stays fast whatever the draw.
      while shape.reduce(1, *) > 1 << 20, let largest = shape.indices.max(by: { shape[$0] < shape[$1] }) {
        shape[largest] = 1 + Int(random.next() % 8)
      }
      let layout: Layout = random.next() % 2 == 0 ? .channelsFirst : .channelsLast
      let specialCase = random.next() % 3
      let special: TestData.Special? = specialCase == 0 ? nil : (specialCase == 1 ? .forMax : .forAverage)
      let x = try TestData.poolInput(shape, layout: layout, special: special, random: &random)
      let geometry = try PoolGeometry(shape: x.shape, layout: layout)
      let mean = Float64Reference.averagePool(x.scalars, geometry)
      let max = Float64Reference.maxPool(x.scalars, geometry)
      let classes = 1 + Int(random.next() % 20)
      // Non-negative weights over means near 1: the head is well conditioned, so the relative
      // bound measures the implementation, not cancellation between random terms.
      let w = try TestData.uniform([geometry.channels, classes], in: 0..<1, random: &random)
      let denseGeometry = try DenseGeometry(input: [geometry.batch, geometry.channels], weight: w.shape, bias: nil, weightLayout: .inOut)
      let head = Float64Reference.dense(mean.mean, w.scalars, nil, denseGeometry, .relu)
      let what = "case \(caseNumber): \(Tensor.describe(x.shape)) \(layout.rawValue) (seed \(TestBackends.seed))"
      for candidate in TestBackends.all {
        let backend = candidate.backend
        let averageCheck = CrossCheck.averagePool(try backend.globalAveragePool(x, layout: layout, keepDims: false).scalars, reference: mean)
        #expect(averageCheck.passed, "\(candidate.name) avg \(what): \(averageCheck.mismatch ?? "")")
        let maxResult = try backend.globalMaxPool(x, layout: layout, keepDims: false, returnIndices: true)
        let maxCheck = CrossCheck.maxPool(maxResult.values.scalars, indices: maxResult.indices, reference: max)
        #expect(maxCheck.passed, "\(candidate.name) max \(what): \(maxCheck.mismatch ?? "")")
        let headResult = try backend.head(x, layout: layout, weight: w, bias: nil, weightLayout: .inOut, activation: .relu)
        let headCheck = CrossCheck.dense(headResult.scalars, reference: head)
        #expect(headCheck.passed, "\(candidate.name) head \(what): \(headCheck.mismatch ?? "")")
        checked += 3
      }
    }
    print("note: property tests checked \(checked) operation results")
  }
}

extension PropertyTests {
  /// A NaN mean on the CPU is the one quiet NaN (0x7FC00000), whatever made it (a negative NaN
  /// input, +Inf beside −Inf) and whichever path pooled it: 8 planes at a time or one, channels
  /// first or last, chunked planes, float16 and float64 too.
  @Test func cpuNaNMeansAreTheQuietNaN() throws {
    let backend = TestBackends.cpu.backend
    let negativeNaN = Float(bitPattern: 0xFFC0_0001)
    for (channels, spatial) in [(16, 49), (3, 5), (2, 70_001)] {
      var planes = [Float](repeating: 1, count: channels * spatial)
      for c in 0..<channels where c % 2 == 0 {
        if c % 4 == 0 {
          planes[c * spatial + spatial / 2] = negativeNaN
        } else {
          planes[c * spatial] = .infinity
          planes[c * spatial + spatial - 1] = -.infinity
        }
      }
      let x = try Tensor(shape: [1, channels, spatial], scalars: planes)
      var last = [Float](repeating: 0, count: planes.count)
      for c in 0..<channels { for s in 0..<spatial { last[s * channels + c] = planes[c * spatial + s] } }
      let xLast = try Tensor(shape: [1, spatial, channels], scalars: last)
      let halves = try backend.globalAveragePool(TypedTensor<Float16>(converting: x), layout: .channelsFirst).scalars
      let means = [
        try backend.globalAveragePool(x, layout: .channelsFirst).scalars,
        try backend.globalAveragePool(xLast, layout: .channelsLast).scalars,
        halves.map { Float($0) },
      ]
      for (path, values) in means.enumerated() {
        for c in 0..<channels where c % 2 == 0 {
          #expect(values[c].isNaN && values[c].sign == .plus, "path \(path), \(channels)x\(spatial), channel \(c): \(values[c].bitPattern)")
        }
      }
      #expect(halves.enumerated().allSatisfy { $0.offset % 2 == 1 || $0.element.bitPattern == 0x7E00 }, "float16: \(halves.map(\.bitPattern))")
      let doubles = try backend.globalAveragePool(TypedTensor<Double>(converting: x), layout: .channelsFirst).scalars
      #expect(doubles.enumerated().allSatisfy { $0.offset % 2 == 1 || $0.element.bitPattern == 0x7FF8_0000_0000_0000 }, "float64: \(doubles.map(\.bitPattern))")
      #expect(means[0].enumerated().allSatisfy { $0.offset % 2 == 1 || $0.element.bitPattern == 0x7FC0_0000 })
    }
  }
}
