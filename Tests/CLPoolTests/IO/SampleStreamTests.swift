import CLPool
import Foundation
import TestSupport
import Testing

/// A stream whose consumer or whose helper's read fails mid-way stops with that error, on the
/// mapped and on the converted read path, however far its helper got, and leaves no chunk mapped;
/// nothing traps (the helper's semaphores and thread are torn down in order, which a full disk
/// under `clpool pool` once turned into a crash).
@Suite struct SampleStreamTests {
  struct Stop: Error {}

  @Test(arguments: ["<f4", "<f8"])
  func aConsumerThatThrowsStopsTheStream(_ descr: String) throws {
    let samples = 12, sampleElements = 6
    let values = (0..<(samples * sampleElements)).map { Float($0) }
    let payload = descr == "<f4" ? NPYBytes.float32(values) : NPYBytes.float64(values.map(Double.init))
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("clpool-stream-\(getpid())-\(descr.utf8.last!).npy").path
    try NPYBytes.file(descr: descr, shape: [samples, 2, 3], payload: payload).write(to: URL(fileURLWithPath: path))
    defer { try? FileManager.default.removeItem(atPath: path) }
    let stream = try SampleStream(path: path, type: .float32, chunkBytes: sampleElements * 4)
    for failing in [0, 1, 5, samples - 1] {
      for _ in 0..<10 {
        var seen: [Int] = []
        #expect(throws: Stop.self) {
          try stream.forEachChunk { first, count, elements in
            #expect(count == 1 && Array(elements.bindMemory(to: Float.self)) == Array(values[(first * 6)..<(first * 6 + 6)]))
            seen.append(first)
            if first == failing { throw Stop() }
          }
        }
        #expect(seen == Array(0...failing))
        #expect(try Self.mappings(of: path) == 0, "a mapping left after a stop at \(failing)")
      }
    }
    // And it still streams whole afterwards.
    var total = 0
    try stream.forEachChunk { _, count, _ in total += count }
    #expect(total == samples)
  }

  /// A file cut short after the stream opened it fails the helper's read of the chunk past the
  /// cut: the stream delivers the chunks before it, then throws that error, whichever chunk it was
  /// (the helper then holds the chunks the caller handed back, released as the stream stops).
  @Test func aReadThatFailsStopsTheStream() throws {
    let samples = 12, sampleElements = 6
    let values = (0..<(samples * sampleElements)).map { Double($0) }
    let file = NPYBytes.file(descr: "<f8", shape: [samples, 2, 3], payload: NPYBytes.float64(values))
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("clpool-cut-\(getpid()).npy").path
    defer { try? FileManager.default.removeItem(atPath: path) }
    for kept in [0, 1, 2, 7, samples - 1] {
      try file.write(to: URL(fileURLWithPath: path))
      let stream = try SampleStream(path: path, type: .float32, chunkBytes: sampleElements * 4)
      let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
      try handle.truncate(atOffset: UInt64(file.count - (samples - kept) * sampleElements * 8))
      try handle.close()
      var seen: [Int] = []
      #expect(throws: CLPoolError.self) {
        try stream.forEachChunk { first, _, elements in
          #expect(Array(elements.bindMemory(to: Float.self)) == values[(first * 6)..<(first * 6 + 6)].map(Float.init))
          seen.append(first)
        }
      }
      #expect(seen == Array(0..<kept), "a file cut after \(kept) samples")
    }
  }
}

extension SampleStreamTests {
  /// A mapped stream leaves no mapping behind and holds at most two chunks at a time (the one
  /// computed on and the one being prepared): each chunk's window (aligned to 2 MiB, with address
  /// space reserved around it) is unmapped whole, so after 3000 one-sample chunks no mapping of the
  /// file is left, and the reservations are gone too: the process's address space (VmSize) has not
  /// grown by them (2 MiB each, 6 GB in all).
  @Test func mappedChunksLeaveNoMappingsBehind() throws {
    guard let before = Self.addressSpaceBytes() else {
      print("note: address-space test skipped: no /proc/self/status")
      return
    }
    let samples = 3000, sampleElements = 5
    let values = (0..<(samples * sampleElements)).map { Float($0 % 1000) }
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("clpool-maps-\(getpid()).npy").path
    try NPYBytes.file(descr: "<f4", shape: [samples, sampleElements], payload: NPYBytes.float32(values)).write(to: URL(fileURLWithPath: path))
    defer { try? FileManager.default.removeItem(atPath: path) }
    let stream = try SampleStream(path: path, type: .float32, chunkBytes: sampleElements * 4)
    var mismatches = 0, mostMapped = 0
    try stream.forEachChunk { first, count, elements in
      if Array(elements.bindMemory(to: Float.self)) != Array(values[(first * sampleElements)..<((first + count) * sampleElements)]) { mismatches += 1 }
      if first % 50 == 0 { mostMapped = max(mostMapped, try Self.mappings(of: path)) }
    }
    #expect(mismatches == 0)
    #expect(mostMapped >= 1 && mostMapped <= 2, "\(mostMapped) mappings of the file at once")
    #expect(try Self.mappings(of: path) == 0)
    let after = try #require(Self.addressSpaceBytes())
    // Parallel tests start threads (8 MiB of stack each) meanwhile: a margin of 64 of them (CI saw
    // 303 MiB of growth with 149 tests); the leak this catches grew 2 MiB a chunk, 6 GB here.
    #expect(after < before + (512 << 20), "address space \(before >> 20) MiB before the stream, \(after >> 20) MiB after")
  }

  /// Lines of /proc/self/maps that map `path`. Read to its end through a file handle:
  /// String(contentsOfFile:) stops after the first few kilobytes of a /proc file (its size reads
  /// as 0), and with the threads of parallel tests the file's mapping can lie beyond them.
  static func mappings(of path: String) throws -> Int {
    let maps = String(decoding: try FileHandle(forReadingFrom: URL(fileURLWithPath: "/proc/self/maps")).readToEnd() ?? Data(), as: UTF8.self)
    return maps.split(separator: "\n").filter { $0.hasSuffix(path) }.count
  }

  /// VmSize from /proc/self/status, in bytes.
  static func addressSpaceBytes() -> Int? {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
      let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmSize:") }),
      let kilobytes = Int(line.split(separator: " ").dropFirst().first ?? "")
    else { return nil }
    return kilobytes << 10
  }
}
