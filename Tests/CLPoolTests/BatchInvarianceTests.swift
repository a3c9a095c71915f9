import CLPool
import Testing

/// SPEC: a sample's output depends only on that sample, the parameters and the device — never on
/// the batch it came in. Each test computes samples alone and inside batches of several sizes
/// (which cross every tile, chunk and kernel-choice boundary) and compares bits.
@Suite struct BatchInvarianceTests {
  static func bits<S: StorageScalar>(_ values: ArraySlice<S>) -> [[UInt8]] { values.map { value in withUnsafeBytes(of: value) { Array($0) } } }

  /// Rows `index` of `batch` ([N, width] values) against the same sample computed alone.
  static func expectRows<S: StorageScalar>(
    _ batch: [S], width: Int, alone: (Int) throws -> [S], indices: [Int], _ name: String
  ) throws {
    for index in indices {
      let (inBatch, single) = (bits(batch[(index * width)..<((index + 1) * width)]), bits(try alone(index)[...]))
      let differing = single.count == width ? (0..<width).filter { inBatch[$0] != single[$0] } : Array(0..<width)
      #expect(differing.isEmpty, "\(name): sample \(index): \(differing.count) of \(width) outputs differ in their bits, the first at \(differing.first ?? 0)")
    }
  }

  @Test(arguments: [[7, 7], [1, 1], [56, 56], [97], [91, 91], [3, 300, 30]])
  func poolingIsBatchInvariant(_ spatial: [Int]) throws {
    var random = SplitMix64(seed: TestBackends.seed ^ 0xB47C)
    let channels = 13
    for layout in Layout.allCases {
      for batch in [2, 7, 64] {
        let x = try TestData.poolInput([batch, channels] + spatial, layout: layout, special: nil, random: &random)
        let sampleShape = [1] + Array(x.shape.dropFirst())
        let sampleCount = x.count / batch
        func sample(_ n: Int) throws -> Tensor {
          try Tensor(shape: sampleShape, scalars: Array(x.scalars[(n * sampleCount)..<((n + 1) * sampleCount)]))
        }
        for candidate in TestBackends.all {
          let backend = candidate.backend
          let mean = try backend.globalAveragePool(x, layout: layout)
          try Self.expectRows(mean.scalars, width: channels, alone: { try backend.globalAveragePool(try sample($0), layout: layout).scalars },
            indices: [0, batch / 2, batch - 1], "\(candidate.name) avg \(layout) \(x.shape)")
          let maxima = try backend.globalMaxPool(x, layout: layout, keepDims: false, returnIndices: true)
          try Self.expectRows(maxima.values.scalars, width: channels, alone: { try backend.globalMaxPool(try sample($0), layout: layout).scalars },
            indices: [0, batch - 1], "\(candidate.name) max \(layout) \(x.shape)")
        }
      }
    }
  }

  /// Dense and the fused head, row by row, in batches below and above every tile and
  /// kernel-choice boundary (6-row tiles, single-row kernels, streaming vs packed products).
  @Test func denseAndHeadAreBatchInvariant() throws {
    var random = SplitMix64(seed: TestBackends.seed ^ 0xDE45E)
    let (k, m) = (97, 45)
    for weightLayout in WeightLayout.allCases {
      let w = try TestData.uniform(weightLayout == .inOut ? [k, m] : [m, k], in: -1..<1, random: &random)
      let b = try TestData.uniform([m], in: -1..<1, random: &random)
      for rows in [1, 5, 6, 7, 64, 100, 301] {
        let x = try TestData.uniform([rows, k], in: -1..<1, random: &random)
        for candidate in TestBackends.all {
          let backend = candidate.backend
          for activation in [Activation.none, .softmax] {
            let y = try backend.dense(x, weight: w, bias: b, weightLayout: weightLayout, activation: activation)
            try Self.expectRows(
              y.scalars, width: m,
              alone: { try backend.dense(try Tensor(shape: [1, k], scalars: Array(x.scalars[($0 * k)..<(($0 + 1) * k)])), weight: w, bias: b, weightLayout: weightLayout, activation: activation).scalars },
              indices: Array(Set([0, rows / 2, rows - 1])), "\(candidate.name) dense \(weightLayout) \(activation) \(rows) rows")
          }
        }
      }
    }
    let features = try TestData.poolInput([40, 32, 3, 3], layout: .channelsLast, special: nil, random: &random)
    let w = try TestData.uniform([32, m], in: -0.2..<0.2, random: &random)
    for candidate in TestBackends.all {
      let backend = candidate.backend
      let y = try backend.head(features, layout: .channelsLast, weight: w, activation: .softmax)
      let sampleCount = 32 * 9
      try Self.expectRows(
        y.scalars, width: m,
        alone: {
          try backend.head(
            try Tensor(shape: [1, 3, 3, 32], scalars: Array(features.scalars[($0 * sampleCount)..<(($0 + 1) * sampleCount)])),
            layout: .channelsLast, weight: w, activation: .softmax
          ).scalars
        }, indices: [0, 17, 39], "\(candidate.name) head")
    }
  }

  /// `t` with a share `rate` of its elements replaced by NaNs, each with its own sign and payload,
  /// and half as many by infinities (which make more NaNs: ∞ − ∞, 0 · ∞).
  static func withNaNs(_ t: Tensor, rate: Double, random: inout SplitMix64) throws -> Tensor {
    var scalars = t.scalars
    for i in scalars.indices {
      let draw = Double(random.next() >> 11) * 0x1p-53
      let (payload, negative) = (UInt32(truncatingIfNeeded: random.next()) & 0x3F_FFFF, random.next() & 1 == 1)
      if draw < rate {
        scalars[i] = Float(bitPattern: 0x7FC0_0000 | payload | (negative ? 0x8000_0000 : 0))
      } else if draw < rate * 1.5 {
        scalars[i] = negative ? -.infinity : .infinity
      }
    }
    return try Tensor(shape: t.shape, scalars: scalars)
  }

