import CLPool
import Testing

/// Ragged batches: samples of different spatial sizes pooled together, on every backend.
@Suite struct RaggedBatchTests {
  static let backends = TestBackends.all

  /// Hand-computed values (exact in every storage type): sample 0 is 1x1, sample 1 is 2x2.
  @Test(arguments: backends)
  func literalBatchInEveryTypeAndLayout(_ candidate: BackendUnderTest) throws {
    func check<S: StorageScalar>(_: S.Type) throws {
      // Channel-first planes: sample 0 c0 = [3], c1 = [-1]; sample 1 c0 = 1 2 3 4, c1 = -1 5 5 0.
      let first: [[S]] = [[3], [-1]]
      let second: [[S]] = [[1, 2, 3, 4], [-1, 5, 5, 0]]
      let channelsFirst = try RaggedBatch<S>(
        samples: [
          try TypedTensor(shape: [2, 1, 1], scalars: first.flatMap { $0 }),
          try TypedTensor(shape: [2, 2, 2], scalars: second.flatMap { $0 }),
        ])
      let channelsLast = try RaggedBatch<S>(
        samples: [
          try TypedTensor(shape: [1, 1, 2], scalars: [3, -1]),
          try TypedTensor(shape: [2, 2, 2], scalars: [1, -1, 2, 5, 3, 5, 4, 0]),
        ], layout: .channelsLast)
      for batch in [channelsFirst, channelsLast] {
        let mean = try candidate.backend.globalAveragePool(batch)
        #expect(mean == (try TypedTensor<S>(shape: [2, 2], scalars: [3, -1, 2.5, 2.25])), "\(S.self) \(batch.layout)")
        let max = try candidate.backend.globalMaxPool(batch, returnIndices: true)
        #expect(max.values.scalars == [3, -1, 4, 5], "\(S.self) \(batch.layout)")
        #expect(max.indices == [0, 0, 3, 1], "\(S.self) \(batch.layout)")  // the first of the tied 5s
      }
    }
    try check(Float.self)
    try check(Float16.self)
    if (try? candidate.backend.checkSupport(.float64)) != nil { try check(Double.self) }
  }

  /// Samples placed anywhere in the buffer by explicit offsets (here with NaN padding between
  /// them, which must not be read), 1-D extents, NaN and infinities in the data.
  @Test(arguments: backends)
  func explicitOffsetsSkipPadding(_ candidate: BackendUnderTest) throws {
    var random = SplitMix64(seed: TestBackends.seed)
    let channels = 11
    let extents = [[5], [1], [37], [256 + 3]]
    var packed: [Float] = [.nan, .nan, .nan]
    var offsets: [Int] = []
    var mean: [Double] = []
    var meanAbs: [Double] = []
    var maxima: [Double] = []
    var indices: [Int64] = []
    for extent in extents {
      let sample = try TestData.poolInput([1, channels] + extent, layout: .channelsFirst, special: .forMax, random: &random)
      offsets.append(packed.count)
      packed += sample.scalars + [.nan, .nan]
      let geometry = try PoolGeometry(shape: sample.shape, layout: .channelsFirst)
      let average = Float64Reference.averagePool(sample.scalars, geometry)
      let max = Float64Reference.maxPool(sample.scalars, geometry)
      (mean, meanAbs, maxima, indices) = (mean + average.mean, meanAbs + average.meanAbs, maxima + max.values, indices + max.indices)
    }
    let batch = try RaggedBatch(packed: packed, channels: channels, extents: extents, offsets: offsets)
    let averageCheck = CrossCheck.averagePool(try candidate.backend.globalAveragePool(batch).scalars, reference: (mean, meanAbs))
    #expect(averageCheck.passed, "\(candidate.name): \(averageCheck.mismatch ?? "")")
    let max = try candidate.backend.globalMaxPool(batch, returnIndices: true)
    let maxCheck = CrossCheck.maxPool(max.values.scalars, indices: max.indices, reference: (maxima, indices))
    #expect(maxCheck.passed, "\(candidate.name): \(maxCheck.mismatch ?? "")")
  }

  /// The same batch twice gives bitwise the same output.
  @Test(arguments: backends)
  func deterministic(_ candidate: BackendUnderTest) throws {
    var random = SplitMix64(seed: TestBackends.seed)
    let samples = try [[7, 9], [300, 301], [1, 1]].map { extent in
      try TestData.poolInput([1, 24] + extent, layout: .channelsLast, special: nil, random: &random).reshaped(extent + [24])
    }
    let batch = try RaggedBatch(samples: samples, layout: .channelsLast)
    let backend = candidate.backend
    #expect(try backend.globalAveragePool(batch).scalars.map(\.bitPattern) == backend.globalAveragePool(batch).scalars.map(\.bitPattern))
    #expect(try backend.globalMaxPool(batch, returnIndices: true) == backend.globalMaxPool(batch, returnIndices: true))
  }

  @Test(arguments: backends)
  func emptyBatchesGiveEmptyOutputs(_ candidate: BackendUnderTest) throws {
    let noSamples = try RaggedBatch<Float>(packed: [], channels: 3, extents: [])
    #expect(try candidate.backend.globalAveragePool(noSamples).shape == [0, 3])
    let noChannels = try RaggedBatch<Float>(packed: [], channels: 0, extents: [[2, 2], [3]])
    #expect(try candidate.backend.globalMaxPool(noChannels, returnIndices: true) == MaxPoolResult(values: try Tensor(shape: [2, 0], scalars: []), indices: []))
  }

  @Test func malformedBatchesAreRefused() throws {
    let four: [Float] = [1, 2, 3, 4]
    func refused(_ make: () throws -> RaggedBatch<Float>, _ fragment: String, sourceLocation: SourceLocation = #_sourceLocation) {
      #expect(sourceLocation: sourceLocation) { _ = try make() } throws: { error in
        guard let error = error as? CLPoolError, error.isUsageError else { return false }
        return error.description.contains(fragment)
      }
    }
    refused({ try RaggedBatch(packed: four, channels: 1, extents: [[2], [1]]) }, "describe 3 elements")
    refused({ try RaggedBatch(packed: four, channels: 1, extents: [[2], [2]], offsets: [0, 3]) }, "outside the packed buffer")
    refused({ try RaggedBatch(packed: four, channels: 1, extents: [[2]], offsets: [-1]) }, "outside the packed buffer")
    refused({ try RaggedBatch(packed: four, channels: 1, extents: [[2], [2]], offsets: [0]) }, "one offset per sample")
    refused({ try RaggedBatch(packed: four, channels: 1, extents: [[0, 4]]) }, "empty spatial extent")
    refused({ try RaggedBatch(packed: four, channels: 1, extents: [[1, 1, 2, 2]]) }, "4 spatial axes")
    refused({ try RaggedBatch(packed: four, channels: 1, extents: [[]]) }, "0 spatial axes")
    refused({ try RaggedBatch(packed: four, channels: -1, extents: []) }, "channel count")
    refused({ try RaggedBatch(samples: [try Tensor(shape: [2, 2], scalars: four), try Tensor(shape: [4, 1], scalars: four)]) }, "first sample's C = 2")
    refused({ try RaggedBatch(samples: [try Tensor(shape: [4], scalars: four)]) }, "[C, spatial...]")
    refused({ try RaggedBatch<Float>(samples: []) }, "at least one sample")
  }
}
