import CLPool
import Testing

/// `clpool bench` reads an input larger than the last-level cache from memory: it holds enough
/// copies that the others, read between two reads of one copy, add up to twice the cache, and
/// times a read of the same bytes beside each repetition of such a pooling input.
@Suite struct BenchmarkTests {
  @Test func inputCopiesCoverTwiceTheCacheBetweenTwoReadsOfOneCopy() {
    let cache = 32 << 20
    #expect(Benchmark.inputCopies(bytes: 1 << 20, cache: cache) == 1)
    #expect(Benchmark.inputCopies(bytes: cache, cache: cache) == 1)
    #expect(Benchmark.inputCopies(bytes: 100 << 20, cache: nil) == 1)
    #expect(Benchmark.inputCopies(bytes: 102_760_448, cache: cache) == 2)  // [256,2048,7,7] float32
    #expect(Benchmark.inputCopies(bytes: 51_380_224, cache: cache) == 3)  // in float16
    for bytes in stride(from: cache + 1, through: 8 * cache, by: 3_333_333) {
      let copies = Benchmark.inputCopies(bytes: bytes, cache: cache)
      #expect((copies - 1) * bytes >= 2 * cache && (copies - 2) * bytes < 2 * cache, "\(bytes) bytes: \(copies) copies")
    }
  }

  @Test func aRunReportsTheCopiesItTook() throws {
    let backend = TestBackends.cpu.backend
    for (operation, shape) in [(BenchmarkCase.Operation.pool(.max), [2, 8, 3, 3]), (.head(fused: true), [2, 8, 3, 3]), (.dense, [2, 8, 3])] {
      let result = try Benchmark.run(BenchmarkCase(operation, shape, classes: 4), on: backend, minimumRepetitions: 2, minimumSeconds: 0)
      #expect(result.input_copies == 1, "\(operation.name) \(shape)")
      #expect(result.read_median_s == nil && result.pct_read == nil, "\(operation.name) \(shape): no read beside a cached input")
    }
    // Larger than the cache where it is known (a machine with a larger one holds a single copy).
    let shape = [9, 1024, 32, 32]
    let result = try Benchmark.run(BenchmarkCase(.pool(.average), shape), on: backend, minimumRepetitions: 3, minimumSeconds: 0)
    let expected = Benchmark.inputCopies(bytes: shape.reduce(4, *), cache: Benchmark.lastLevelCacheBytes)
    #expect(result.input_copies == expected)
    if let cache = Benchmark.lastLevelCacheBytes, cache < shape.reduce(4, *) { #expect(expected > 1) }
    // Several copies: a read of the same bytes beside every repetition, and the case's share of it.
    if expected > 1, let read = result.read_median_s, let share = result.pct_read, let rate = result.read_gbps {
      #expect(read > 0 && abs(share - 100 * read / result.median_s) < 1e-9)
      #expect(abs(rate - Double(shape.reduce(4, *)) / read / 1e9) < 1e-9 * rate)
    } else {
      #expect(expected == 1 && result.read_median_s == nil, "\(expected) copies, read \(String(describing: result.read_median_s))")
    }
  }
}
