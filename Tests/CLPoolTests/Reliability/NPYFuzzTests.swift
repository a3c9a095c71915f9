import CLPool
import Foundation
import TestSupport
import Testing

/// A bounded mutation fuzzer for the .npy reader (the library's only parser of untrusted bytes):
/// valid files of every supported kind, flipped, truncated, extended and with edited headers.
/// Every input must decode to a consistent tensor or fail with `invalidInput`; a trap would kill
/// the test process. `CLPOOL_FUZZ_ITERATIONS` runs longer (scripts/reliability does).
@Suite struct NPYFuzzTests {
  static let seeds: [Data] = [
    NPYBytes.file(descr: "<f4", shape: [2, 3], payload: NPYBytes.float32([1, 2, 3, 4, 5, 6])),
    NPYBytes.file(version: 2, descr: ">f8", shape: [3], payload: NPYBytes.float64([1, -1, 0.5], bigEndian: true)),
    NPYBytes.file(version: 3, descr: "<f2", fortran: true, shape: [2, 2], payload: [0, 0x3C, 0, 0x40, 0, 0x42, 0, 0x44]),
    NPYBytes.file(descr: "<f4", shape: [], payload: NPYBytes.float32([7])),
    NPYBytes.file(descr: "<f4", shape: [0, 5], payload: []),
  ]

  @Test func mutatedFilesNeverCrashTheReader() throws {
    let iterations = ProcessInfo.processInfo.environment["CLPOOL_FUZZ_ITERATIONS"].flatMap(Int.init) ?? 100_000
    var random = SplitMix64(seed: TestBackends.seed)
    var decoded = 0, rejected = 0
    for iteration in 0..<iterations {
      var bytes = [UInt8](Self.seeds[iteration % Self.seeds.count])
      for _ in 0..<(1 + Int(random.next() % 4)) {
        switch random.next() % 6 {
        case 0:  // flip a byte
          let i = Int(random.next() % UInt64(max(bytes.count, 1)))
          if i < bytes.count { bytes[i] ^= UInt8(truncatingIfNeeded: random.next() | 1) }
        case 1:  // truncate
          bytes = Array(bytes.prefix(Int(random.next() % UInt64(bytes.count + 1))))
        case 2:  // extend with junk
          bytes += (0..<Int(random.next() % 16)).map { _ in UInt8(truncatingIfNeeded: random.next()) }
        case 3:  // rewrite a digit of the header (shapes, lengths)
          if let i = bytes.indices.filter({ (48...57).contains(bytes[$0]) }).randomElement(using: &random) {
            bytes[i] = UInt8(48 + random.next() % 10)
          }
        case 4:  // insert a header-significant character
          let i = Int(random.next() % UInt64(bytes.count + 1))
          let significant = Array("(),:'{} 9T".utf8)
          bytes.insert(significant[Int(random.next() % UInt64(significant.count))], at: i)
        default:  // corrupt the header length field
          if bytes.count > 9 { bytes[8] = UInt8(truncatingIfNeeded: random.next()) }
        }
      }
      do {
        let tensor = try NPY.decodeTensor(Data(bytes), name: "fuzz.npy")
        #expect(tensor.count == (try Tensor.elementCount(of: tensor.shape)))
        decoded += 1
      } catch let error as CLPoolError {
        guard case .invalidInput(let message) = error, message.hasPrefix("fuzz.npy: "), !message.contains("\n") else {
          Issue.record("unexpected error for input \(bytes.prefix(80)): \(error)")
          return
        }
        rejected += 1
      }
    }
    print("note: npy fuzzing ran \(iterations) inputs: \(decoded) decoded, \(rejected) rejected cleanly")
    #expect(decoded + rejected == iterations)
  }
}
