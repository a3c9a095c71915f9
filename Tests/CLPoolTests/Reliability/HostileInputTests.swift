import CLPool
import Foundation
import Testing

/// Hostile input, round 2 (issue 11), at the library's level: means of values near the types'
/// limits, a program cache that is corrupt, foreign or writable by others, and impossible sizes.
@Suite struct HostileInputTests {
  /// A float32 sum overflows where the mean of the same finite values does not: every backend
  /// gives the mean, within SPEC's bound against float64; infinities and NaN stay what IEEE says.
  @Test func meansOfValuesNearTheLimitsStayFinite() throws {
    let big = Float.greatestFiniteMagnitude
    var random = SplitMix64(seed: TestBackends.seed)
    var inputs: [(String, [Int], (Int) -> Float)] = [
      ("1e33 over 2^20", [1, 2, 1024, 1024], { _ in 1e33 }),
      ("FLT_MAX 7x7", [3, 4, 7, 7], { _ in big }),
      ("-FLT_MAX 7x7", [2, 3, 7, 7], { _ in -big }),
      ("±FLT_MAX and 1", [2, 3, 7, 7], { $0 % 7 == 6 ? 1 : ($0 % 2 == 0 ? big : -big) }),
      ("FLT_MAX then -inf", [1, 2, 300, 300], { $0 == 89_999 ? -.infinity : big }),
      ("+inf and -inf", [1, 2, 7, 7], { $0 == 3 ? .infinity : ($0 == 40 ? -.infinity : big) }),
    ]
    let noise = try TestData.uniform([1, 2, 7, 7], in: 0.5..<1, random: &random).scalars
    inputs.append(("FLT_MAX times noise", [1, 2, 7, 7], { big * noise[$0] }))
    for (name, shape, value) in inputs {
      for layout in Layout.allCases {
        let count = shape.reduce(1, *)
        let x = try Tensor(shape: layout == .channelsFirst ? shape : [shape[0]] + shape[2...] + [shape[1]], scalars: (0..<count).map(value))
        let reference = Float64Reference.averagePool(x.scalars, try PoolGeometry(shape: x.shape, layout: layout))
        for candidate in TestBackends.all {
          let mean = try candidate.backend.globalAveragePool(x, layout: layout)
          let outcome = CrossCheck.averagePool(mean.scalars, reference: reference)
          #expect(outcome.passed, "\(candidate.name) \(name) \(layout): \(outcome.mismatch ?? "")")
        }
      }
    }
  }

  /// The same in float64 storage (near DBL_MAX), on every backend that has it, and for ragged
  /// batches; and the fused head with softmax on such features gives no NaN.
  @Test func float64RaggedAndHeadNearTheLimits() throws {
    let huge = Double.greatestFiniteMagnitude
    let x64 = try TypedTensor<Double>(shape: [2, 3, 7, 7], scalars: (0..<294).map { $0 % 5 == 0 ? huge * 0.9 : huge })
    let reference64 = Float64Reference.averagePool(x64.scalars, try PoolGeometry(shape: x64.shape, layout: .channelsFirst))
    let big = Float.greatestFiniteMagnitude
    let sample = try Tensor(shape: [4, 9, 9], scalars: (0..<324).map { $0 % 3 == 0 ? -big : big })
    let ragged = try RaggedBatch(samples: [sample, try Tensor(shape: [4, 2, 2], repeating: big)])
    let features = try Tensor(shape: [2, 8, 7, 7], scalars: (0..<784).map { Float($0 % 7 + 1) * 1e37 })
    let weight = try Tensor(shape: [8, 5], scalars: (0..<40).map { Float($0 % 5) * 1e-38 })
    for candidate in TestBackends.all {
      let backend = candidate.backend
      if (try? backend.checkSupport(.float64)) != nil {
        let mean = try backend.globalAveragePool(x64, layout: .channelsFirst)
        #expect(CrossCheck.averagePool(mean.scalars, reference: reference64, type: .float64).passed, "\(candidate.name) float64")
      }
      let pooled = try backend.globalAveragePool(ragged)
      let finite = pooled.scalars.allSatisfy(\.isFinite)
      #expect(finite, "\(candidate.name) ragged: \(pooled.scalars)")
      let probabilities = try backend.head(features, weight: weight, activation: .softmax)
      let noNaN = probabilities.scalars.allSatisfy { !$0.isNaN }
      #expect(noNaN, "\(candidate.name) head: \(probabilities.scalars)")
    }
  }

