import CLPool
import Testing

@Suite(.enabled(if: TestBackends.runOpenCL))
struct DispatchingBackendTests {
  /// The break-even size is measured, and both sides of it compute the same operations correctly.
  @Test func routesBySizeAndStaysCorrect() throws {
    let device = try #require(try OpenCLDevice.all().first)
    let openCL = try OpenCLBackend(device: device, options: TestBackends.options)
    let cpu = CPUBackend(options: TestBackends.options)
    let measured = try DispatchingBackend(device: openCL, cpu: cpu)
    #expect(measured.threshold >= 0)
    #expect(measured.kind == .opencl && measured.deviceName.contains("on the CPU"))
    var random = SplitMix64(seed: TestBackends.seed)
    let x = try TestData.uniform([3, 17, 9, 11], in: -1..<3, random: &random)
    let geometry = try PoolGeometry(shape: x.shape, layout: .channelsFirst)
    let reference = Float64Reference.averagePool(x.scalars, geometry)
    for threshold in [0, Int.max] {  // everything on the device, everything on the CPU
      let backend = try DispatchingBackend(device: openCL, cpu: cpu, threshold: threshold)
      let mean = try backend.globalAveragePool(x, layout: .channelsFirst, keepDims: false)
      #expect(CrossCheck.averagePool(mean.scalars, reference: reference).passed)
      let expected = try (threshold == 0 ? openCL as any Backend : cpu).globalAveragePool(x, layout: .channelsFirst, keepDims: false)
      #expect(mean.scalars.map(\.bitPattern) == expected.scalars.map(\.bitPattern), "threshold \(threshold) must route to \(threshold == 0 ? "opencl" : "cpu")")
    }
  }
}
