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

    // Each operation returns its output's bit patterns, so results compare exactly (NaN included).
    let operations: [@Sendable () throws -> [UInt32]] = [
      { try backend.globalAveragePool(x, layout: .channelsFirst, keepDims: false).scalars.map(\.bitPattern) },
      {
        let r = try backend.globalMaxPool(xLast, layout: .channelsLast, keepDims: false, returnIndices: true)
        return r.values.scalars.map(\.bitPattern) + r.indices!.map { UInt32(truncatingIfNeeded: $0) }
      },
      { try backend.head(x, layout: .channelsFirst, weight: w, bias: b, weightLayout: .inOut, activation: .softmax).scalars.map(\.bitPattern) },
      { try backend.globalAveragePoolBackward(dz, inputShape: x.shape, layout: .channelsFirst).scalars.map(\.bitPattern) },
    ]
    let expected = try operations.map { try $0() }
    let iterations = 250
    let failures = LockedCounter()
    DispatchQueue.concurrentPerform(iterations: 8) { thread in
      for iteration in 0..<iterations {
        let which = (thread + iteration) % operations.count
        do {
          if try operations[which]() != expected[which] { failures.add("thread \(thread) op \(which): different result") }
        } catch {
          failures.add("thread \(thread) op \(which): \(error)")
        }
      }
    }
    #expect(failures.messages.isEmpty, "\(candidate.name): \(failures.messages.prefix(3)) (\(failures.messages.count) in \(8 * iterations) calls)")
  }
}

final class LockedCounter: @unchecked Sendable {
  private let lock = NSLock()
  private var stored: [String] = []
  func add(_ message: String) { lock.withLock { stored.append(message) } }
  var messages: [String] { lock.withLock { stored } }
}



