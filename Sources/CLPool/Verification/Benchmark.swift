import CLPoolCPU
import Foundation

/// One benchmark case: an operation on one input shape.
public struct BenchmarkCase: Sendable, Equatable {
  public enum Operation: Equatable, Hashable, Sendable, CaseIterable {
    case pool(PoolOperation)
    case dense
    /// The fused head; unfused, the same head as two calls, globalAveragePool then dense, the
    /// [N, C] rows returned to the host between them: what the fused head saves.
    case head(fused: Bool)

    public static let allCases: [Operation] = [.pool(.average), .pool(.max), .dense, .head(fused: true), .head(fused: false)]

    /// "avg", "max", "dense", "head", "head-unfused".
    public var name: String {
      switch self {
      case .pool(let operation): return operation.rawValue
      case .dense: return "dense"
      case .head(let fused): return fused ? "head" : "head-unfused"
      }
    }

    public init?(name: String) {
      guard let operation = Self.allCases.first(where: { $0.name == name }) else { return nil }
      self = operation
    }

    var isHead: Bool { if case .head = self { return true } else { return false } }
  }

  public let operation: Operation
  /// Pooling and head: the input shape in `layout`. Dense: [M, K, N] (x [M, K], weight [K, N]).
  public let shape: [Int]
  public let layout: Layout
  /// The head's output width.
  public let classes: Int
  /// The storage type of inputs and outputs.
  public let scalarType: ScalarType

  public init(
    _ operation: Operation, _ shape: [Int], layout: Layout = .channelsFirst, classes: Int = 1000,
    scalarType: ScalarType = .float32
  ) {
    self.operation = operation
    self.shape = shape
    self.layout = layout
    self.classes = classes
    self.scalarType = scalarType
  }

  /// The default suite: pooling on the ResNet/VGG-style shapes in both layouts, dense from batch-1
  /// GEMV to a square GEMM, and the ResNet-50 head at batch 1 and 256, fused and unfused.
  public static let defaultSuite: [BenchmarkCase] = {
    let poolShapes = [[256, 2048, 7, 7], [64, 64, 7, 7], [32, 512, 14, 14], [8, 256, 56, 56], [2, 64, 224, 224]]
    var cases: [BenchmarkCase] = []
    for operation in [Operation.pool(.average), .pool(.max)] {
      for shape in poolShapes {
        cases.append(BenchmarkCase(operation, shape))
        cases.append(BenchmarkCase(operation, [shape[0]] + shape[2...] + [shape[1]], layout: .channelsLast))
      }
    }
    for shape in [[256, 2048, 1000], [1, 2048, 1000], [64, 64, 1], [1024, 1024, 1024]] {
      cases.append(BenchmarkCase(.dense, shape))
    }
    for batch in [1, 256] {
      cases.append(BenchmarkCase(.head(fused: true), [batch, 2048, 7, 7]))
      cases.append(BenchmarkCase(.head(fused: false), [batch, 2048, 7, 7]))
    }
    return cases
  }()

  /// "256x2048x7x7" → [256, 2048, 7, 7]; dense takes exactly three sizes, pooling 3 to 5.
  public static func parseShape(_ text: String, for operation: Operation) throws -> [Int] {
    let parts = text.lowercased().split(separator: "x", omittingEmptySubsequences: false)
    let sizes = parts.compactMap { Int($0) }
    let ranks = operation == .dense ? 3...3 : 3...5
    // A benchmark allocates its inputs on the host: refuse what cannot fit (2^31 floats = 8 GiB).
    let elements = operation == .dense
      ? sizes.count == 3 ? sizes[0].multipliedReportingOverflow(by: sizes[1]).partialValue + sizes[1].multipliedReportingOverflow(by: sizes[2]).partialValue : 0
      : sizes.reduce(1) { $0.multipliedReportingOverflow(by: $1).overflow ? Int.max : $0 * $1 }
    guard elements <= 1 << 31, sizes.allSatisfy({ $0 <= 1 << 31 }) else {
      throw CLPoolError.sizeLimit("--shape \(text) needs more than 2^31 elements (8 GiB); the benchmark holds its inputs in host memory")
    }
    guard sizes.count == parts.count, ranks.contains(sizes.count), sizes.allSatisfy({ $0 > 0 }) else {
      let form = operation == .dense ? "MxKxN, e.g. 256x2048x1000" : "3 to 5 positive sizes, e.g. 256x2048x7x7"
      throw CLPoolError.invalidArgument("--shape \(text) is not valid for \(operation.name): expected \(form)")
    }
    return sizes
  }
}

