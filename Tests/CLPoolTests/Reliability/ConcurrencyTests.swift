import CLPool
import Foundation
import Testing

/// One backend shared by 8 threads running mixed operations gives bitwise the results of a
/// single-threaded run.
@Suite struct ConcurrencyTests {
  @Test(arguments: TestBackends.all)
  func sharedBackendUnderEightThreads(_ candidate: BackendUnderTest) throws {
    let backend = candidate.backend
    var random = SplitMix64(seed: TestBackends.seed)
    let x = try TestData.uniform([3, 16, 7, 7], in: -1..<3, random: &random)
    let xLast = try TestData.poolInput([2, 24, 5, 3], layout: .channelsLast, special: .forMax, random: &random)
    let w = try TestData.uniform([16, 10], in: -1..<1, random: &random)
    let b = try TestData.uniform([10], in: -1..<1, random: &random)
    let dz = try TestData.uniform([3, 16], in: -1..<1, random: &random)
    let halves = TypedTensor<Float16>(converting: xLast)
    let ragged = try RaggedBatch(samples: [try TestData.uniform([16, 3, 4], in: -1..<3, random: &random), try TestData.uniform([16, 9], in: -1..<3, random: &random)])
    let wide = TypedTensor<Double>(converting: x)
    let hasFloat64 = (try? backend.checkSupport(.float64)) != nil

    // Each operation returns its output's bit patterns, so results compare exactly (NaN included).
    let operations: [@Sendable () throws -> [UInt32]] = [
      { try backend.globalAveragePool(x, layout: .channelsFirst, keepDims: false).scalars.map(\.bitPattern) },
      {
        let r = try backend.globalMaxPool(xLast, layout: .channelsLast, keepDims: false, returnIndices: true)
        return r.values.scalars.map(\.bitPattern) + r.indices!.map { UInt32(truncatingIfNeeded: $0) }
      },
      { try backend.head(x, layout: .channelsFirst, weight: w, bias: b, weightLayout: .inOut, activation: .softmax).scalars.map(\.bitPattern) },
      { try backend.globalAveragePoolBackward(dz, inputShape: x.shape, layout: .channelsFirst).scalars.map(\.bitPattern) },
      { try backend.globalAveragePool(halves, layout: .channelsLast, keepDims: false).scalars.map { UInt32($0.bitPattern) } },
      {
        let r = try backend.globalMaxPool(ragged, returnIndices: true)
        return r.values.scalars.map(\.bitPattern) + r.indices!.map { UInt32(truncatingIfNeeded: $0) }
      },
      {
        guard hasFloat64 else { return [] }
        return try backend.head(wide, layout: .channelsFirst, weight: TypedTensor(converting: w), bias: nil, weightLayout: .inOut, activation: .relu)
          .scalars.flatMap { [UInt32(truncatingIfNeeded: $0.bitPattern), UInt32(truncatingIfNeeded: $0.bitPattern >> 32)] }
      },
    ]
    let failures = try Self.mismatches(operations, threads: 8, iterations: 250)
    #expect(failures.isEmpty, "\(candidate.name): \(failures.prefix(3)) (\(failures.count) in 2000 calls)")
  }

  /// Runs `operations` round-robin on `threads` threads, `iterations` calls each, and returns a
  /// message for every call whose result differs from that operation's result run alone.
  static func mismatches(_ operations: [@Sendable () throws -> [UInt32]], threads: Int, iterations: Int) throws -> [String] {
    let expected = try operations.map { try $0() }
    let failures = LockedCounter()
    DispatchQueue.concurrentPerform(iterations: threads) { thread in
      for iteration in 0..<iterations {
        let which = (thread + iteration) % operations.count
        do {
          if try operations[which]() != expected[which] { failures.add("thread \(thread) op \(which): different result") }
        } catch {
          failures.add("thread \(thread) op \(which): \(error)")
        }
      }
    }
    return failures.messages
  }
}

