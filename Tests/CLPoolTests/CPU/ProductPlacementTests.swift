@testable import CLPool
import CLPoolCPU
import TestSupport
import Testing

/// The CPU product's bits do not depend on where its weight lies in memory. Streamed rows
/// (Sources/CLPoolCPU/product.inc) take a row's first columns one at a time until w's vector
/// loads start on a vector boundary, so which columns a vector takes follows w's address; each
/// column's chain must not. The weight is copied to every element offset of a 64-byte line and
/// the outputs, poisoned first, must match bit for bit, NaN payloads of both signs included
/// (infinities in every fifth column give ∞ − ∞), on the streamed path (1 and 5 rows), widths with and
/// without a vector tail, column ranges that start anywhere, and the packed path (96 rows) too.
/// The finite outputs are also checked against a float64 product within the chain's worst-case
/// rounding, so a shared wrong answer fails.
@Suite struct ProductPlacementTests {
  @Test(arguments: [ScalarType.float32, .float64])
  func bitsDoNotDependOnTheWeightsAddress(type: ScalarType) {
    Self.check(type.staticType)
  }

  static func check<S: StorageScalar>(_: S.Type) {
    let size = MemoryLayout<S>.size
    var random = SplitMix64(seed: TestEnvironment.seed)
    for (rows, k, m, c0) in [(1, 37, 1000, 0), (1, 2048, 1000, 512), (5, 61, 67, 3), (1, 9, 13, 0), (96, 11, 41, 0)] {
      let x = (0..<rows * k).map { _ in S(random.nextFloat(in: -1..<1)) }
      let w = (0..<k * m).map { i in i % m % 5 == 0 ? Self.value(&random) : S(random.nextFloat(in: -1..<1)) }
      var outputs: [[UInt8]] = []
      for offset in stride(from: 0, to: 64, by: size) {
        outputs.append(Self.product(x: x, w: w, rows: rows, k: k, m: m, c0: c0, weightOffset: offset))
      }
      let shape = "\(rows)x\(k)x\(m) from column \(c0)"
      #expect(outputs.allSatisfy { $0 == outputs[0] }, "\(shape): the bits change with the weight's offset")
      let got = outputs[0].withUnsafeBytes { Array($0.bindMemory(to: S.self)) }
      var checked = 0
      for r in 0..<rows {
        for c in c0..<m {
          var reference = 0.0
          for i in 0..<k { reference += Double(x[r * k + i]) * Double(w[i * m + c]) }
          guard reference.isFinite, abs(reference) < 1e30 else { continue }
          let bound = Double(k + 1) * Double(S.ulpOfOne / 2) * (0..<k).reduce(0) { $0 + abs(Double(x[r * k + $1]) * Double(w[$1 * m + c])) }
          #expect(abs(Double(got[r * m + c]) - reference) <= bound, "\(shape) [\(r), \(c)]: \(got[r * m + c]) vs \(reference)")
          checked += 1
        }
      }
      #expect(checked > 0, "\(shape): no finite output to check")
    }
  }

  /// For every fifth column of w: mostly ordinary values, with some infinities of either sign, so
  /// NaNs arise in those columns' chains.
  static func value<S: StorageScalar>(_ random: inout SplitMix64) -> S {
    switch random.next() % 200 {
    case 0, 1: return .infinity
    case 2, 3: return -.infinity
    default: return S(random.nextFloat(in: -1..<1))
    }
  }

  /// y = x · w over columns [c0, m), w copied `weightOffset` bytes past a 64-byte boundary; the
  /// whole output's bytes, poisoned before the call.
  static func product<S: StorageScalar>(x: [S], w: [S], rows: Int, k: Int, m: Int, c0: Int, weightOffset: Int) -> [UInt8] {
    let weight = UnsafeMutableRawPointer.allocate(byteCount: w.count * MemoryLayout<S>.size + 64, alignment: 64)
    defer { weight.deallocate() }
    w.withUnsafeBytes { (weight + weightOffset).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
    var out = [UInt8](repeating: 0x5A, count: rows * m * MemoryLayout<S>.size)
    x.withUnsafeBytes { input in
      out.withUnsafeMutableBytes { y in
        clpool_gemm(S.scalarType.kernelCode, input.baseAddress, weight + weightOffset, nil, y.baseAddress, k, m, 0, rows, c0, m)
      }
    }
    return out
  }
}
