import CLPool
import CLPoolCPU
import Testing

@Suite(.enabled(if: TestBackends.runOpenCL))
struct DispatchingBackendTests {
  /// Calls go by the written rule, per operation, and both sides compute correctly.
  @Test func routesByTheRuleAndStaysCorrect() throws {
    let device = try #require(try OpenCLDevice.all().first)
    let openCL = try OpenCLBackend(device: device, options: TestBackends.options)
    let cpu = CPUBackend(options: TestBackends.options)
    let rule = DispatchRule(poolElements: 1000, multiplyAdds: 5000)
    let backend = DispatchingBackend(device: openCL, cpu: cpu, rule: rule)
    #expect(backend.kind == .opencl && backend.deviceName.contains("on the CPU"))
    #expect(backend.backend(for: .pool(elements: 999)) === cpu && backend.backend(for: .pool(elements: 1000)) === openCL)
    let small = try DenseGeometry(input: [1, 10], weight: [10, 10], bias: nil, weightLayout: .inOut)
    let large = try DenseGeometry(input: [50, 10], weight: [10, 10], bias: nil, weightLayout: .inOut)
    #expect(backend.backend(for: .dense(small)) === cpu && backend.backend(for: .dense(large)) === openCL)
    var random = SplitMix64(seed: TestBackends.seed)
    let x = try TestData.uniform([3, 17, 9, 11], in: -1..<3, random: &random)
    let geometry = try PoolGeometry(shape: x.shape, layout: .channelsFirst)
    let reference = Float64Reference.averagePool(x.scalars, geometry)
    for (rule, expected) in [(DispatchRule.deviceOnly, openCL as any Backend), (.cpuOnly, cpu)] {
      let routed = DispatchingBackend(device: openCL, cpu: cpu, rule: rule)
      let mean = try routed.globalAveragePool(x, layout: .channelsFirst, keepDims: false)
      #expect(CrossCheck.averagePool(mean.scalars, reference: reference).passed)
      let direct = try expected.globalAveragePool(x, layout: .channelsFirst, keepDims: false)
      #expect(mean.scalars.map(\.bitPattern) == direct.scalars.map(\.bitPattern), "\(rule) must route to \(expected.kind)")
    }
  }

  /// The CPU's product and the OpenCL kernels compute the same fma chains in the same K blocks
  /// (CLPOOL_K_BLOCK, Kernels/dense.cl's K_BLOCK), folded in order, then the bias, so a row has
  /// the same bits whichever backend `auto`'s rule sends its batch to: 1, 7 and 100 rows (the
  /// CPU's K blocks split across cores, streamed and packed; OpenCL's per-row and tiled kernels),
  /// k of three blocks and a part, every OpenCL device.
  @Test func theProductGivesTheSameBitsOnTheCPUAndOnOpenCL() throws {
    guard CPUInstructions.name.contains("FMA") else {
      print("note: CPU/OpenCL product bits test skipped: the CPU runs \(CPUInstructions.name), without fma")
      return
    }
    var random = SplitMix64(seed: TestBackends.seed ^ 0xF0AD)
    let (k, m) = (3 * Int(CLPOOL_K_BLOCK) + 77, 70)
    let w = try TestData.uniform([k, m], in: -1..<1, random: &random)
    let b = try TestData.uniform([m], in: -1..<1, random: &random)
    for rows in [1, 7, 100] {
      let x = try TestData.uniform([rows, k], in: -1..<1, random: &random)
      let cpu = try TestBackends.cpu.backend.dense(x, weight: w, bias: b, weightLayout: .inOut, activation: .none)
      for candidate in TestBackends.openCL {
        let device = try candidate.backend.dense(x, weight: w, bias: b, weightLayout: .inOut, activation: .none)
        let outcome = CrossCheck.sameBits(device.scalars, alone: [(sample: 0, row: cpu.scalars)])
        #expect(outcome.passed, "\(candidate.name), \(rows)x\(k)x\(m): \(outcome.mismatch ?? ""), \(outcome.maxError) outputs differ from the CPU's")
      }
    }
    // Without a bias too, where a chain's −0 (1e-25 × −1e-25 underflows) is added to 0 on both.
    let tiny = try Tensor(shape: [1, 2], scalars: [Float(1e-25), 1e-25])
    let negative = try Tensor(shape: [2, 3], scalars: [Float(-1e-25), 1, -1e-25, -1e-25, 2, -1e-25])
    let cpu = try TestBackends.cpu.backend.dense(tiny, weight: negative, weightLayout: .inOut, activation: .none)
    #expect(cpu.scalars[0].bitPattern == 0 && cpu.scalars[2].bitPattern == 0, "the CPU's −0 + 0 is +0: \(cpu.scalars)")
    for candidate in TestBackends.openCL {
      let device = try candidate.backend.dense(tiny, weight: negative, weightLayout: .inOut, activation: .none)
      #expect(device.scalars.map(\.bitPattern) == cpu.scalars.map(\.bitPattern), "\(candidate.name) without a bias: \(device.scalars) vs the CPU's \(cpu.scalars)")
    }
  }