extension ConcurrencyTests {
  /// A fresh OpenCL backend whose float16 and float64 programs are first asked for by 8 threads
  /// at once: each is built once (under the backend's lock) and every thread gets the same result.
  @Test(.enabled(if: TestBackends.runOpenCL))
  func typedProgramsBuildOnceUnderContention() throws {
    let device = try #require(try OpenCLDevice.all().first)
    let backend = try OpenCLBackend(device: device, options: TestBackends.options)
    var random = SplitMix64(seed: TestBackends.seed)
    let x = try TestData.uniform([2, 9, 5, 5], in: -1..<3, random: &random)
    let types: [ScalarType] = device.supportsFP64 ? [.float16, .float64] : [.float16]
    let results = LockedResults()
    DispatchQueue.concurrentPerform(iterations: 8) { thread in
      do {
        switch types[thread % types.count] {
        case .float64:
          results.add("f64", try backend.globalAveragePool(TypedTensor<Double>(converting: x), layout: .channelsFirst).scalars.map(\.bitPattern))
        default:
          results.add("f16", try backend.globalAveragePool(TypedTensor<Float16>(converting: x), layout: .channelsFirst).scalars.map { UInt64($0.bitPattern) })
        }
      } catch {
        results.add("error", [UInt64(thread)])
        Issue.record("thread \(thread): \(error)")
      }
    }
    for (name, outputs) in results.byName {
      #expect(Set(outputs).count == 1, "\(name): \(Set(outputs).count) different results from \(outputs.count) threads")
    }
  }
}

final class LockedResults: @unchecked Sendable {
  private let lock = NSLock()
  private var stored: [String: [[UInt64]]] = [:]
  func add(_ name: String, _ bits: [UInt64]) { lock.withLock { stored[name, default: []].append(bits) } }
  var byName: [String: [[UInt64]]] { lock.withLock { stored } }
}

final class LockedCounter: @unchecked Sendable {
  private let lock = NSLock()
  private var stored: [String] = []
  func add(_ message: String) { lock.withLock { stored.append(message) } }
  var messages: [String] { lock.withLock { stored } }
}




extension ConcurrencyTests {
  /// The CPU backend's worker threads serve one job at a time, and a caller that finds them busy
  /// runs its tasks on its own thread: operations large enough to split into tasks, from 6 threads
  /// at once, give bitwise the results of each call alone.
  @Test func cpuWorkerThreadsUnderContention() throws {
    let backend = TestBackends.cpu.backend
    var random = SplitMix64(seed: TestBackends.seed)
    let x = try TestData.uniform([16, 512, 7, 7], in: -1..<3, random: &random)
    let xLast = try TestData.poolInput([8, 300, 9, 9], layout: .channelsLast, special: .forMax, random: &random)
    let w = try TestData.uniform([512, 333], in: -1..<1, random: &random)
    let row = try TestData.uniform([1, 512], in: -1..<1, random: &random)
    let rows = try TestData.uniform([130, 512], in: -1..<1, random: &random)
    let operations: [@Sendable () throws -> [UInt32]] = [
      { try backend.globalAveragePool(x, layout: .channelsFirst, keepDims: false).scalars.map(\.bitPattern) },
      {
        let r = try backend.globalMaxPool(xLast, layout: .channelsLast, keepDims: false, returnIndices: true)
        return r.values.scalars.map(\.bitPattern) + r.indices!.map { UInt32(truncatingIfNeeded: $0) }
      },
      { try backend.dense(row, weight: w, bias: nil).scalars.map(\.bitPattern) },
      { try backend.dense(rows, weight: w, bias: nil).scalars.map(\.bitPattern) },
      { try backend.head(x, layout: .channelsFirst, weight: w, bias: nil, weightLayout: .inOut, activation: .softmax).scalars.map(\.bitPattern) },
    ]
    let failures = try Self.mismatches(operations, threads: 6, iterations: 40)
    #expect(failures.isEmpty, "\(failures.prefix(3)) (\(failures.count) in 240 calls)")
  }
}
