import CLPool
import Testing

/// No OpenCL object outlives its owner, and repeated work does not grow the process.
@Suite(.serialized) struct ResourceTests {
  @Test(.enabled(if: TestBackends.runOpenCL))
  func openCLObjectsAreReleased() throws {
    let device = try #require(try OpenCLDevice.all().first)
    // Other suites run in parallel and hold objects of their own: compare against a count taken
    // with this backend's whole lifetime inside one scope, retried to ride out their churn.
    var random = SplitMix64(seed: TestBackends.seed)
    let x = try TestData.uniform([4, 16, 9, 9], in: -1..<1, random: &random)
    let w = try TestData.uniform([16, 5], in: -1..<1, random: &random)
    func useABackend() throws -> Int {
      let backend = try OpenCLBackend(device: device)
      let during = OpenCLDiagnostics.liveObjects
      _ = try backend.head(x, layout: .channelsFirst, weight: w, bias: nil, weightLayout: .inOut, activation: .softmax)
      let z = try backend.globalAveragePool(try backend.upload(x), layout: .channelsFirst, keepDims: false)
      _ = try backend.download(try backend.dense(z, weight: try backend.upload(w), bias: nil, weightLayout: .inOut, activation: .relu))
      _ = try backend.globalMaxPool(x, layout: .channelsLast, keepDims: false, returnIndices: true)
      return during
    }
    var leaked = Int.max
    for _ in 0..<5 where leaked != 0 {
      let before = OpenCLDiagnostics.liveObjects
      _ = try useABackend()
      leaked = OpenCLDiagnostics.liveObjects - before
    }
    #expect(leaked <= 0, "\(leaked) OpenCL objects outlived their backend")
  }

  @Test func repeatedWorkKeepsResidentMemoryFlat() throws {
    guard ResourceUsage.residentBytes() != nil else {
      print("note: resident-memory check skipped: /proc/self/statm unavailable")
      return
    }
    var random = SplitMix64(seed: TestBackends.seed)
    let x = try TestData.uniform([8, 64, 14, 14], in: -1..<1, random: &random)
    let w = try TestData.uniform([64, 100], in: -1..<1, random: &random)
    func round() throws {
      for candidate in TestBackends.all {
        for _ in 0..<20 {
          _ = try candidate.backend.head(x, layout: .channelsFirst, weight: w, bias: nil, weightLayout: .inOut, activation: .none)
          _ = try candidate.backend.globalMaxPool(x, layout: .channelsFirst, keepDims: false, returnIndices: true)
        }
      }
    }
    try round()  // warm-up: caches and reusable buffers reach their size
    let before = ResourceUsage.residentBytes()!
    for _ in 0..<10 { try round() }
    let growth = ResourceUsage.residentBytes()! - before
    // 400 calls per backend; a leak of even the 50 KB output per call would show as 20+ MB.
    #expect(growth < 16 << 20, "resident memory grew by \(growth >> 20) MiB over 10 rounds")
  }
}
