import CLPool
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
}