  /// NaNs are data too, and their bits are bits: with NaNs of many payloads in x, W and b, where
  /// two of them meet in a chain, which one survives depends on the instruction that adds them, so
  /// every path (streamed or packed product, single-row or tiled kernel) must give a NaN output
  /// the same bits. Pooling and the head too.
  @Test func nanPayloadsAreBatchInvariant() throws {
    var random = SplitMix64(seed: TestBackends.seed ^ 0x7A7A)
    let (k, m) = (97, 150)
    let w = try Self.withNaNs(try TestData.uniform([k, m], in: -1..<1, random: &random), rate: 0.004, random: &random)
    let b = try Self.withNaNs(try TestData.uniform([m], in: -1..<1, random: &random), rate: 0.05, random: &random)
    for rows in [7, 130] {
      let x = try Self.withNaNs(try TestData.uniform([rows, k], in: -1..<1, random: &random), rate: 0.004, random: &random)
      for candidate in TestBackends.all {
        let backend = candidate.backend
        for activation in Activation.allCases {
          let y = try backend.dense(x, weight: w, bias: b, activation: activation)
          if activation == .none {
            #expect(y.scalars.contains { $0.isNaN } && y.scalars.contains { !$0.isNaN }, "the data must give NaN and other outputs")
          }
          try Self.expectRows(
            y.scalars, width: m,
            alone: { try backend.dense(try Tensor(shape: [1, k], scalars: Array(x.scalars[($0 * k)..<(($0 + 1) * k)])), weight: w, bias: b, activation: activation).scalars },
            indices: Array(0..<rows), "\(candidate.name) dense \(activation) \(rows) rows")
        }
      }
    }
    let channels = 24
    let hw = try Tensor(shape: [channels, m], scalars: Array(w.scalars[0..<(channels * m)]))
    for (spatial, batch) in [([7, 7], 64), ([1, 1], 64), ([56, 56], 7), ([97], 64), ([3, 30, 30], 7)] {
      for layout in Layout.allCases {
        // About two NaNs a plane, so that many planes have two to meet.
        let x = try Self.withNaNs(
          try TestData.poolInput([batch, channels] + spatial, layout: layout, special: nil, random: &random),
          rate: min(0.3, 2 / Double(spatial.reduce(1, *))), random: &random)
        try Self.expectPoolingAndHead(x, layout: layout, batch: batch, weight: hw, bias: b)
      }
    }
  }

  /// GAP, GMP and the head of `x` ([batch, …] in `layout`): samples 0, 1, the middle and the last
  /// against each alone, on every backend.
  static func expectPoolingAndHead(_ x: Tensor, layout: Layout, batch: Int, weight hw: Tensor, bias b: Tensor) throws {
    let channels = layout == .channelsLast ? x.shape.last! : x.shape[1]
    let sampleCount = x.count / batch
    func sample(_ n: Int) throws -> Tensor {
      try Tensor(shape: [1] + Array(x.shape.dropFirst()), scalars: Array(x.scalars[(n * sampleCount)..<((n + 1) * sampleCount)]))
    }
    let indices = Array(Set([0, 1, batch / 2, batch - 1])).sorted()
    for candidate in TestBackends.all {
      let backend = candidate.backend
      try expectRows(try backend.globalAveragePool(x, layout: layout).scalars, width: channels,
        alone: { try backend.globalAveragePool(try sample($0), layout: layout).scalars }, indices: indices, "\(candidate.name) avg \(layout) \(x.shape)")
      try expectRows(try backend.globalMaxPool(x, layout: layout).scalars, width: channels,
        alone: { try backend.globalMaxPool(try sample($0), layout: layout).scalars }, indices: indices, "\(candidate.name) max \(layout) \(x.shape)")
      try expectRows(try backend.head(x, layout: layout, weight: hw, bias: b).scalars, width: hw.shape[1],
        alone: { try backend.head(try sample($0), layout: layout, weight: hw, bias: b).scalars }, indices: indices, "\(candidate.name) head \(layout) \(x.shape)")
    }
  }

  /// A float64 and a float16 product are batch-invariant too (their own kernels), NaN outputs
  /// included.
  @Test func typedProductsAreBatchInvariant() throws {
    var random = SplitMix64(seed: TestBackends.seed ^ 0x7E5)
    func check<S: StorageScalar>(_: S.Type) throws {
      let x = TypedTensor<S>(converting: try Self.withNaNs(try TestData.uniform([130, 33], in: -1..<1, random: &random), rate: 0.01, random: &random))
      let w = TypedTensor<S>(converting: try Self.withNaNs(try TestData.uniform([33, 21], in: -1..<1, random: &random), rate: 0.01, random: &random))
      let b = TypedTensor<S>(converting: try Self.withNaNs(try TestData.uniform([21], in: -1..<1, random: &random), rate: 0.2, random: &random))
      for candidate in TestBackends.all where (try? candidate.backend.checkSupport(S.scalarType)) != nil {
        let y = try candidate.backend.dense(x, weight: w, bias: b)
        try Self.expectRows(
          y.scalars, width: 21,
          alone: { try candidate.backend.dense(try TypedTensor<S>(shape: [1, 33], scalars: Array(x.scalars[($0 * 33)..<(($0 + 1) * 33)])), weight: w, bias: b).scalars },
          indices: [0, 64, 129], "\(candidate.name) dense \(S.scalarType)")
      }
    }
    try check(Double.self)
    try check(Float16.self)
  }
}
