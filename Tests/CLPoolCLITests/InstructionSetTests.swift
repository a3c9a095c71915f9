import CLPool
import Foundation
import TestSupport
import Testing

/// The CPU kernels' instruction sets: on a CPU with AVX-512 the product runs 16-float vectors,
/// which group outputs differently but never change an output's chain, so its bits are the AVX2
/// build's (`CLPOOL_CPU_ISA=avx2`), on both product paths (streamed rows and packed panels),
/// with k blocked and not, edge panels, every storage type and the fused head. Pooling runs the
/// AVX2 build's 8-lane operations with AVX-512's 32 registers, so its bits are the AVX2 build's
/// too: both layouts, avg and max with indices, plain data and NaN, infinities and ties, channel
/// tiles, half tiles and chunked planes, every storage type, max with and without indices (AVX-512
/// takes channels-last positions in pairs there); the same again with workers that never spin, and
/// on the baseline build.
@Suite struct InstructionSetTests {
  /// Whether this CPU runs the AVX-512 build; if not, the reason the `test` is skipped, printed.
  static func runsAVX512(_ test: String) -> Bool {
    guard CPUInstructions.name.contains("AVX-512") else {
      print("note: AVX-512 \(test) test skipped: this CPU runs \(CPUInstructions.name)")
      return false
    }
    return true
  }

  @Test func theAVX512ProductGivesTheAVX2ProductsBits() throws {
    guard Self.runsAVX512("product") else { return }
    let scratch = try ComputeCommandTests.Scratch()
    var random = SplitMix64(seed: TestEnvironment.seed)
    for (rows, inputs, outputs) in [(1, 2048, 1000), (7, 13, 5), (100, 300, 37), (130, 4097, 70), (5, 9000, 40), (97, 64, 1)] {
      let x = try scratch.save(try TestData.uniform([rows, inputs], in: -1..<1, random: &random), "x.npy")
      let w = try scratch.save(try TestData.uniform([inputs, outputs], in: -1..<1, random: &random), "w.npy")
      let b = try scratch.save(try TestData.uniform([outputs], in: -1..<1, random: &random), "b.npy")
      for dtype in ["float16", "float32", "float64"] {
        var results: [Data] = []
        for isa in ["avx2", ""] {
          let output = scratch.path("y-\(isa).npy")
          let run = try ClpoolRun.run(
            ["dense", x, "--weight", w, "--bias", b, "-o", output, "--backend", "cpu", "--dtype", dtype], environment: ["CLPOOL_CPU_ISA": isa])
          #expect(run.status == 0, "\(run.stderr)")
          results.append(try Data(contentsOf: URL(fileURLWithPath: output)))
        }
        #expect(results[0] == results[1], "dense \(rows)x\(inputs)x\(outputs) \(dtype): AVX-512 and AVX2 differ")
      }
    }
    let features = try scratch.save(try TestData.uniform([9, 64, 7, 7], in: -1..<1, random: &random), "f.npy")
    let weight = try scratch.save(try TestData.uniform([64, 33], in: -1..<1, random: &random), "hw.npy")
    let heads = try ["avx2", ""].map { isa -> Data in
      let output = scratch.path("h-\(isa).npy")
      let run = try ClpoolRun.run(["head", features, "--weight", weight, "-o", output, "--backend", "cpu"], environment: ["CLPOOL_CPU_ISA": isa])
      #expect(run.status == 0, "\(run.stderr)")
      return try Data(contentsOf: URL(fileURLWithPath: output))
    }
    #expect(heads[0] == heads[1], "head: AVX-512 and AVX2 differ")
  }

  @Test func poolingGivesTheAVX2BuildsBitsOnEveryBuild() throws {
    guard Self.runsAVX512("pooling") else { return }
    let scratch = try ComputeCommandTests.Scratch()
    var random = SplitMix64(seed: TestEnvironment.seed)
    let runs: [(isa: String, spin: String)] = [("avx2", "1000"), ("", "1000"), ("", "0"), ("baseline", "1000")]
    for shape in [[3, 37, 7, 7], [2, 2053, 3, 3], [1, 1, 1, 1], [4, 64, 13, 1], [2, 112, 9, 9], [1, 3, 70_001]] {
      for layout in [Layout.channelsFirst, .channelsLast] {
        let cases: [(op: String, special: TestData.Special?, indices: Bool)] = [
          ("avg", nil, false), ("avg", .forAverage, false), ("max", nil, true), ("max", .forMax, true), ("max", .forMax, false),
        ]
        for (op, special, withIndices) in cases {
          let x = try TestData.poolInput(shape, layout: layout, special: special, random: &random)
          let input = try scratch.save(x, "x.npy")
          for dtype in ["float16", "float32", "float64"] {
            var results: [Data] = []
            for (index, run) in runs.enumerated() {
              let (output, indices) = (scratch.path("y\(index).npy"), scratch.path("i\(index).npy"))
              let arguments = ["pool", input, "--op", op, "--layout", layout.rawValue, "--dtype", dtype, "--backend", "cpu", "-o", output]
              let result = try ClpoolRun.run(
                arguments + (withIndices ? ["--indices", indices] : []), environment: ["CLPOOL_CPU_ISA": run.isa, "CLPOOL_SPIN_US": run.spin])
              #expect(result.status == 0, "\(result.stderr)")
              results.append(try Data(contentsOf: URL(fileURLWithPath: output)) + (withIndices ? try Data(contentsOf: URL(fileURLWithPath: indices)) : Data()))
            }
            let name = "\(op) \(shape) \(layout) \(dtype) \(special.map { "\($0)" } ?? "")\(withIndices ? " with indices" : "")"
            #expect(results.allSatisfy { $0 == results[0] }, "\(name): the builds differ")
          }
        }
      }
    }
  }
}
