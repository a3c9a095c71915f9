@testable import CLPool
import Foundation
import TestSupport
import Testing

/// `NPY.Writer`'s payload written around the page cache (`CLPOOL_DIRECT_IO`) is byte for byte the
/// file the page cache path writes, whatever the sizes of the appends, however they fall across
/// the 4096-byte blocks, and when the file system refuses direct writes part way.
@Suite struct DirectWritesTests {
  /// Appends of 1 element, of just under and over a block, one of several MiB, and odd ones.
  static let awkwardSizes = [1, 1023, 1025, 3, 1_310_721, 4096, 7, 262_143, 5]
  /// With the 128-byte header: exactly 3 blocks; and a file smaller than one block.
  static let wholeBlocks = [992, 1024, 1024], smallerThanABlock = [10, 20]

  static func folder(in root: URL = FileManager.default.temporaryDirectory) throws -> URL {
    let folder = root.appendingPathComponent("direct-\(UUID())")
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    return folder
  }

  /// The file `NPY.Writer` writes at `url` under `mode`, float32 (or int64) appends of `sizes`,
  /// and the bytes it wrote around the page cache; `refusing` makes the file system refuse
  /// direct writes past that many bytes.
  static func written(_ url: URL, _ mode: String, _ sizes: [Int], indices: Bool = false, refusing: Int? = nil) throws
    -> (bytes: Data, direct: Int)
  {
    let writer = try NPY.Writer(path: url.path, shape: [sizes.reduce(0, +)], indices: indices, environment: ["CLPOOL_DIRECT_IO": mode])
    if let refusing { writer.direct?.refusesAfterBytes = refusing }
    var first = 0
    var random = SplitMix64(seed: TestEnvironment.seed ^ 0xD1EC7)
    for size in sizes {
      if indices {
        try (0..<size).map { Int64(first + $0) * 3 - 5 }.withUnsafeBufferPointer { try writer.append(indices: $0) }
      } else {
        let values = (0..<size).map { _ in Float(bitPattern: UInt32(truncatingIfNeeded: random.next())) }
        try values.withUnsafeBytes { try writer.append($0, count: size, type: .float32) }
      }
      first += size
    }
    try writer.commit()
    return (try Data(contentsOf: url), writer.directlyWrittenBytes)
  }

  /// Direct writes must engage on /tmp in CI (a disk file system); elsewhere a file system
  /// without them is reported, and the bytes are still compared.
  static func expectDirect(_ direct: Int, _ root: URL, _ label: String) {
    if direct > 0 { return }
    if TestEnvironment.isCI && root == FileManager.default.temporaryDirectory {
      Issue.record("\(label): no direct writes on \(root.path) in CI")
    } else {
      print("DirectWritesTests: \(root.path) takes no direct writes (\(label)); compared through the page cache only")
    }
  }

  @Test func directAndCachedWritesGiveTheSameFile() throws {
    // /tmp and /dev/shm: a disk file system, and tmpfs (which takes O_DIRECT from Linux 6.6 and
    // refuses it before: then the writer falls back to the page cache on its own).
    for root in [FileManager.default.temporaryDirectory, URL(fileURLWithPath: "/dev/shm")]
    where FileManager.default.isWritableFile(atPath: root.path) {
      let folder = try Self.folder(in: root)
      defer { try? FileManager.default.removeItem(at: folder) }
      for (name, sizes) in [("awkward", Self.awkwardSizes), ("whole blocks", Self.wholeBlocks), ("small", Self.smallerThanABlock)] {
        for indices in [false, true] {
          let label = "\(root.path) \(name) indices \(indices)"
          let cached = try Self.written(folder.appendingPathComponent("cached.npy"), "off", sizes, indices: indices)
          let direct = try Self.written(folder.appendingPathComponent("direct.npy"), "on", sizes, indices: indices)
          #expect(cached.direct == 0, "\(label): off wrote directly")
          #expect(cached.bytes.count == 128 + sizes.reduce(0, +) * (indices ? 8 : 4), "\(label): file size")
          #expect(direct.bytes == cached.bytes, "\(label): direct and cached files differ")
          if name != "small" { Self.expectDirect(direct.direct, root, label) }
        }
      }
      let leftovers = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.hasSuffix(".tmp") }
      #expect(leftovers.isEmpty, "\(root.path): temporary files left")
    }
  }

  /// The file system refusing direct writes from the first, after one block, part way through a
  /// write (a short write of three blocks), or megabytes in at an unaligned count (which the
  /// kernel itself refuses): the rest goes through the page cache and the file is the same.
  @Test func aRefusalPartWayFallsBackToThePageCache() throws {
    let folder = try Self.folder()
    defer { try? FileManager.default.removeItem(at: folder) }
    let cached = try Self.written(folder.appendingPathComponent("cached.npy"), "off", Self.awkwardSizes)
    for refusing in [0, 4096, 3 * 4096, 5_000_000, 5 << 20] {
      let direct = try Self.written(folder.appendingPathComponent("refused.npy"), "on", Self.awkwardSizes, refusing: refusing)
      #expect(direct.bytes == cached.bytes, "refusing after \(refusing) bytes: the files differ")
      #expect(direct.direct <= refusing, "refusing after \(refusing) bytes: \(direct.direct) written directly")
    }
  }

  /// `auto` writes directly from 16 MiB of payload up, and over an existing read-only file.
  @Test func autoWritesLargePayloadsDirectly() throws {
    let folder = try Self.folder()
    defer { try? FileManager.default.removeItem(at: folder) }
    let target = folder.appendingPathComponent("x.npy")
    let small = try Self.written(target, "auto", [(16 << 20) / 4 - 1])
    #expect(small.direct == 0, "a payload under 16 MiB was written directly")
    try FileManager.default.setAttributes([.posixPermissions: 0o444], ofItemAtPath: target.path)
    let large = try Self.written(target, "auto", [(16 << 20) / 4 - 1, 1])
    Self.expectDirect(large.direct, FileManager.default.temporaryDirectory, "16 MiB")
    #expect(large.bytes.count == 128 + (16 << 20))
    #expect(try FileManager.default.attributesOfItem(atPath: target.path)[.posixPermissions] as? Int == 0o444)
  }

  @Test func aWriterDroppedBeforeCommitLeavesNothing() throws {
    let folder = try Self.folder()
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