/// The timing of one case on one backend, in the form `clpool bench --json` prints.
public struct BenchmarkResult: Encodable, Sendable {
  public let op: String
  public let shape: [Int]
  public let layout: String?
  /// Head only: the output width.
  public let classes: Int?
  /// The storage type (float16, float32, float64).
  public let dtype: String
  public let backend: String
  public let device: String
  public let median_s: Double
  public let min_s: Double
  /// OpenCL only: device time of the kernels (profiling events), transfers excluded.
  public let kernel_median_s: Double?
  public let bytes: Double
  public let flops: Double?
  /// Bytes (input read + output written) per end-to-end median second.
  public let gbps: Double
  public let gflops: Double?
  public let repetitions: Int
  /// Pooling and head: the copies of the input the repetitions took in turn (`Benchmark.inputCopies`).
  public let input_copies: Int
  /// Pooling with more than one copy (an input larger than the last-level cache): the median of
  /// plain reads of the next copy on every core, one after each repetition (`clpool_read_bytes`),
  /// the read ceiling measured next to the case.
  public let read_median_s: Double?
  /// The input's bytes per `read_median_s` second.
  public let read_gbps: Double?
  /// 100 × `read_median_s` / `median_s`: the case's share of the read beside it.
  public let pct_read: Double?
}

public enum Benchmark {
  /// Times `testCase` on `backend`: one warm-up call (first-launch compilation is excluded), then
  /// repetitions until both `minimumRepetitions` and `minimumSeconds` are reached (at most 1000).
  /// A pooling or head input larger than the last-level cache is held in `inputCopies` copies,
  /// taken in turn, so that each call reads its input from memory as it would a fresh batch; for
  /// such a pooling input each repetition is followed by a plain read of the next copy, so that
  /// the case's share of the read ceiling is measured under the same bandwidth (which moves
  /// between 30 and 80 GB/s from minute to minute on a shared machine).
  public static func run(
    _ testCase: BenchmarkCase, on backend: any Backend, minimumRepetitions: Int = 5,
    minimumSeconds: Double = 0.5
  ) throws -> BenchmarkResult {
    try backend.checkSupport(testCase.scalarType)
    guard (1...maximumRepetitions).contains(minimumRepetitions) else {
      throw CLPoolError.invalidArgument("repetitions must be from 1 to \(maximumRepetitions), got \(minimumRepetitions)")
    }
    let (call, bytes, flops, copies, read) = try prepare(testCase, testCase.scalarType.staticType, on: backend)
    _ = try call()  // warm-up
    var times: [Double] = []
    var kernelTimes: [Double] = []
    var readTimes: [Double] = []
    let start = DispatchTime.now().uptimeNanoseconds
    while times.count < minimumRepetitions
      || (Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9 < minimumSeconds && times.count < 1000)
    {
      let before = DispatchTime.now().uptimeNanoseconds
      let kernel = try call()
      times.append(Double(DispatchTime.now().uptimeNanoseconds - before) * 1e-9)
      if let kernel { kernelTimes.append(kernel) }
      if let read {
        let readStart = DispatchTime.now().uptimeNanoseconds
        read.next()
        readTimes.append(Double(DispatchTime.now().uptimeNanoseconds - readStart) * 1e-9)
      }
    }
    let median = Self.median(times)
    let readMedian = readTimes.isEmpty ? nil : Self.median(readTimes)
    return BenchmarkResult(
      op: testCase.operation.name, shape: testCase.shape,
      layout: testCase.operation == .dense ? nil : testCase.layout.rawValue,
      classes: testCase.operation.isHead ? testCase.classes : nil, dtype: testCase.scalarType.rawValue,
      backend: backend.kind.rawValue,
      device: backend.deviceName, median_s: median, min_s: times.min()!,
      kernel_median_s: kernelTimes.isEmpty ? nil : Self.median(kernelTimes), bytes: bytes, flops: flops,
      gbps: bytes / median / 1e9, gflops: flops.map { $0 / median / 1e9 }, repetitions: times.count,
      input_copies: copies, read_median_s: readMedian, read_gbps: readMedian.map { Double(read!.bytes) / $0 / 1e9 },
      pct_read: readMedian.map { 100 * $0 / median })
  }

  /// The largest cache of CPU 0 in bytes (Linux sysfs), or nil where the system does not say.
  public static let lastLevelCacheBytes: Int? = {
    let directory = "/sys/devices/system/cpu/cpu0/cache"
    let entries = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
    let sizes = entries.filter { $0.hasPrefix("index") }.compactMap { entry -> Int? in
      guard let text = try? String(contentsOfFile: "\(directory)/\(entry)/size", encoding: .utf8) else { return nil }
      let size = text.trimmingCharacters(in: .whitespacesAndNewlines)
      let scale = ["K": 1 << 10, "M": 1 << 20, "G": 1 << 30][String(size.suffix(1))]
      guard let count = Int(scale == nil ? size : String(size.dropLast())) else { return nil }
      return count * (scale ?? 1)
    }
    return sizes.max()
  }()

  /// How many copies of an input of `bytes` the repetitions take in turn: one where it fits in a
  /// `cache`-byte last-level cache (or the cache is unknown), else enough that the other copies
  /// read between two reads of one copy add up to twice the cache, which leaves little of it there.
  public static func inputCopies(bytes: Int, cache: Int?) -> Int {
    guard let cache, cache > 0, bytes > cache else { return 1 }
    return 1 + (2 * cache + bytes - 1) / bytes
  }

