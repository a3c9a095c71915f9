import CLPool
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
  @Test(arguments: [Int32(CLPOOL_F32), Int32(CLPOOL_F64)])
  func bitsDoNotDependOnTheWeightsAddress(type: Int32) {
    let size = type == CLPOOL_F32 ? 4 : 8
    var random = SplitMix64(seed: TestEnvironment.seed)
    for (rows, k, m, c0) in [(1, 37, 1000, 0), (1, 2048, 1000, 512), (5, 61, 67, 3), (1, 9, 13, 0), (96, 11, 41, 0)] {
      let x = (0..<rows * k).map { _ in Double(random.nextFloat(in: -1..<1)) }
      let w = (0..<k * m).map { i in i % m % 5 == 0 ? Self.value(&random) : Double(random.nextFloat(in: -1..<1)) }
      var outputs: [[UInt8]] = []
      for offset in stride(from: 0, to: 64, by: size) {
        outputs.append(Self.product(type: type, x: x, w: w, rows: rows, k: k, m: m, c0: c0, weightOffset: offset))
      }
      let shape = "\(rows)x\(k)x\(m) from column \(c0)"
      #expect(outputs.allSatisfy { $0 == outputs[0] }, "\(shape): the bits change with the weight's offset")
      let got = Self.values(outputs[0], type: type)
      var checked = 0
      for r in 0..<rows {
        for c in c0..<m {
          var reference = 0.0
          for i in 0..<k { reference += x[r * k + i] * w[i * m + c] }
          guard reference.isFinite, abs(reference) < 1e30 else { continue }
          let bound = Double(k + 1) * (type == CLPOOL_F32 ? 0x1p-24 : 0x1p-53) * (0..<k).reduce(0) { $0 + abs(x[r * k + $1] * w[$1 * m + c]) }
          #expect(abs(got[r * m + c] - reference) <= bound, "\(shape) [\(r), \(c)]: \(got[r * m + c]) vs \(reference)")
          checked += 1
        }
      }
      #expect(checked > 0, "\(shape): no finite output to check")
    }
  }

  /// For every fifth column of w: mostly ordinary values, with some infinities of either sign, so
/// NaNs arise in those columns' chains.
  static func value(_ random: inout SplitMix64) -> Double {
    switch random.next() % 200 {
    case 0, 1: return .infinity
    case 2, 3: return -.infinity
    default: return Double(random.nextFloat(in: -1..<1))
    }
  }

  /// y = x · w over columns [c0, m), w copied `weightOffset` bytes past a 64-byte boundary; the
  /// whole output's bytes, poisoned before the call.
  static func product(type: Int32, x: [Double], w: [Double], rows: Int, k: Int, m: Int, c0: Int, weightOffset: Int) -> [UInt8] {
    let size = type == CLPOOL_F32 ? 4 : 8
    let weight = UnsafeMutableRawPointer.allocate(byteCount: w.count * size + 64, alignment: 64)
    let input = UnsafeMutableRawPointer.allocate(byteCount: x.count * size, alignment: 64)
    defer { weight.deallocate(); input.deallocate() }
    Self.store(w, type: type, at: weight + weightOffset)
    Self.store(x, type: type, at: input)
    var out = [UInt8](repeating: 0x5A, count: rows * m * size)
    out.withUnsafeMutableBytes { y in
      clpool_gemm(type, input, weight + weightOffset, nil, y.baseAddress, k, m, 0, rows, c0, m)
    }
    return out
  }

  static func store(_ values: [Double], type: Int32, at pointer: UnsafeMutableRawPointer) {
    for (i, value) in values.enumerated() {
      if type == CLPOOL_F32 {
        pointer.storeBytes(of: Float(value), toByteOffset: i * 4, as: Float.self)
      } else {
        pointer.storeBytes(of: value, toByteOffset: i * 8, as: Double.self)
      }
    }
  }

  static func values(_ bytes: [UInt8], type: Int32) -> [Double] {
    bytes.withUnsafeBytes { raw in
      type == CLPOOL_F32 ? raw.bindMemory(to: Float.self).map(Double.init) : Array(raw.bindMemory(to: Double.self))
    }
  }
}
