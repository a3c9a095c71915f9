@testable import CLPool
import CLPoolCPU
import Testing

/// SPEC: a sample's output depends only on that sample, the parameters and the device — never on
/// the batch it came in. Each test computes samples alone and inside batches of several sizes
/// (which cross every tile, chunk and kernel-choice boundary) and compares bits. With NaNs of
/// many payloads in the data, the selftest grid's "invariant" cases do the same (ParityTests runs
/// them on every backend).
@Suite struct BatchInvarianceTests {
  /// Rows `index` of `batch` ([N, width] values) against the same sample computed alone.
  static func expectRows<S: StorageScalar>(
    _ batch: [S], width: Int, alone: (Int) throws -> [S], indices: [Int], _ name: String
  ) throws {
    let singles = try indices.map { (sample: $0, row: try alone($0)) }
    #expect(singles.allSatisfy { $0.row.count == width }, "\(name): a sample alone gave other than \(width) outputs")
    let outcome = CrossCheck.sameBits(batch, alone: singles)
    #expect(outcome.passed, "\(name): \(outcome.mismatch ?? ""), \(outcome.maxError) outputs differ in their bits")
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
  /// kernel-choice boundary (6-row tiles, single-row kernels, the CPU's K blocks split across
  /// cores, streaming vs packed products), with k two K blocks per core, the last one short.
  @Test func denseAndHeadAreBatchInvariant() throws {
    var random = SplitMix64(seed: TestBackends.seed ^ 0xDE45E)
    let cores = CPUInfo.activeCores
    let (k, m) = (2 * max(cores, 2) * Int(CLPOOL_K_BLOCK) - 24, 45)
    #expect((CPUDense.BlockSplit(rows: 1, k: k, m: m, width: 4, cores: cores) != nil) == (cores > 1), "a row alone splits k on \(cores) cores")
    for weightLayout in WeightLayout.allCases {
      let w = try TestData.uniform(weightLayout == .inOut ? [k, m] : [m, k], in: -1..<1, random: &random)
      let b = try TestData.uniform([m], in: -1..<1, random: &random)
      for rows in [1, 5, 6, 7, 16, 17, 64, 100, 301] {
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

  /// A float64 and a float16 product are batch-invariant too (their own kernels).
  @Test func typedProductsAreBatchInvariant() throws {
    var random = SplitMix64(seed: TestBackends.seed ^ 0x7E5)
    func check<S: StorageScalar>(_: S.Type) throws {
      let x = TypedTensor<S>(converting: try TestData.uniform([130, 33], in: -1..<1, random: &random))
      let w = TypedTensor<S>(converting: try TestData.uniform([33, 21], in: -1..<1, random: &random))
      for candidate in TestBackends.all where (try? candidate.backend.checkSupport(S.scalarType)) != nil {
        let y = try candidate.backend.dense(x, weight: w)
        try Self.expectRows(
          y.scalars, width: 21,
          alone: { try candidate.backend.dense(try TypedTensor<S>(shape: [1, 33], scalars: Array(x.scalars[($0 * 33)..<(($0 + 1) * 33)])), weight: w).scalars },
          indices: [0, 64, 129], "\(candidate.name) dense \(S.scalarType)")
      }
    }
    try check(Double.self)
    try check(Float16.self)
  }
}
