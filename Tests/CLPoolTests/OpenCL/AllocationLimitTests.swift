import CLPool
import Testing

/// A simulated allocation failure (a cap far below the device's limit): pooling inputs are split
/// into parts of whole samples that fit and give bitwise the same result; what cannot be split is
/// refused with a message naming the limit.
@Suite(.enabled(if: TestBackends.runOpenCL))
struct AllocationLimitTests {
  @Test func poolingSplitsIntoPartsThatFitWithTheSameResult() throws {
    let device = try #require(try OpenCLDevice.all().first)
    let unlimited = try OpenCLBackend(device: device, options: TestBackends.options)
    let capped = try OpenCLBackend(device: device, options: TestBackends.options, allocationCap: 64 * 1024)
    #expect(capped.allocationLimit == 64 * 1024)
    var random = SplitMix64(seed: TestBackends.seed)
    for layout in Layout.allCases {
      // 7 samples of 8 × 40 × 40 floats (51,200 bytes each): one sample per part under the cap.
      let x = try TestData.poolInput([7, 8, 40, 40], layout: layout, special: .forMax, random: &random)
      let whole = try unlimited.globalAveragePool(x, layout: layout, keepDims: false)
      let parts = try capped.globalAveragePool(x, layout: layout, keepDims: false)
      #expect(parts.scalars.map(\.bitPattern) == whole.scalars.map(\.bitPattern), "avg \(layout)")
      let wholeMax = try unlimited.globalMaxPool(x, layout: layout, keepDims: true, returnIndices: true)
      let partsMax = try capped.globalMaxPool(x, layout: layout, keepDims: true, returnIndices: true)
      #expect(partsMax.values.scalars.map(\.bitPattern) == wholeMax.values.scalars.map(\.bitPattern), "max \(layout)")
      #expect(partsMax.indices == wholeMax.indices && partsMax.values.shape == wholeMax.values.shape, "max \(layout)")
      let check = CrossCheck.averagePool(parts.scalars, reference: Float64Reference.averagePool(x.scalars, try PoolGeometry(shape: x.shape, layout: layout)))
      #expect(check.passed)
    }
  }

  @Test func whatCannotBeSplitIsRefusedNamingTheLimit() throws {
    let device = try #require(try OpenCLDevice.all().first)
    let capped = try BackendSelection.resolve(
      backend: "opencl", device: "\(device.index)", environment: ["CLPOOL_MAX_ALLOC_BYTES": "4096"]
    ).makeBackend()
    #expect {
      try capped.globalAveragePool(try Tensor(shape: [1, 2, 32, 32], repeating: 1), layout: .channelsFirst, keepDims: false)
    } throws: { error in
      "\(error)" == "one sample of pooling input 1x2x32x32 needs 8192 bytes, more than the allocation cap (CLPOOL_MAX_ALLOC_BYTES = 4096 bytes)"
    }
    #expect {
      try capped.dense(try Tensor(shape: [2, 64], repeating: 1), weight: try Tensor(shape: [64, 32], repeating: 1), bias: nil, weightLayout: .inOut, activation: .none)
    } throws: { error in
      "\(error)".contains("dense weight 64x32 needs 8192 bytes, more than the allocation cap")
    }
    #expect(throws: CLPoolError.self) { try BackendSelection.resolve(environment: ["CLPOOL_MAX_ALLOC_BYTES": "lots"]) }
    // A ragged batch is one buffer: refused whole, naming the limit.
    let ragged = try RaggedBatch(samples: [try Tensor(shape: [2, 32, 32], repeating: 1), try Tensor(shape: [2, 9, 9], repeating: 1)])
    #expect {
      try capped.globalAveragePool(ragged)
    } throws: { error in
      "\(error)" == "ragged batch of 2 samples x 2 channels needs 8840 bytes, more than the allocation cap (CLPOOL_MAX_ALLOC_BYTES = 4096 bytes)"
    }
  }

  /// The limit counts bytes of the storage type (under a 128 KiB cap: 5 float16 samples per part,
  /// 2 float32, 1 float64), each result bitwise equal to the unsplit one.
  @Test func typedPoolingSplitsByItsOwnWidth() throws {
    let device = try #require(try OpenCLDevice.all().first)
    let unlimited = try OpenCLBackend(device: device, options: TestBackends.options)
    let capped = try OpenCLBackend(device: device, options: TestBackends.options, allocationCap: 128 * 1024)
    var random = SplitMix64(seed: TestBackends.seed)
    let x = try TestData.poolInput([7, 8, 40, 40], layout: .channelsLast, special: .forMax, random: &random)
    func bits<S: StorageScalar>(_ tensor: TypedTensor<S>) -> [UInt64] { tensor.scalars.map { Double($0).bitPattern } }
    func check<S: StorageScalar>(_: S.Type) throws {
      let typed = TypedTensor<S>(converting: x)
      let whole = try unlimited.globalMaxPool(typed, layout: .channelsLast, keepDims: false, returnIndices: true)
      let parts = try capped.globalMaxPool(typed, layout: .channelsLast, keepDims: false, returnIndices: true)
      #expect(bits(parts.values) == bits(whole.values) && parts.indices == whole.indices, "\(S.self)")  // NaN planes too
      let mean = try unlimited.globalAveragePool(typed, layout: .channelsLast, keepDims: false)
      #expect(bits(try capped.globalAveragePool(typed, layout: .channelsLast, keepDims: false)) == bits(mean), "\(S.self)")
    }
    try check(Float16.self)
    if device.supportsFP64 { try check(Double.self) }
  }
}
