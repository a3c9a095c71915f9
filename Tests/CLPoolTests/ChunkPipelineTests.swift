import CLPool
import Testing

/// A stream's chunks through `ChunkPipeline`, synchronous and overlapped (forced on the CPU
/// drivers, where it would otherwise compute in place), against one call on the whole batch: the
/// bits must be the same for every chunk size (SPEC: batch invariance).
@Suite struct ChunkPipelineTests {
  /// Every backend with each way of transferring it takes.
  static var pipelines: [(BackendUnderTest, overlap: Bool)] {
    [(TestBackends.cpu, false)] + TestBackends.openCL.flatMap { [($0, false), ($0, true)] }
  }

  /// Streams `x` through `operation` in chunks of `chunk` samples; returns each output and the
  /// indices, concatenated in sample order, and whether the transfers overlapped.
  static func stream(
    _ x: Tensor, _ operation: StreamedOperation, chunk: Int, on backend: any Backend, overlap: Bool
  ) throws -> (outputs: [[Float]], indices: [Int64], overlapped: Bool) {
    let batch = x.shape[0]
    var outputs: [[Float]] = []
    var indices: [Int64] = []
    var delivered = 0
    let pipeline = try ChunkPipeline(
      backend: backend, operation: operation, type: .float32, sampleShape: Array(x.shape.dropFirst()), maxSamples: chunk,
      overlapTransfers: overlap
    ) { results in
      if outputs.isEmpty { outputs = Array(repeating: [], count: results.outputs.count) }
      for (index, output) in results.outputs.enumerated() { outputs[index] += Array(output.bindMemory(to: Float.self)) }
      indices += results.indices.map(Array.init) ?? []
      delivered += results.samples
    }
    let sampleElements = x.count / batch
    try x.scalars.withUnsafeBytes { bytes in
      for first in stride(from: 0, to: batch, by: chunk) {
        let count = min(chunk, batch - first)
        try pipeline.submit(
          UnsafeRawBufferPointer(rebasing: bytes[(first * sampleElements * 4)..<((first + count) * sampleElements * 4)]),
          samples: count)
      }
    }
    try pipeline.finish()
    #expect(delivered == batch)
    return (outputs, indices, pipeline.overlapsTransfers)
  }

  static func bits(_ values: [Float]) -> [UInt32] { values.map(\.bitPattern) }

  @Test(arguments: [[5, 7], [1, 1], [97]])
  func pooledStreamsMatchOneCall(_ spatial: [Int]) throws {
    var random = SplitMix64(seed: TestBackends.seed ^ 0xC4C4)
    for layout in Layout.allCases {
      let x = try TestData.poolInput([23, 13] + spatial, layout: layout, special: nil, random: &random)
      for (candidate, overlap) in Self.pipelines {
        let backend = candidate.backend
        let mean = try backend.globalAveragePool(x, layout: layout)
        let maxima = try backend.globalMaxPool(x, layout: layout, keepDims: false, returnIndices: true)
        for chunk in [1, 4, 23] {
          let name = "\(candidate.name) overlap=\(overlap) \(layout) \(x.shape) chunks of \(chunk)"
          let averaged = try Self.stream(x, .pool(.average, layout: layout, indices: false), chunk: chunk, on: backend, overlap: overlap)
          #expect(averaged.overlapped == overlap, "\(name)")
          #expect(Self.bits(averaged.outputs[0]) == Self.bits(mean.scalars), "\(name): avg")
          let maxed = try Self.stream(x, .pool(.max, layout: layout, indices: true), chunk: chunk, on: backend, overlap: overlap)
          #expect(Self.bits(maxed.outputs[0]) == Self.bits(maxima.values.scalars), "\(name): max")
          #expect(maxed.indices == maxima.indices, "\(name): indices")
        }
      }
    }
  }

  @Test func headStreamsMatchOneCall() throws {
    var random = SplitMix64(seed: TestBackends.seed ^ 0x4EAD)
    let (channels, classes) = (29, 11)
    let x = try TestData.poolInput([17, channels, 3, 5], layout: .channelsFirst, special: nil, random: &random)
    let bias = try TestData.uniform([classes], in: -1..<1, random: &random)
    for weightLayout in WeightLayout.allCases {
      let w = try TestData.uniform(weightLayout == .inOut ? [channels, classes] : [classes, channels], in: -0.5..<0.5, random: &random)
      for (candidate, overlap) in Self.pipelines {
        let backend = candidate.backend
        let expected = try [Activation.softmax, .none].map {
          try backend.head(x, weight: w, bias: bias, weightLayout: weightLayout, activation: $0).scalars
        }
        for chunk in [1, 6, 17] {
          let streamed = try w.scalars.withUnsafeBytes { weight in
            try bias.scalars.withUnsafeBytes { biasBytes in
              try Self.stream(
                x,
                .head(
                  layout: .channelsFirst, weight: weight, weightShape: w.shape, bias: biasBytes, weightLayout: weightLayout,
                  activations: [.softmax, .none]), chunk: chunk, on: backend, overlap: overlap)
            }
          }
          let name = "\(candidate.name) overlap=\(overlap) \(weightLayout) chunks of \(chunk)"
          #expect(streamed.outputs.map(Self.bits) == expected.map(Self.bits), "\(name)")
        }
      }
    }
  }

  /// A chunk larger than the pipeline was made for, or smaller than its samples say, is an
  /// error; so is indices with average pooling. A delivery that throws stops the stream with its
  /// error, and the pipeline goes away cleanly with a chunk still in flight.
  @Test func misuseIsAnError() throws {
    struct Refused: Error {}
    let x = try Tensor(shape: [4, 2, 3], scalars: (0..<24).map(Float.init))
    for (candidate, overlap) in Self.pipelines {
      let backend = candidate.backend
      #expect(throws: CLPoolError.self) {
        try ChunkPipeline(
          backend: backend, operation: .pool(.average, layout: .channelsFirst, indices: true), type: .float32,
          sampleShape: [2, 3], maxSamples: 2, overlapTransfers: overlap) { _ in }
      }
      let pipeline = try ChunkPipeline(
        backend: backend, operation: .pool(.max, layout: .channelsFirst, indices: false), type: .float32,
        sampleShape: [2, 3], maxSamples: 2, overlapTransfers: overlap) { _ in throw Refused() }
      try x.scalars.withUnsafeBytes { bytes in
        #expect(throws: CLPoolError.self) { try pipeline.submit(bytes, samples: 3) }
        #expect(throws: CLPoolError.self) { try pipeline.submit(UnsafeRawBufferPointer(rebasing: bytes[..<20]), samples: 1) }
        // The synchronous pipeline delivers at once; the overlapped one with the next chunk or at the end.
        if overlap {
          try pipeline.submit(bytes, samples: 2)
          #expect(throws: Refused.self) { try pipeline.submit(bytes, samples: 2) }
        } else {
          #expect(throws: Refused.self) { try pipeline.submit(bytes, samples: 2) }
        }
        // A chunk of the failed step may still be in flight: the stream has ended.
        #expect(throws: CLPoolError.self) { try pipeline.submit(bytes, samples: 2) }
        #expect(throws: CLPoolError.self) { try pipeline.finish() }
      }
      // Dropped with a chunk submitted and not finished.
      let abandoned = try ChunkPipeline(
        backend: backend, operation: .pool(.max, layout: .channelsFirst, indices: false), type: .float32,
        sampleShape: [2, 3], maxSamples: 4, overlapTransfers: overlap) { _ in }
      try x.scalars.withUnsafeBytes { try abandoned.submit($0, samples: 4) }
    }
  }
}
