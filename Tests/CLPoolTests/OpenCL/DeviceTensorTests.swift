import CLPool
import Testing

/// Tensors kept on the device between operations give bitwise the results of the host API.
@Suite(.enabled(if: TestBackends.runOpenCL))
struct DeviceTensorTests {
  static let backends = TestBackends.openCL

  @Test(arguments: backends)
  func chainedOperationsMatchTheHostAPI(_ candidate: BackendUnderTest) throws {
    let backend = try #require(candidate.backend as? OpenCLBackend)
    var random = SplitMix64(seed: TestBackends.seed)
    for layout in Layout.allCases {
      let x = try TestData.poolInput([5, 37, 6, 7], layout: layout, special: nil, random: &random)
      let w = try TestData.uniform([23, 37], in: -1..<1, random: &random)  // out-in
      let b = try TestData.uniform([23], in: -1..<1, random: &random)
      let (dx, dw, db) = (try backend.upload(x), try backend.upload(w), try backend.upload(b))
      #expect(try backend.download(dx) == x)

      let pooled = try backend.globalAveragePool(dx, layout: layout, keepDims: false)
      #expect(pooled.shape == [5, 37])
      let hostPooled = try backend.globalAveragePool(x, layout: layout, keepDims: false)
      #expect(try backend.download(pooled).scalars.map(\.bitPattern) == hostPooled.scalars.map(\.bitPattern))

      let y = try backend.dense(pooled, weight: dw, bias: db, weightLayout: .outIn, activation: .softmax)
      let hostY = try backend.dense(hostPooled, weight: w, bias: b, weightLayout: .outIn, activation: .softmax)
      #expect(try backend.download(y).scalars.map(\.bitPattern) == hostY.scalars.map(\.bitPattern))

      let fused = try backend.head(dx, layout: layout, weight: dw, bias: db, weightLayout: .outIn, activation: .softmax)
      let hostFused = try backend.head(x, layout: layout, weight: w, bias: b, weightLayout: .outIn, activation: .softmax)
      #expect(try backend.download(fused).scalars.map(\.bitPattern) == hostFused.scalars.map(\.bitPattern))

      let maxima = try backend.globalMaxPool(dx, layout: layout, keepDims: true)
      #expect(try backend.download(maxima) == backend.globalMaxPool(x, layout: layout, keepDims: true, returnIndices: false).values)
    }
  }

  @Test func deviceTensorsBelongToTheirBackend() throws {
    let device = try #require(try OpenCLDevice.all().first)
    let (first, second) = (try OpenCLBackend(device: device), try OpenCLBackend(device: device))
    let x = try first.upload(try Tensor(shape: [1, 2, 3], scalars: [1, 2, 3, 4, 5, 6]))
    #expect {
      try second.globalAveragePool(x, layout: .channelsFirst, keepDims: false)
    } throws: { error in
      "\(error)".contains("belongs to another OpenCL backend")
    }
    #expect(try first.download(first.globalAveragePool(x, layout: .channelsFirst, keepDims: false)).scalars == [2, 5])
  }
}
