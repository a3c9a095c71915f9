import Foundation

/// Built OpenCL programs, cached per (platform, device, driver version, source, build options):
/// in memory for the process and on disk across processes, as device binaries, so a second
/// process skips the driver's compiler (≈ 0.7 s per program on PoCL).
///
/// The disk cache lives in `CLPOOL_CACHE_DIR`, else `$XDG_CACHE_HOME/clpool`, else
/// `~/.cache/clpool`. Each file starts with the full key, which is compared on load, so a hash
/// collision or a stale file can only cause a rebuild, never a wrong program. Disk errors are not
/// fatal: the program is then built from source.
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
  }

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
  /// disk, or compiled (and then stored in both).
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
    let fileName = ProgramCache.fileName(forKey: key)

    if let binary = lock.withLock({ binaries[key] }),
      let program = try? CLProgram.load(binary: binary, options: options, context: context, device: device.handles.device)
    {
      lock.withLock { counts.memoryHits += 1 }
      return program
    }
    if let binary = readFromDisk(fileName, key: key),
      let program = try? CLProgram.load(binary: binary, options: options, context: context, device: device.handles.device)
    {
      lock.withLock {
        binaries[key] = binary
        counts.diskHits += 1
      }
      return program
    }
    let program = try CLProgram.build(
      source: source, options: options, context: context, device: device.handles.device)
    lock.withLock { counts.sourceBuilds += 1 }
    if let binary = try? program.binary(), !binary.isEmpty {
      lock.withLock { binaries[key] = binary }
      writeToDisk(fileName, key: key, binary: binary)
    }
    return program
  }

  /// What a cached program is keyed by: everything that can change the binary.
  public static func key(
    platform: String, platformVersion: String, device: String, driverVersion: String, options: String,
    source: String
  ) -> String {
    ["clpool-program-v1", platform, platformVersion, device, driverVersion, options, digest(source)]
      .joined(separator: "\u{1F}")
  }

  /// The disk cache's file for a key.
  public static func fileName(forKey key: String) -> String { digest(key) + ".bin" }

  // MARK: Disk

  private static let magic = Array("CLPOOL-PROGRAM\n".utf8)

  private func readFromDisk(_ fileName: String, key: String) -> [UInt8]? {
    guard let directory,
      let data = try? Data(contentsOf: directory.appendingPathComponent(fileName))
    else { return nil }
    let header = ProgramCache.magic + Array(key.utf8) + [0]
    guard data.count > header.count, data.prefix(header.count).elementsEqual(header) else {
      return nil
    }
    return Array(data.dropFirst(header.count))
  }

  /// Written to a temporary file and renamed, so a concurrent reader never sees half a file.
  private func writeToDisk(_ fileName: String, key: String, binary: [UInt8]) {
    guard let directory else { return }
    let manager = FileManager.default
    do {
      try manager.createDirectory(at: directory, withIntermediateDirectories: true)
      let temporary = directory.appendingPathComponent(".\(fileName).\(getpid()).\(UInt64.random(in: 0...UInt64.max))")
      try Data(ProgramCache.magic + Array(key.utf8) + [0] + binary).write(to: temporary)
      if rename(temporary.path, directory.appendingPathComponent(fileName).path) != 0 {
        try? manager.removeItem(at: temporary)
      }
    } catch {
      // A read-only or full cache directory only costs a rebuild next time.
    }
  }

  /// 128-bit FNV-1a (two 64-bit lanes with different offsets) as 32 hex digits; collisions only
  /// cost a rebuild because the full key is verified on load.
  static func digest(_ text: String) -> String {
    var a: UInt64 = 0xcbf2_9ce4_8422_2325
    var b: UInt64 = 0x6c62_272e_07bb_0142
    for byte in text.utf8 {
      a = (a ^ UInt64(byte)) &* 0x0000_0100_0000_01B3
      b = (b ^ UInt64(byte)) &* 0x0000_0100_0000_01B3
      b = b ^ (b >> 29)
    }
    return String(format: "%016llx%016llx", a, b)
  }
}
