import Foundation

/// Built OpenCL programs, cached per (platform, device, driver version, source, build options):
/// in memory for the process and on disk across processes, as device binaries, so a second
/// process skips the driver's compiler (≈ 0.7 s per program on PoCL).
///
/// The disk cache lives in `CLPOOL_CACHE_DIR`, else `$XDG_CACHE_HOME/clpool`, else
/// `~/.cache/clpool`, and is untrusted input (`DiskStore`): an entry is used only when the
/// directory and the file are this user's alone, and when its length, key and SHA-256 digest all
/// match; anything else means a rebuild. Disk errors are not fatal: the program is then built
/// from source.
public final class ProgramCache: @unchecked Sendable {
  /// Counts since the cache was created; tests read them to prove a hit skips the compiler.
  public struct Statistics: Equatable, Sendable {
    public var sourceBuilds = 0
    public var memoryHits = 0
    public var diskHits = 0

    public init(sourceBuilds: Int = 0, memoryHits: Int = 0, diskHits: Int = 0) {
      self.sourceBuilds = sourceBuilds
      self.memoryHits = memoryHits
      self.diskHits = diskHits
    }
  }

  /// The process-wide cache the backends use unless given another.
  public static let shared = ProgramCache(directory: ProgramCache.defaultDirectory())

  public let directory: URL?
  private let lock = NSLock()  // guards `binaries` and `counts`
  private var binaries: [String: [UInt8]] = [:]
  private var counts = Statistics()

  /// - Parameter directory: where binaries persist; nil keeps them in memory only.
  public init(directory: URL?) {
    self.directory = directory
    disk = directory.map { DiskStore(directory: $0) }
  }

  /// Where binaries persist across processes (nil: in memory only).
  private let disk: DiskStore?

  public var statistics: Statistics { lock.withLock { counts } }

  /// Wall-clock seconds spent getting programs (compiling, or loading binaries) so far.
  public var secondsSpent: Double { lock.withLock { seconds } }
  private var seconds = 0.0

  public static func defaultDirectory(
    environment: [String: String] = ProcessInfo.processInfo.environment
  ) -> URL? {
    if let path = environment["CLPOOL_CACHE_DIR"], !path.isEmpty {
      return URL(fileURLWithPath: path, isDirectory: true)
    }
    if let path = environment["XDG_CACHE_HOME"], !path.isEmpty {
      return URL(fileURLWithPath: path, isDirectory: true).appendingPathComponent("clpool")
    }
    if let home = environment["HOME"], !home.isEmpty {
      return URL(fileURLWithPath: home, isDirectory: true).appendingPathComponent(".cache/clpool")
    }
    return nil
  }

  /// The program for `source` built with `options` for `device` in `context`: from memory, from
  /// disk, or compiled (and then stored in both). A binary that the driver rejects, that fails to
  /// build, or that lacks one of the source's kernels is dropped and the program rebuilt.
  func program(source: String, options: String, device: OpenCLDevice, context: CLContext) throws
    -> CLProgram
  {
    let start = DispatchTime.now().uptimeNanoseconds
    defer {
      let elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9
      lock.withLock { seconds += elapsed }
    }
    let key = ProgramCache.key(
      platform: device.platformName, platformVersion: device.platformVersion, device: device.name,
      driverVersion: device.driverVersion, options: options, source: source)
    let kernels = ProgramCache.kernelNames(in: source)
    func load(_ binary: [UInt8]) -> CLProgram? {
      guard let program = try? CLProgram.load(binary: binary, options: options, context: context, device: device.handles.device),
        let names = try? program.kernelNames(), kernels.isSubset(of: names)
      else { return nil }
      return program
    }
    if let binary = lock.withLock({ binaries[key] }), let program = load(binary) {
      lock.withLock { counts.memoryHits += 1 }
      return program
    }
    let store = disk
    if let binary = store?.read(key) {
      if let program = load(binary) {
        lock.withLock {
          binaries[key] = binary
          counts.diskHits += 1
        }
        return program
      }
      store?.note("a cached program in \(store!.directory.path) did not load; rebuilt it")
    }
    let program = try CLProgram.build(
      source: source, options: options, context: context, device: device.handles.device)
    lock.withLock { counts.sourceBuilds += 1 }
    if let binary = try? program.binary(), !binary.isEmpty {
      lock.withLock { binaries[key] = binary }
      store?.write(key, binary)
    }
    return program
  }


  /// What a cached program is keyed by: everything that can change the binary.
  public static func key(
    platform: String, platformVersion: String, device: String, driverVersion: String, options: String,
    source: String
  ) -> String {
    ["clpool-program-v2", platform, platformVersion, device, driverVersion, options, SHA256.hex(Array(source.utf8))]
      .joined(separator: "\u{1F}")
  }

  /// The disk cache's file for a key.
  /// The largest cache file read as an entry: clpool's programs compile to a few MiB, so a larger
  /// file is not one, and is rebuilt rather than read into memory.
  public static let largestEntryBytes = 256 << 20

  public static func fileName(forKey key: String) -> String { SHA256.hex(Array(key.utf8)) + ".bin" }

  /// The names after `__kernel void` in an OpenCL C source.
  static func kernelNames(in source: String) -> Set<String> {
    var names = Set<String>()
    var rest = Substring(source)
    while let range = rest.range(of: "__kernel") {
      rest = rest[range.upperBound...]
      let words = rest.prefix(300).split(whereSeparator: { !($0.isLetter || $0.isNumber || $0 == "_") })
      if let void = words.firstIndex(of: "void"), void + 1 < words.count { names.insert(String(words[void + 1])) }
    }
    return names
  }
}