  /// Maxima are exact and both backends keep the first maximum's (or first NaN's) position, and
  /// every NaN a pooling result holds is the quiet NaN of no payload (half 0x7e00), on the CPU and
  /// in every OpenCL kernel (drivers' NAN and NaN payloads differ: PoCL's NAN is 0x7fffffff). So
  /// max pooling gives the same bits whichever backend `auto`'s rule sends a batch to, and a NaN
  /// mean is the same bits too: every storage type, both layouts, both kernel families
  /// (CLPOOL_KERNEL_VARIANT in CI), ragged batches, NaNs of both signs and many payloads. Except
  /// (not tested here): a plane whose maximum is a zero of both signs, where each kernel keeps
  /// the zero its lanes meet first, so the backends may differ in that zero's sign.
  @Test func maxPoolingAndNaNsGiveTheSameBitsOnTheCPUAndOnOpenCL() throws {
    func bits<S: StorageScalar>(_ values: [S]) -> [UInt8] { values.withUnsafeBytes { Array($0) } }
    func nanBits<S: StorageScalar>(_ values: [S]) -> [[UInt8]] {
      values.filter { Double($0).isNaN }.map { value in withUnsafeBytes(of: value) { Array($0) } }
    }
    func check<S: StorageScalar>(_: S.Type, _ candidate: BackendUnderTest) throws {
      let cpu = TestBackends.cpu.backend, device = candidate.backend
      var random = SplitMix64(seed: TestBackends.seed ^ 0x4A4E)
      let payloads: [UInt32] = [0x7F80_0123, 0xFFC0_0001, 0x7FFF_FFFF, 0xFF80_0001, 0x7FC0_0000]
      for layout in Layout.allCases {
        for special in [TestData.Special.forMax, .forAverage] {
          var x = try TestData.poolInput([5, 37, 7, 9], layout: layout, special: special, random: &random)
          x.scalars = x.scalars.map { $0 == 0 ? 0 : $0 }  // −0 to +0 (above)
          for (n, payload) in payloads.enumerated() { x.scalars[n * 97 % x.scalars.count] = Float(bitPattern: payload) }
          let typed = TypedTensor<S>(converting: x)
          let name = "\(candidate.name) \(S.self) \(layout) \(special)"
          let expected = try cpu.globalMaxPool(typed, layout: layout, keepDims: false, returnIndices: true)
          let got = try device.globalMaxPool(typed, layout: layout, keepDims: false, returnIndices: true)
          #expect(bits(got.values.scalars) == bits(expected.values.scalars) && got.indices == expected.indices, "max \(name)")
          let means = try device.globalAveragePool(typed, layout: layout, keepDims: false).scalars
          let cpuMeans = try cpu.globalAveragePool(typed, layout: layout, keepDims: false).scalars
          #expect(!nanBits(cpuMeans).isEmpty && nanBits(means) == nanBits(cpuMeans), "NaN means \(name)")
        }
        var samples: [TypedTensor<S>] = []
        for (n, extent) in [[1, 1], [7, 5], [13, 3]].enumerated() {
          var sample = try TestData.poolInput([1, 11] + extent, layout: layout, special: .forMax, random: &random)
          sample.scalars = sample.scalars.map { $0 == 0 ? 0 : $0 }
          sample.scalars[0] = Float(bitPattern: payloads[n])
          samples.append(TypedTensor<S>(converting: try sample.reshaped(Array(sample.shape.dropFirst()))))
        }
        let ragged = try RaggedBatch(samples: samples, layout: layout)
        let expected = try cpu.globalMaxPool(ragged, returnIndices: true)
        let got = try device.globalMaxPool(ragged, returnIndices: true)
        #expect(bits(got.values.scalars) == bits(expected.values.scalars) && got.indices == expected.indices, "ragged max \(candidate.name) \(S.self) \(layout)")
      }
    }
    for candidate in TestBackends.openCL {
      try check(Float16.self, candidate)
      try check(Float.self, candidate)
      if (try? candidate.backend.checkSupport(.float64)) != nil { try check(Double.self, candidate) }
    }
  }
}
