import CLPool
import CLPoolCPU
import Testing

@Suite(.enabled(if: TestBackends.runOpenCL))
struct DispatchingBackendTests {
  /// Pooling always runs on the CPU; a product runs on the device from the rule's size up, and
  /// every call gives the CPU backend's bits, so a sample's result is the same alone and inside a
  /// batch the rule sends elsewhere: pooling in both layouts, ragged, backward, dense and the head
  /// with every activation (the device's exponentials differ from the CPU's), both weight
  /// layouts, with and without a bias, every storage type, batches of 1 and 40 rows, NaNs.
  @Test func everyCallGivesTheCPUBackendsBits() throws {
    func bits<S: StorageScalar>(_ values: [S]) -> [UInt8] { values.withUnsafeBytes { Array($0) } }
    let cpu = CPUBackend(options: TestBackends.options)
    for candidate in TestBackends.openCL {
      guard let openCL = candidate.backend as? OpenCLBackend else { continue }
      let rule = DispatchRule(multiplyAdds: 5000)
      let routed = DispatchingBackend(device: openCL, cpu: cpu, rule: rule)
      #expect(routed.kind == .opencl && routed.deviceName.contains("on the CPU"))
      let small = try DenseGeometry(input: [1, 10], weight: [10, 10], bias: nil, weightLayout: .inOut)
      let large = try DenseGeometry(input: [50, 10], weight: [10, 10], bias: nil, weightLayout: .inOut)
      #expect(routed.backend(for: .pool(elements: 1 << 30)) === cpu && routed.backend(for: .dense(small)) === cpu)
      #expect(CPUInstructions.name.hasPrefix("baseline") || routed.backend(for: .dense(large)) === routed)
      // On a CPU without fma every product runs on the device: the device's bits, at every size.
      let expectedProducts: any Backend = clpool_cpu_isa() == Int32(CLPOOL_ISA_BASELINE) ? openCL : cpu
      func check<S: StorageScalar>(_: S.Type) throws {
        var random = SplitMix64(seed: TestBackends.seed ^ 0xD15)
        let name = "\(candidate.name) \(S.self)"
        for rows in [1, 40] {
          var features = try TestData.uniform([rows, 70, 3, 5], in: -1..<3, random: &random)
          features.scalars[7] = .nan
          let x = TypedTensor<S>(converting: features)
          let pooled = TypedTensor<S>(converting: try TestData.uniform([rows, 70], in: -1..<1, random: &random))
          for layout in Layout.allCases {
            #expect(bits(try routed.globalAveragePool(x, layout: layout, keepDims: false).scalars)
              == bits(try cpu.globalAveragePool(x, layout: layout, keepDims: false).scalars), "avg \(name) \(layout) \(rows)")
            let maxima = try routed.globalMaxPool(x, layout: layout, keepDims: false, returnIndices: true)
            let expected = try cpu.globalMaxPool(x, layout: layout, keepDims: false, returnIndices: true)
            #expect(bits(maxima.values.scalars) == bits(expected.values.scalars) && maxima.indices == expected.indices, "max \(name) \(layout)")
          }
          for weightLayout in [WeightLayout.inOut, .outIn] {
            let shape = weightLayout == .inOut ? [70, 13] : [13, 70]
            let w = TypedTensor<S>(converting: try TestData.uniform(shape, in: -0.3..<0.3, random: &random))
            let b = TypedTensor<S>(converting: try TestData.uniform([13], in: -1..<1, random: &random))
            for activation in Activation.allCases {
              for bias in [b, nil] {
                let label = "\(name) \(weightLayout) \(activation) bias \(bias != nil) rows \(rows)"
                #expect(bits(try routed.dense(pooled, weight: w, bias: bias, weightLayout: weightLayout, activation: activation).scalars)
                  == bits(try expectedProducts.dense(pooled, weight: w, bias: bias, weightLayout: weightLayout, activation: activation).scalars), "dense \(label)")
                #expect(bits(try routed.head(x, layout: .channelsFirst, weight: w, bias: bias, weightLayout: weightLayout, activation: activation).scalars)
                  == bits(try expectedProducts.head(x, layout: .channelsFirst, weight: w, bias: bias, weightLayout: weightLayout, activation: activation).scalars), "head \(label)")
              }
            }
          }
        }
        // Three K blocks and a part, M past a tile, one row (the device's single-row kernel) and 70;
        // a chain that underflows to −0 beside a −0 bias (the tiled kernel made it +0); NaN and
        // ±Inf in W and b.
        let k = 3 * Int(CLPOOL_K_BLOCK) + 45
        for rows in [1, 70] {
          var x = try TestData.uniform([rows, k], in: -1..<1, random: &random)
          var w = try TestData.uniform([k, 37], in: -0.1..<0.1, random: &random)
          var b = try TestData.uniform([37], in: -1..<1, random: &random)
          for i in 0..<k { x.scalars[i] = 1e-30; w.scalars[i * 37] = -1e-30 }
          b.scalars[0] = -0.0
          w.scalars[5] = .nan
          w.scalars[37 * 9 + 2] = .infinity
          b.scalars[3] = -.infinity
          let short = try TestData.uniform([rows, 200], in: -1..<1, random: &random)  // one K block
          var shortW = try TestData.uniform([200, 37], in: -0.1..<0.1, random: &random)
          var shortX = short
          for i in 0..<200 { shortX.scalars[i] = 1e-30; shortW.scalars[i * 37] = -1e-30 }
          for (input, weight) in [(x, w), (shortX, shortW)] {
            for activation in Activation.allCases {
              let (xs, ws, bs) = (TypedTensor<S>(converting: input), TypedTensor<S>(converting: weight), TypedTensor<S>(converting: b))
              #expect(bits(try routed.dense(xs, weight: ws, bias: bs, activation: activation).scalars)
                == bits(try expectedProducts.dense(xs, weight: ws, bias: bs, activation: activation).scalars),
                "dense \(name) \(rows)x\(input.shape[1])x37 \(activation) with −0 chains, NaN and ±Inf")
            }
          }
        }
        let ragged = try RaggedBatch(samples: [[70, 1, 1], [70, 4, 9]].map {
          TypedTensor<S>(converting: try TestData.uniform($0, in: -1..<1, random: &random)) })
        #expect(bits(try routed.globalAveragePool(ragged).scalars) == bits(try cpu.globalAveragePool(ragged).scalars), "ragged \(name)")
      }
      try check(Float16.self)
      try check(Float.self)
      if (try? openCL.checkSupport(.float64)) != nil { try check(Double.self) }
      var random = SplitMix64(seed: TestBackends.seed)
      let gradient = try TestData.uniform([2, 3], in: -1..<1, random: &random)
      #expect(try routed.globalAveragePoolBackward(gradient, inputShape: [2, 3, 4, 5], layout: .channelsFirst)
        == (try cpu.globalAveragePoolBackward(gradient, inputShape: [2, 3, 4, 5], layout: .channelsFirst)))
    }
  }

  /// A device built with another K block folds its chains elsewhere, so `auto` runs every product
  /// on the CPU; a product the device cannot hold (float16 widened to float32 doubles its bytes)
  /// runs on the CPU, with the same bits, rather than failing.
  @Test func productsTheDeviceCannotMatchOrHoldRunOnTheCPU() throws {
    let device = try #require(try OpenCLDevice.all().first)
    let cpu = CPUBackend(options: TestBackends.options)
    let reblocked = try OpenCLBackend(device: device, options: TestBackends.options, buildOptions: "-DK_BLOCK=512")
    #expect(DispatchingBackend(device: reblocked, cpu: cpu).rule == .cpuOnly)
    guard clpool_cpu_isa() != Int32(CLPOOL_ISA_BASELINE) else { return }  // there the rule is deviceOnly: no fallback
    let capped = try OpenCLBackend(device: device, options: TestBackends.options, allocationCap: 3 << 20)
    let routed = DispatchingBackend(device: capped, cpu: cpu, rule: .init(multiplyAdds: 1))
    var random = SplitMix64(seed: TestBackends.seed ^ 0xCA9)
    let x = TypedTensor<Float16>(converting: try TestData.uniform([4, 1024], in: -1..<1, random: &random))
    let w = TypedTensor<Float16>(converting: try TestData.uniform([1024, 1024], in: -0.1..<0.1, random: &random))  // 4 MiB widened
    #expect(try routed.dense(x, weight: w, activation: .softmax).scalars.map(\.bitPattern)
      == (try cpu.dense(x, weight: w, activation: .softmax).scalars.map(\.bitPattern)))
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
  /// (CLPOOL_KERNEL_VARIANT in CI), ragged batches, NaNs of both signs and many payloads, and
  /// planes whose maximum is a zero of both signs: a maximum is the element at its index, so a
  /// zero has the first zero's sign (each kernel kept the zero its lanes met first: they differed).
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
          for (n, payload) in payloads.enumerated() { x.scalars[n * 97 % x.scalars.count] = Float(bitPattern: payload) }
          let typed = TypedTensor<S>(converting: x)
          let name = "\(candidate.name) \(S.self) \(layout) \(special)"
          let expected = try cpu.globalMaxPool(typed, layout: layout, keepDims: false, returnIndices: true)
          let got = try device.globalMaxPool(typed, layout: layout, keepDims: false, returnIndices: true)
          #expect(bits(got.values.scalars) == bits(expected.values.scalars) && got.indices == expected.indices, "max \(name)")
          for (backend, result) in [("cpu", expected), (candidate.name, got)] {
            let sampled = try Self.elementsAt(result.indices ?? [], of: typed, layout: layout)
            let numbers = zip(result.values.scalars, sampled).filter { !Double($0.0).isNaN }
            #expect(bits(numbers.map(\.0)) == bits(numbers.map(\.1)), "\(backend) \(name): a maximum is not the element at its index")
          }
          let means = try device.globalAveragePool(typed, layout: layout, keepDims: false).scalars
          let cpuMeans = try cpu.globalAveragePool(typed, layout: layout, keepDims: false).scalars
          #expect(!nanBits(cpuMeans).isEmpty && nanBits(means) == nanBits(cpuMeans), "NaN means \(name)")
        }
        var samples: [TypedTensor<S>] = []
        for (n, extent) in [[1, 1], [7, 5], [13, 3]].enumerated() {
          var sample = try TestData.poolInput([1, 11] + extent, layout: layout, special: .forMax, random: &random)
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

  /// The element of each (n, c) plane at that plane's position in `indices`.
  static func elementsAt<S: StorageScalar>(_ indices: [Int64], of x: TypedTensor<S>, layout: Layout) throws -> [S] {
    let geometry = try PoolGeometry(shape: x.shape, layout: layout)
    let (channels, spatial) = (geometry.channels, geometry.spatialSize)
    return indices.enumerated().map { plane, index in
      let (n, c, s) = (plane / channels, plane % channels, Int(index))
      return x.scalars[layout == .channelsFirst ? (n * channels + c) * spatial + s : (n * spatial + s) * channels + c]
    }
  }
}