  /// Results larger than this host's memory are refused in one line before anything is allocated.
  @Test func impossibleSizesAreRefused() throws {
    let backend = CPUBackend()
    let x = try Tensor(shape: [1 << 20, 1], repeating: 1)
    let w = try Tensor(shape: [1, 1 << 24], repeating: 1)
    #expect { try backend.dense(x, weight: w) } throws: { error in
      guard case CLPoolError.sizeLimit(let message) = error else { return false }
      return message.contains("dense output") && message.contains("host's memory") && !message.contains("\n")
    }
  }

  /// SHA-256 names the cache's files: the standard's test vectors.
  @Test func cacheFileNamesAreSHA256() {
    #expect(ProgramCache.fileName(forKey: "abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad.bin")
    #expect(ProgramCache.fileName(forKey: "") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855.bin")
    #expect(
      ProgramCache.fileName(forKey: "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")
        == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1.bin")
  }
}

/// The on-disk program cache is untrusted input: whatever happened to an entry, the next backend
/// rebuilds it and computes right, and the one after loads the rewritten entry.
@Suite(.enabled(if: TestBackends.runOpenCL))
struct ProgramCacheHostileTests {
  typealias Damage = @Sendable (_ directory: URL, _ entries: [URL]) throws -> Void

  static func entries(_ directory: URL) throws -> [URL] {
    try FileManager.default.contentsOfDirectory(at: directory, includingPropertiesForKeys: [.fileSizeKey])
      .filter { $0.pathExtension == "bin" }.sorted { $0.path < $1.path }
  }

  static let damages: [(String, Damage)] = [
    ("truncated to half", { _, entries in
      for entry in entries { try Data(try Data(contentsOf: entry).prefix(try Data(contentsOf: entry).count / 2)).write(to: entry) }
    }),
    ("truncated to the header", { _, entries in
      for entry in entries { try Data(try Data(contentsOf: entry).prefix(40)).write(to: entry) }
    }),
    ("emptied", { _, entries in for entry in entries { try Data().write(to: entry) } }),
    ("one payload byte flipped", { _, entries in
      for entry in entries {
        var data = try Data(contentsOf: entry)
        data[data.count - 100] ^= 0x40
        try data.write(to: entry)
      }
    }),
    ("payloads swapped between storage types", { _, entries in
      guard entries.count >= 2 else { throw CLIProblem("need two entries") }
      let (a, b) = (try Data(contentsOf: entries[0]), try Data(contentsOf: entries[1]))
      try b.write(to: entries[0])
      try a.write(to: entries[1])
    }),
    ("random bytes", { _, entries in
      for entry in entries { try Data((0..<4096).map { _ in UInt8.random(in: 0...255) }).write(to: entry) }
    }),
    // A FIFO would block a plain open for ever; a sparse file past any program is not allocated.
    ("replaced by a FIFO", { _, entries in
      for entry in entries {
        try FileManager.default.removeItem(at: entry)
        guard mkfifo(entry.path, 0o600) == 0 else { throw CLIProblem("mkfifo \(entry.path) failed") }
      }
    }),
    ("grown sparse past any program", { _, entries in
      for entry in entries where truncate(entry.path, off_t(ProgramCache.largestEntryBytes + 1)) != 0 {
        throw CLIProblem("truncate \(entry.path) failed")
      }
    }),
  ]