  /// The most repetitions a case may ask for (each keeps its time).
  public static let maximumRepetitions = 100_000

  /// Reads every byte of `x` on every core: four contiguous ranges per core of the 128-byte
  /// blocks `clpool_read_bytes` takes, run as the kernels' tasks are (`parallelFor`), whatever
  /// the batch.
  static func readAll<S: StorageScalar>(_ x: TypedTensor<S>) {
    x.scalars.withUnsafeBytes { raw in
      let blocks = raw.count / 128
      let tasks = min(blocks, 4 * CPUInfo.activeCores)
      parallelFor(tasks, grain: 1) { range in
        let (begin, end) = (blocks * range.lowerBound / tasks, blocks * range.upperBound / tasks)
        _ = clpool_read_bytes(raw.baseAddress! + begin * 128, (end - begin) * 128)
      }
    }
  }

  /// The case's inputs in storage type S, and the call to time (returning the OpenCL kernels'
  /// device seconds, all of its library calls together) with the bytes it moves and the
  /// floating-point operations it does; for a pooling input in several copies, the read of the
  /// next copy and its bytes.
  private static func prepare<S: StorageScalar>(_ testCase: BenchmarkCase, _: S.Type, on backend: any Backend) throws
    -> (call: () throws -> Double?, bytes: Double, flops: Double?, copies: Int, read: (next: () -> Void, bytes: Int)?)
  {
    var random = SplitMix64(seed: 0x5EED)
    func uniform(_ shape: [Int], in range: Range<Float>) throws -> TypedTensor<S> {
      try HostMemory.check(elements: try Tensor.elementCount(of: shape), 1, width: 4, what: "benchmark input")
      return TypedTensor(converting: try TestData.uniform(shape, in: range, random: &random))
    }
    let width = Double(S.scalarType.byteWidth)
    var copies = 1
    /// The pooling or head input's copies, and the call that takes the next one.
    func rotatingInputs() throws -> () -> TypedTensor<S> {
      let elements = try Tensor.elementCount(of: testCase.shape)
      copies = inputCopies(bytes: elements * S.scalarType.byteWidth, cache: lastLevelCacheBytes)
      try HostMemory.check(elements: elements, copies, width: S.scalarType.byteWidth, what: "benchmark input copies")
      let inputs = try (0..<copies).map { _ in try uniform(testCase.shape, in: -1..<3) }
      var next = 0
      return {
        defer { next = (next + 1) % inputs.count }
        return inputs[next]
      }
    }
    let call: () throws -> Double?
    let bytes: Double
    var flops: Double?
    var read: (next: () -> Void, bytes: Int)?
    switch testCase.operation {
    case .pool(let operation):
      let geometry = try PoolGeometry(shape: testCase.shape, layout: testCase.layout)
      let input = try rotatingInputs()
      bytes = Double(geometry.planes * geometry.spatialSize + geometry.planes) * width
      if copies > 1 {
        read = ({ readAll(input()) }, geometry.planes * geometry.spatialSize * S.scalarType.byteWidth)
      }
      call = {
        let x = input()
        return try KernelTimer.measure {
          _ = try operation == .average
            ? backend.globalAveragePool(x, layout: testCase.layout)
            : backend.globalMaxPool(x, layout: testCase.layout)
        }.1
      }
    case .dense:
      let (m, k, n) = (testCase.shape[0], testCase.shape[1], testCase.shape[2])
      let x = try uniform([m, k], in: -1..<1)
      let w = try uniform([k, n], in: -1..<1)
      let b = try uniform([n], in: -1..<1)
      bytes = Double(m * k + k * n + n + m * n) * width
      flops = 2 * Double(m) * Double(k) * Double(n)
      call = { try KernelTimer.measure { _ = try backend.dense(x, weight: w, bias: b) }.1 }
    case .head(let fused):
      let geometry = try PoolGeometry(shape: testCase.shape, layout: testCase.layout)
      let input = try rotatingInputs()
      let w = try uniform([geometry.channels, testCase.classes], in: -0.02..<0.02)
      let b = try uniform([testCase.classes], in: -0.1..<0.1)
      let elements = geometry.planes * geometry.spatialSize
      bytes = Double(elements + w.count + b.count + geometry.batch * testCase.classes) * width
      flops = 2 * Double(geometry.batch) * Double(geometry.channels) * Double(testCase.classes) + Double(elements)
      call = {
        let x = input()
        return try KernelTimer.measure {
          if fused {
            _ = try backend.head(x, layout: testCase.layout, weight: w, bias: b, activation: .softmax)
          } else {
            let pooled = try backend.globalAveragePool(x, layout: testCase.layout)
            _ = try backend.dense(pooled, weight: w, bias: b, activation: .softmax)
          }
        }.1
      }
    }
    return (call, bytes, flops, copies, read)
  }

  static func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    return sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
  }
}
