@testable import CLPool
import CLPoolCPU
import TestSupport
import Testing

/// The CPU product of a few rows with a long k splits k across the cores by whole K blocks
/// (`CPUDense.BlockSplit`), and `clpool_gemm_block` + `clpool_fold_blocks` must give
/// `clpool_gemm`'s bits, which the batch-invariance tests rely on: blocks computed apart and
/// folded in order are the chain of clpool_cpu.h.
@Suite struct ProductSplitTests {
  @Test func theRuleSplitsOnlyWhereEveryCoreGetsAnEqualShare() {
    let block = Int(CLPOOL_K_BLOCK)
    func splits(rows: Int = 1, k: Int, m: Int = 1000, cores: Int = 2) -> Bool {
      CPUDense.BlockSplit(rows: rows, k: k, m: m, width: 4, cores: cores) != nil
    }
    #expect(splits(k: 2048), "ResNet-50's classifier at batch 1 on two cores")
    #expect(splits(k: 2048, cores: 4) && splits(k: 2048, cores: 8))
    #expect(!splits(k: 2048, cores: 16), "fewer K blocks than cores")
    #expect(!splits(k: 2048, cores: 1))
    #expect(!splits(k: 5 * block, cores: 2), "five blocks on two cores: one core takes 3 of 5")
    #expect(splits(k: 4 * block - 24), "the last block short by less than 8% of a share")
    #expect(!splits(rows: Int(CLPOOL_STREAM_ROWS) + 1, k: 2048), "more rows than one pass of the stream")
    #expect(splits(rows: Int(CLPOOL_STREAM_ROWS), k: 2048))
    #expect(!splits(k: block, cores: 2), "one block")
    #expect(!splits(k: 2048, m: 1 << 20), "partials over 16 MiB")
    for (k, cores) in [(2048, 2), (1000, 2), (9000, 3), (4096, 7)] {
      guard let split = CPUDense.BlockSplit(rows: 1, k: k, m: 10, width: 4, cores: cores) else { continue }
      let covered = (0..<split.tasks).flatMap { Array(split.blocks(of: $0)) }
      #expect(covered == Array(0..<split.blocks), "k \(k) on \(cores) cores: every block once, in order")
    }
  }

  @Test(arguments: [ScalarType.float32, .float64])
  func blocksFoldedApartGiveTheProductsBits(type: ScalarType) {
    Self.check(type.staticType)
  }

  static func check<S: StorageScalar>(_: S.Type) {
    let size = MemoryLayout<S>.size
    var random = SplitMix64(seed: TestEnvironment.seed ^ 0xB10C)
    let block = Int(CLPOOL_K_BLOCK)
    for (rows, k, m, withBias) in [(1, 2048, 1000, true), (6, 4 * block - 24, 45, false), (3, block + 1, 17, true), (1, 35 * block + 7, 40, true), (2, 2 * block, 1, false), (1, block - 5, 33, false)] {
      // Infinities of both signs in w's last column (when there are several) make its chains
      // infinite or NaN (∞ − ∞); NaNs compare as NaN, not bits.
      func value() -> S { S(random.nextFloat(in: -1..<1)) }
      let x = (0..<rows * k).map { _ in value() }
      let w = (0..<k * m).map { i in
        m > 1 && i % m == m - 1 && random.next() % 50 == 0 ? (random.next() % 2 == 0 ? S.infinity : -S.infinity) : value()
      }
      let bias = (0..<m).map { _ in value() }
      let blocks = (k + block - 1) / block
      var whole = [S](repeating: S(-7), count: rows * m)
      var folded = [S](repeating: S(-9), count: rows * m)
      var partials = [S](repeating: S(-5), count: blocks * rows * m)
      let code = S.scalarType.accumulator.kernelCode
      x.withUnsafeBytes { x in
        w.withUnsafeBytes { w in
          bias.withUnsafeBytes { bias in
            let b = withBias ? bias.baseAddress : nil
            whole.withUnsafeMutableBytes { clpool_gemm(code, x.baseAddress, w.baseAddress, b, $0.baseAddress, k, m, 0, rows, 0, m) }
            partials.withUnsafeMutableBytes { partials in
              for index in (0..<blocks).reversed() {
                clpool_gemm_block(code, x.baseAddress, w.baseAddress, partials.baseAddress! + index * rows * m * size, k, m, 0, rows, 0, m, index)
              }
              folded.withUnsafeMutableBytes { clpool_fold_blocks(code, partials.baseAddress, blocks, rows * m, b, m, $0.baseAddress) }
            }
          }
        }
      }
      let differing = (0..<rows * m).filter { i in
        whole[i].isNaN ? !folded[i].isNaN : withUnsafeBytes(of: whole[i], Array.init) != withUnsafeBytes(of: folded[i], Array.init)
      }
      let (count, first) = (differing.count, differing.first ?? 0)
      #expect(count == 0, "\(rows)x\(k)x\(m): \(count) outputs differ, the first at \(first)")
      #expect(whole.contains { $0.isFinite && $0 != 0 }, "\(rows)x\(k)x\(m): no finite output")
    }
  }
}