  /// Builds the float32 and float64 programs into `directory` and returns a float64 check.
  static func populate(_ directory: URL, _ device: OpenCLDevice) throws -> ProgramCache {
    let cache = ProgramCache(directory: directory)
    let backend = try OpenCLBackend(device: device, cache: cache)
    if device.supportsFP64 { _ = try backend.globalAveragePool(try TypedTensor<Double>(shape: [1, 1, 3], scalars: [1, 2, 4])) }
    return cache
  }

  static func check(_ device: OpenCLDevice, _ cache: ProgramCache) throws {
    let backend = try OpenCLBackend(device: device, cache: cache)
    let x = try Tensor(shape: [1, 2, 3], scalars: [1, 2, 3, 4, 5, 9])
    #expect(try backend.globalAveragePool(x).scalars == [2, 6])
    #expect(try backend.globalMaxPool(x).scalars == [3, 9])
    if device.supportsFP64 {
      #expect(try backend.globalAveragePool(try TypedTensor<Double>(shape: [1, 1, 3], scalars: [1, 2, 6])).scalars == [3])
    }
  }

  @Test(arguments: damages.map(\.0))
  func damagedEntriesAreRebuilt(_ name: String) throws {
    let device = try #require(try OpenCLDevice.all().first)
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("clpool-cache-\(UUID())")
    defer { try? FileManager.default.removeItem(at: directory) }
    _ = try Self.populate(directory, device)
    try Self.damages.first { $0.0 == name }!.1(directory, try Self.entries(directory))
    let rebuilding = ProgramCache(directory: directory)
    try Self.check(device, rebuilding)
    #expect(rebuilding.statistics.diskHits == 0 && rebuilding.statistics.sourceBuilds >= 1, "\(name): \(rebuilding.statistics)")
    let healed = ProgramCache(directory: directory)
    try Self.check(device, healed)
    #expect(healed.statistics.sourceBuilds == 0 && healed.statistics.diskHits >= 1, "\(name): not rewritten: \(healed.statistics)")
  }

  /// Entries or a directory others may write are not used (a binary is native code the process
  /// runs); the directory and entries clpool creates are 0700 and 0600.
  @Test func foreignOrWritableCacheIsNotTrusted() throws {
    let device = try #require(try OpenCLDevice.all().first)
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("clpool-cache-\(UUID())/inner")
    defer { try? FileManager.default.removeItem(at: directory.deletingLastPathComponent()) }
    _ = try Self.populate(directory, device)
    let attributes = try FileManager.default.attributesOfItem(atPath: directory.path)
    #expect((attributes[.posixPermissions] as? Int) == 0o700)
    for entry in try Self.entries(directory) {
      #expect((try FileManager.default.attributesOfItem(atPath: entry.path)[.posixPermissions] as? Int) == 0o600)
    }
    // An entry group or others may write: rebuilt, never loaded.
    for entry in try Self.entries(directory) { chmod(entry.path, 0o666) }
    let writableEntries = ProgramCache(directory: directory)
    try Self.check(device, writableEntries)
    #expect(writableEntries.statistics.diskHits == 0)
    // A directory others may write: no disk caching at all.
    chmod(directory.path, 0o777)
    for entry in try Self.entries(directory) { try FileManager.default.removeItem(at: entry) }
    let writableDirectory = ProgramCache(directory: directory)
    try Self.check(device, writableDirectory)
    let left = try Self.entries(directory)
    #expect(writableDirectory.statistics.diskHits == 0 && left.isEmpty)
    // An entry that is a symbolic link is not followed.
    chmod(directory.path, 0o700)
    let other = FileManager.default.temporaryDirectory.appendingPathComponent("clpool-cache-\(UUID())")
    defer { try? FileManager.default.removeItem(at: other) }
    _ = try Self.populate(other, device)
    for entry in try Self.entries(other) {
      try FileManager.default.createSymbolicLink(at: directory.appendingPathComponent(entry.lastPathComponent), withDestinationURL: entry)
    }
    let linked = ProgramCache(directory: directory)
    try Self.check(device, linked)
    #expect(linked.statistics.diskHits == 0)
  }
}

struct CLIProblem: Error, CustomStringConvertible {
  let description: String
  init(_ description: String) { self.description = description }
}
