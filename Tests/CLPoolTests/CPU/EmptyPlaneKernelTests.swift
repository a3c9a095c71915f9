import CLPoolCPU
import Testing

/// The channels-last kernels' contract at zero positions (the Swift side refuses an empty spatial
/// extent before it gets there, but the C functions are callable on their own): sums of nothing
/// are 0, their means NaN, and maxima −∞, whatever the output held before (poisoned first: the
/// sums once returned whatever the stack held).
@Suite struct EmptyPlaneKernelTests {
  @Test func zeroPositionsGiveZeroSumsNaNMeansAndNegativeInfinityMaxima() {
    let input = [Double](repeating: 7, count: 16)
    for final in [Int32(0), 1] {
      for (type, name) in [(Int32(CLPOOL_F32), "float32"), (Int32(CLPOOL_F64), "float64")] {
        var out = [Double](repeating: .nan, count: 8)
        input.withUnsafeBytes { x in
          out.withUnsafeMutableBytes { o in
            o.initializeMemory(as: UInt8.self, repeating: 0x5A)
            clpool_sum_channels(type, x.baseAddress, 4, 0, 0, 4, o.baseAddress, 1, final)
          }
        }
        let values: [Double] = out.withUnsafeBytes { o in
          type == CLPOOL_F32 ? o.bindMemory(to: Float.self).prefix(4).map(Double.init) : Array(o.bindMemory(to: Double.self).prefix(4))
        }
        #expect(values.allSatisfy { final == 1 ? $0.isNaN : $0 == 0 }, "\(name), final \(final): \(values)")
      }
    }
    var maxima = [Double](repeating: 0, count: 4)
    input.withUnsafeBytes { x in
      maxima.withUnsafeMutableBytes { o in clpool_max_channels(Int32(CLPOOL_F64), x.baseAddress, 4, 0, 0, 4, o.baseAddress, nil, 1, 1) }
    }
    #expect(maxima.allSatisfy { $0 == -.infinity }, "\(maxima)")
  }
}
