import ArgumentParser
import CLPool
import Foundation

extension BenchmarkCase.Operation: ExpressibleByArgument {
  public init?(argument: String) { self.init(name: argument) }
  public static var allValueStrings: [String] { allCases.map(\.name) }
  public var defaultValueDescription: String { name }
}

struct BenchCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "bench",
    abstract: "Time operations on every selected backend (compilation excluded).",
    usage: "clpool bench [--op <op>] [--shape <shape>] [<options>]",
    discussion: """
      With no --op/--shape the default suite runs. Times are end to end (upload, kernels, \
      download) with medians and minima over repetitions after one warm-up call; OpenCL rows also \
      give the kernel-only median from profiling events. A pooling or head input larger than the \
      last-level cache is held in enough copies (COPIES), taken in turn, that each call reads it \
      from memory, as it would a fresh batch; for pooling, each repetition is then followed by a \
      plain read of the next copy on every core, and READ GB/s and %READ give that read's rate and \
      the case's share of it, the read ceiling measured next to the case. bench/compare puts these \
      next to numpy, OpenBLAS, CLBlast and the machine's memory bandwidth.

      Example: the ResNet-50 head on 256 samples, channels-last, on every backend:
        clpool bench --op head --shape 256x7x7x2048 --layout nhwc
      """)

  @Option(help: "avg, max, dense, head (with bias and softmax) or head-unfused (pool then dense, two calls) (default: the whole suite, or avg with --shape).")
  var op: BenchmarkCase.Operation?

  @Option(help: "Pooling/head input shape in --layout (256x2048x7x7); dense MxKxN (x [M,K], W [K,N]).")
  var shape: String?

  @Option(help: "The head's output width.")
  var classes = 1000

  @Option(help: LayoutArgument.help)
  var layout: LayoutArgument = .channelsFirst

  @Option(help: "Storage type: float16 (float32 arithmetic), float32 or float64.")
  var dtype: ScalarType = .float32

  @Option(help: "Minimum seconds of repetitions per case.")
  var minTime = 0.5

  @Option(help: "Minimum repetitions per case.")
  var repetitions = 5

  @OptionGroup var backendOptions: BackendOptionGroup

  @Flag(help: "Print one JSON document instead of the table.")
  var json = false

  func validate() throws {
    guard classes > 0 else { throw ValidationError("--classes must be positive") }
    guard minTime >= 0, minTime <= 3600 else { throw ValidationError("--min-time must be from 0 to 3600 seconds") }
    guard (1...Benchmark.maximumRepetitions).contains(repetitions) else {
      throw ValidationError("--repetitions must be from 1 to \(Benchmark.maximumRepetitions)")
    }
  }

  private func cases() throws -> [BenchmarkCase] {
    guard let shape else {
      return BenchmarkCase.defaultSuite.filter { op == nil || $0.operation == op }.map {
        BenchmarkCase($0.operation, $0.shape, layout: $0.layout, classes: $0.classes, scalarType: dtype)
      }
    }
    let operation = op ?? .pool(.average)
    return [
      BenchmarkCase(
        operation, try BenchmarkCase.parseShape(shape, for: operation), layout: layout.layout, classes: classes,
        scalarType: dtype)
    ]
  }

  func run() throws {
    let cases = try cases()
    let allBackends = try backendOptions.selection().makeAllBackends()
    var results: [BenchmarkResult] = []
    if !json {
      print(row(["OP", "SHAPE", "LAYOUT", "DTYPE", "BACKEND", "MEDIAN", "MIN", "KERNEL", "GB/s", "GFLOP/s", "REPS", "COPIES", "READ GB/s", "%READ"]))
    }
    // A storage type a device lacks (float64 without cl_khr_fp64) skips that backend, saying why.
    let backends = try allBackends.filter { backend in
      do {
        try backend.checkSupport(dtype)
        return true
      } catch let error as CLPoolError where !error.isUsageError {
        writeToStandardError("clpool: skipping \(backend.label) for --dtype \(dtype.rawValue): \(error)\n")
        return false
      }
    }
    for testCase in cases {
      for backend in backends {
        let result = try Benchmark.run(testCase, on: backend, minimumRepetitions: repetitions, minimumSeconds: minTime)
        results.append(result)
        if !json {
          print(row([
            result.op, Tensor.describe(result.shape), layoutColumn(result),
            result.dtype, result.backend, milliseconds(result.median_s), milliseconds(result.min_s),
            result.kernel_median_s.map(milliseconds) ?? "-", String(format: "%.1f", result.gbps),
            result.gflops.map { String(format: "%.1f", $0) } ?? "-", "\(result.repetitions)", "\(result.input_copies)",
            result.read_gbps.map { String(format: "%.1f", $0) } ?? "-", result.pct_read.map { String(format: "%.0f%%", $0) } ?? "-",
          ]))
          fflush(nil)
        }
      }
    }
    if json {
      try printJSON(BenchReport(devices: backends.map(\.label), last_level_cache_bytes: Benchmark.lastLevelCacheBytes, cases: results))
    } else {
      for backend in backends { print("backend \(backend.label)") }
    }
  }

  /// "nchw", "nhwc", "ncl", … for pooling and head; "-" for dense, which has no layout.
  private func layoutColumn(_ result: BenchmarkResult) -> String {
    guard let name = result.layout, let layout = Layout(name: name) else { return "-" }
    return layout.name(spatialRank: result.shape.count - 2)
  }

  private func milliseconds(_ seconds: Double) -> String { String(format: "%.3f ms", seconds * 1e3) }

  private func row(_ cells: [String]) -> String {
    let widths = [5, 18, 6, 7, 7, 11, 11, 11, 8, 8, 6, 6, 9, 5]
    return zip(cells, widths).map { cell, width in
      cell.count >= width ? cell : cell + String(repeating: " ", count: width - cell.count)
    }.joined(separator: " ")
  }
}

private struct BenchReport: Encodable {
  let devices: [String]
  /// What `Benchmark.inputCopies` went by.
  let last_level_cache_bytes: Int?
  let cases: [BenchmarkResult]
}
