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
}
