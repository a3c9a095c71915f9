import CLPool
import Foundation
import TestSupport
import Testing

/// `NPY.Writer`'s payload written around the page cache (`CLPOOL_DIRECT_IO`) is byte for byte the
/// file the page cache path writes, whatever the sizes of the appends and however they fall
/// across the 4096-byte blocks.
@Suite struct DirectWritesTests {
  /// Appends of 1 element, of just under and over a block, one of several MiB, and odd ones.
  static let appendSizes = [1, 1023, 1025, 3, 1_310_721, 4096, 7, 262_143, 5]

  /// The file `NPY.Writer` writes in `folder` with `mode`: float32 appends of `appendSizes`, or
  /// their int64 counterpart.
  static func written(_ folder: URL, _ mode: String, indices: Bool) throws -> Data {
    let count = appendSizes.reduce(0, +)
    let url = folder.appendingPathComponent("\(mode)-\(indices).npy")
    let writer = try NPY.Writer(path: url.path, shape: [count], indices: indices, environment: ["CLPOOL_DIRECT_IO": mode])
    var first = 0
    var random = SplitMix64(seed: TestEnvironment.seed ^ 0xD1EC7)
    for size in appendSizes {
      if indices {
        let values = (0..<size).map { Int64(first + $0) * 3 - 5 }
        try values.withUnsafeBufferPointer { try writer.append(indices: $0) }
      } else {
        let values = (0..<size).map { _ in Float(bitPattern: UInt32(truncatingIfNeeded: random.next())) }
        try values.withUnsafeBytes { try writer.append($0, count: size, type: .float32) }
      }
      first += size
    }
    try writer.commit()
    return try Data(contentsOf: url)
  }

  @Test func directAndCachedWritesGiveTheSameFile() throws {
    // /tmp and /dev/shm: a disk file system, and tmpfs (which takes O_DIRECT from Linux 6.6 and
    // refuses it before: then the writer falls back to the page cache on its own).
    for root in [FileManager.default.temporaryDirectory, URL(fileURLWithPath: "/dev/shm")]
    where FileManager.default.isWritableFile(atPath: root.path) {
      let folder = root.appendingPathComponent("direct-\(UUID())")
      try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
      defer { try? FileManager.default.removeItem(at: folder) }
      for indices in [false, true] {
        let cached = try Self.written(folder, "off", indices: indices)
        let direct = try Self.written(folder, "on", indices: indices)
        #expect(cached.count == 128 + Self.appendSizes.reduce(0, +) * (indices ? 8 : 4), "\(root.path): file size")
        #expect(direct == cached, "\(root.path) indices \(indices): direct and cached files differ")
      }
      let leftovers = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.hasSuffix(".tmp") }
      #expect(leftovers.isEmpty, "\(root.path): temporary files left")
    }
  }

  @Test func aWriterDroppedBeforeCommitLeavesNothing() throws {
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("direct-\(UUID())")
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: folder) }
    do {
      let writer = try NPY.Writer(path: folder.appendingPathComponent("x.npy").path, shape: [5000], environment: ["CLPOOL_DIRECT_IO": "on"])
      try [Float](repeating: 1, count: 3000).withUnsafeBytes { try writer.append($0, count: 3000, type: .float32) }
      #expect(throws: CLPoolError.self) { try writer.commit() }
    }
    #expect(try FileManager.default.contentsOfDirectory(atPath: folder.path).isEmpty)
  }

  @Test func anUnknownModeIsAClearError() throws {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("direct-\(UUID()).npy").path
    #expect {
      _ = try NPY.Writer(path: path, shape: [4], environment: ["CLPOOL_DIRECT_IO": "yes"])
    } throws: { error in
      "\(error)".contains("CLPOOL_DIRECT_IO=yes: expected auto, on or off")
    }
    #expect(!FileManager.default.fileExists(atPath: path))
  }
}
