import CLPool
import Testing

/// `ShardedBackend` (`--device all`) against one device: the same bits, whatever the shares.
/// The shards here are backends on the same device (this test process sees the devices CI
/// gives it); the CLI tests shard over two PoCL devices.
@Suite(.enabled(if: TestBackends.runOpenCL)) struct ShardedBackendTests {
  static func devices() throws -> [OpenCLDevice] {
    let devices = try OpenCLDevice.all()
    try #require(!devices.isEmpty, "no OpenCL device: \(TestBackends.openCLUnavailableReason)")
    return devices
  }

  /// One backend and several shardings of the same device: uneven, one shard empty, many.
  static func shardings(_ device: OpenCLDevice) throws -> (single: OpenCLBackend, sharded: [ShardedBackend]) {
    func backend() throws -> OpenCLBackend { try OpenCLBackend(device: device, options: TestBackends.options) }
    return (
      try backend(),
      [
        try ShardedBackend([try backend(), try backend()], shares: [0.37, 0.63]),
        try ShardedBackend([try backend(), try backend()], shares: [0, 1]),
        try ShardedBackend([try backend(), try backend(), try backend()], shares: [1, 1, 1]),
      ]
    )
  }

  static func bits<S: StorageScalar>(_ values: [S]) -> [[UInt8]] { values.map { value in withUnsafeBytes(of: value) { Array($0) } } }

  @Test func rangesCoverTheBatchInOrder() throws {
    let backend = try OpenCLBackend(device: try Self.devices()[0])
    let sharded = try ShardedBackend([backend, backend, backend], shares: [0.2, 0, 0.8])
    #expect(sharded.shares == [0.2, 0, 0.8])
    for count in [0, 1, 2, 5, 97] {
      let ranges = sharded.ranges(count)
      #expect(ranges.count == 3)
      #expect(ranges.first?.lowerBound == 0 && ranges.last?.upperBound == count)
      for (a, b) in zip(ranges, ranges.dropFirst()) { #expect(a.upperBound == b.lowerBound) }
      #expect(ranges[1].isEmpty)
    }
  }

  @Test func poolingDenseAndHeadMatchOneDeviceBitForBit() throws {
    var random = SplitMix64(seed: TestBackends.seed ^ 0x5A4D)
    for device in try Self.devices() {
      let (single, shardings) = try Self.shardings(device)
      for layout in Layout.allCases {
        let x = try TestData.poolInput([11, 13, 5, 7], layout: layout, special: .forMax, random: &random)
        let mean = try single.globalAveragePool(x, layout: layout)
        let maxima = try single.globalMaxPool(x, layout: layout, keepDims: false, returnIndices: true)
        for sharded in shardings {
          #expect(Self.bits(try sharded.globalAveragePool(x, layout: layout).scalars) == Self.bits(mean.scalars), "\(sharded.deviceName) avg \(layout)")
          let shardedMaxima = try sharded.globalMaxPool(x, layout: layout, keepDims: false, returnIndices: true)
          #expect(Self.bits(shardedMaxima.values.scalars) == Self.bits(maxima.values.scalars), "\(sharded.deviceName) max \(layout)")
          #expect(shardedMaxima.indices == maxima.indices, "\(sharded.deviceName) indices \(layout)")
        }
      }
      let features = try TestData.poolInput([9, 24, 3, 3], layout: .channelsFirst, special: nil, random: &random)
      let rows = try TestData.uniform([9, 24], in: -1..<1, random: &random)
      let w = try TestData.uniform([24, 10], in: -1..<1, random: &random)
      let b = try TestData.uniform([10], in: -1..<1, random: &random)
      let dense = try single.dense(rows, weight: w, bias: b, activation: .softmax)
      let head = try single.head(features, weight: w, bias: b)
      for sharded in shardings {
        #expect(Self.bits(try sharded.dense(rows, weight: w, bias: b, activation: .softmax).scalars) == Self.bits(dense.scalars), "\(sharded.deviceName) dense")
        #expect(Self.bits(try sharded.head(features, weight: w, bias: b).scalars) == Self.bits(head.scalars), "\(sharded.deviceName) head")
      }
    }
  }

  @Test func raggedBatchesAndHalvesMatchOneDevice() throws {
    var random = SplitMix64(seed: TestBackends.seed ^ 0x2A66)
    for device in try Self.devices() {
      let (single, shardings) = try Self.shardings(device)
      let samples = try [[6, 4, 4], [6, 1, 9], [6, 7, 3], [6, 2, 2], [6, 5, 5]].map {
        TypedTensor<Float>(converting: try TestData.uniform($0, in: -2..<2, random: &random))
      }
      let batch = try RaggedBatch(samples: samples)
      let mean = try single.globalAveragePool(batch)
      let maxima = try single.globalMaxPool(batch, returnIndices: true)
      let halves = TypedTensor<Float16>(converting: try TestData.uniform([7, 5, 3, 3], in: -2..<2, random: &random))
      let halfMean = try single.globalAveragePool(halves)
      for sharded in shardings {
        #expect(Self.bits(try sharded.globalAveragePool(batch).scalars) == Self.bits(mean.scalars), "\(sharded.deviceName) ragged avg")
        let shardedMaxima = try sharded.globalMaxPool(batch, returnIndices: true)
        #expect(Self.bits(shardedMaxima.values.scalars) == Self.bits(maxima.values.scalars), "\(sharded.deviceName) ragged max")
        #expect(shardedMaxima.indices == maxima.indices)
        #expect(Self.bits(try sharded.globalAveragePool(halves).scalars) == Self.bits(halfMean.scalars), "\(sharded.deviceName) float16")
      }
    }
  }
}
