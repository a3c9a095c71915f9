import Foundation

#if canImport(Glibc)
  import Glibc
#endif

/// The program cache's files, treated as untrusted input: a PoCL binary is native code the process
/// runs, so whoever can write the cache can run code in clpool. As OpenSSH treats `~/.ssh`:
/// - the directory is created 0700 and entries 0600; a directory (or an ancestor without the
///   sticky bit) that is not the user's own or that group or others may write, or an entry that is
///   not a regular file of the user's own writable by no one else, is refused: one note, no disk
///   caching (or a rebuild);
/// - an entry is `magic, key length, key, payload length, SHA-256 of the payload, payload`; one
///   whose length, key or digest do not match (truncated, swapped, stale) is rebuilt and rewritten;
/// - entries are written to a temporary file and renamed, so a reader never sees half of one, and a
///   failed write (a full disk) leaves nothing behind.
final class DiskStore: @unchecked Sendable {
  let directory: URL
  private let state = LockedValue<Trust?>(nil)
  private enum Trust { case trusted, refused }

  init(directory: URL) { self.directory = directory }

  private static let magic = Array("CLPOOL-PROGRAM-3\n".utf8)

  /// The binary stored for `key`, or nil (absent, refused, or malformed: a note says which).
  func read(_ key: String) -> [UInt8]? {
    guard trusted() else { return nil }
    let path = directory.appendingPathComponent(ProgramCache.fileName(forKey: key)).path
    // O_NONBLOCK: a FIFO planted in the cache must not block the open (its type is checked next).
    let descriptor = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)
    guard descriptor >= 0 else {
      if errno != ENOENT { note("cannot read \(path) (\(String(cString: strerror(errno)))); rebuilding") }
      return nil
    }
    guard let file = try? InputFile(path: path, adopting: descriptor), file.status.st_mode & S_IFMT == S_IFREG else {
      note("ignoring \(path): it is not a regular file")
      return nil
    }
    let status = file.status
    guard status.st_uid == geteuid(), status.st_mode & 0o022 == 0 else {
      note("ignoring \(path): it is not this user's own, or others may write it")
      return nil
    }
    guard status.st_size <= ProgramCache.largestEntryBytes else {
      note("ignoring \(path): \(status.st_size) bytes is more than any program's binary; rebuilding it")
      return nil
    }
    var bytes = [UInt8](repeating: 0, count: Int(status.st_size))
    let got = bytes.withUnsafeMutableBytes { try? file.read(into: $0, at: 0) }
    guard got == bytes.count, let binary = Self.decode(bytes, key: key) else {
      note("the cached program \(path) was malformed; rebuilding it")
      return nil
    }
    return binary
  }

  func write(_ key: String, _ binary: [UInt8]) {
    guard trusted() else { return }
    let temporary = directory.appendingPathComponent(String(format: ".clpool-%d-%08x.tmp", getpid(), UInt32.random(in: 0...UInt32.max))).path
    let signalCleanup = SignalCleanup(temporary)  // before the file exists, so that no signal falls between
    defer { signalCleanup.forget() }
    let descriptor = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
    guard descriptor >= 0 else { return }
    let bytes = Self.encode(key, binary)
    let written = bytes.withUnsafeBytes { Glibc.write(descriptor, $0.baseAddress, $0.count) }
    let closed = close(descriptor)
    let destination = directory.appendingPathComponent(ProgramCache.fileName(forKey: key)).path
    if written != bytes.count || closed != 0 || rename(temporary, destination) != 0 {
      unlink(temporary)  // a full or read-only cache only costs a rebuild next time
    }
  }

  static func encode(_ key: String, _ binary: [UInt8]) -> [UInt8] {
    let keyBytes = Array(key.utf8)
    return magic + littleEndian(UInt64(keyBytes.count)) + keyBytes + littleEndian(UInt64(binary.count))
      + SHA256.digest(binary) + binary
  }

  /// The payload of an entry for `key`, or nil unless every field matches.
  static func decode(_ bytes: [UInt8], key: String) -> [UInt8]? {
    let keyBytes = Array(key.utf8)
    let header = magic.count + 8 + keyBytes.count + 8 + 32
    guard bytes.count >= header, bytes.starts(with: magic) else { return nil }
    var offset = magic.count
    func number() -> UInt64 {
      defer { offset += 8 }
      return (0..<8).reduce(0) { $0 | UInt64(bytes[offset + $1]) << (8 * UInt64($1)) }
    }
    guard number() == UInt64(keyBytes.count), bytes[offset..<(offset + keyBytes.count)].elementsEqual(keyBytes) else { return nil }
    offset += keyBytes.count
    guard number() == UInt64(bytes.count - header) else { return nil }
    let digest = bytes[offset..<(offset + 32)]
    let payload = Array(bytes[header...])
    return digest.elementsEqual(SHA256.digest(payload)) ? payload : nil
  }

  private static func littleEndian(_ value: UInt64) -> [UInt8] { (0..<8).map { UInt8(truncatingIfNeeded: value >> (8 * UInt64($0))) } }

  /// Creates the directory (0700) if needed and checks, once, that it and its ancestors are safe.
  private func trusted() -> Bool {
    state.withLock { trust in
      if let trust { return trust == .trusted }
      let verdict = check()
      if let problem = verdict { note("not caching programs on disk: \(problem)") }
      trust = verdict == nil ? .trusted : .refused
      return verdict == nil
    }
  }

  /// Why the directory is unsafe, or nil.
  private func check() -> String? {
    let path = directory.standardizedFileURL.path
    var components: [String] = []
    var prefix = ""
    for part in path.split(separator: "/") {
      prefix += "/" + part
      components.append(prefix)
    }
    for (position, component) in components.enumerated() {
      var status = stat()
      if stat(component, &status) != 0 {
        guard errno == ENOENT, mkdir(component, position == components.count - 1 ? 0o700 : 0o755) == 0 || errno == EEXIST,
          stat(component, &status) == 0
        else { return "cannot create \(component) (\(String(cString: strerror(errno))))" }
      }
      guard status.st_mode & S_IFMT == S_IFDIR else { return "\(component) is not a directory" }
      let last = position == components.count - 1
      let owner = status.st_uid == geteuid() || (!last && status.st_uid == 0)
      let writableByOthers = status.st_mode & 0o022 != 0
      let sticky = status.st_mode & UInt32(S_ISVTX) != 0
      guard owner else { return "\(component) belongs to another user" }
      guard !writableByOthers || (!last && sticky) else { return "\(component) is writable by group or others" }
      if last, status.st_mode & 0o077 != 0 { chmod(component, 0o700) }  // an older clpool made it 0755
    }
    return nil
  }

  /// One line on stderr per distinct note.
  func note(_ message: String) { BackendSelection.noteOnce("clpool: " + message) }
}
