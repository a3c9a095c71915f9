import CLPoolCPU
import Foundation

#if canImport(Glibc)
  import Glibc
#endif

/// A file clpool writes, as users expect of `numpy.save` and `cp`, that appears whole or not at
/// all and never replaces what is not a regular file:
/// - a symbolic link is followed to its target (also a dangling one); the link stays a link;
/// - a regular file (or a new one) is written to a temporary file next to the target and renamed
///   over it on `commit`, keeping an existing file's permission bits (and, for root, its owner); an
///   existing file the user may not write (read-only, another user's) is refused, as `cp` does;
/// - a character device or FIFO (`/dev/null`, `/dev/stdout`, a pipe) is written directly;
/// - a directory, block device or socket is refused.
/// An `OutputFile` dropped before `commit` removes its temporary file, and so does a signal that ends
/// a program which called `removeTemporariesOnSignals`.
public final class OutputFile {
  /// The path the caller gave, for messages.
  public let path: String
  private let target: String
  private(set) var descriptor: Int32
  /// The temporary file renamed over `target` on commit; nil when writing a device or FIFO.
  private(set) var temporary: String?
  private var signalCleanup = SignalCleanup(nil)
  private var committed = false
  /// False for a process that joined another's temporary file (`joining:`): the creator commits.
  private let owner: Bool

  public init(path: String) throws {
    self.path = path
    owner = true
    var status = stat()
    // A device or FIFO is opened through the path as given: the kernel follows links that no path
    // spells (/dev/stdout into a pipe reads `pipe:[N]`).
    if stat(path, &status) == 0, Self.isStream(status) {
      target = path
      descriptor = open(path, O_WRONLY | O_CLOEXEC)
      guard descriptor >= 0 else { throw Self.failure(path, errno) }
      guard fstat(descriptor, &status) == 0, Self.isStream(status) else {
        close(descriptor)
        throw CLPoolError.invalidInput("\(path): cannot write: it changed from a device or FIFO while being opened")
      }
      return
    }
    target = try Self.resolve(path)
    if lstat(target, &status) == 0 {
      switch status.st_mode & S_IFMT {
      case S_IFREG:
        // Renaming over a file needs only the folder's permission; replacing it takes the file's own.
        guard faccessat(AT_FDCWD, target, W_OK, AT_EACCESS) == 0 else { throw Self.failure(path, errno) }
      case S_IFDIR where target == "/" && path != "/":  // StandardStreams' placeholder
        throw CLPoolError.invalidInput("\(path): cannot write: it leads to the root folder (a descriptor closed when clpool started)")
      case S_IFDIR:
        throw CLPoolError.invalidInput("\(path): cannot write: it is a directory")
      default:
        throw CLPoolError.invalidInput(
          "\(path): cannot write: not a regular file, character device or FIFO (clpool never replaces one)")
      }
    } else if errno != ENOENT {
      throw Self.failure(path, errno)
    }
    let exists = lstat(target, &status) == 0
    let folder = (target as NSString).deletingLastPathComponent
    // A short name, so a target name near NAME_MAX still leaves room for it.
    let name = String(format: ".clpool-%d-%08x.tmp", getpid(), UInt32.random(in: 0...UInt32.max))
    let temporary = (folder.isEmpty ? "." : folder) + "/" + name
    let cleanup = SignalCleanup(temporary)  // before the file exists, so that no signal falls between
    descriptor = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, exists ? 0o600 : 0o666)
    guard descriptor >= 0 else {
      let code = errno
      cleanup.forget()
      throw Self.failure(path, code)
    }
    self.temporary = temporary
    signalCleanup = cleanup
    if exists {
      _ = fchmod(descriptor, status.st_mode & 0o7777)
      if geteuid() == 0 { _ = fchown(descriptor, status.st_uid, status.st_gid) }
    }
  }

  /// Another process's temporary file for `path` (an MPI rank writing its rows of the file rank
  /// 0 created), written in place with `write(_:at:)`; the creator commits or removes it.
  init(joining temporary: String, for path: String) throws {
    self.path = path
    target = path
    owner = false
    descriptor = open(temporary, O_WRONLY | O_CLOEXEC)
    guard descriptor >= 0 else { throw Self.failure(path, errno) }
  }

  deinit {
    if descriptor >= 0 { close(descriptor) }
    if owner, !committed, let temporary { unlink(temporary) }
    signalCleanup.forget()
  }

  /// From now on a signal that ends the process by default (SIGINT, SIGTERM, SIGHUP, SIGQUIT,
  /// SIGPIPE, SIGALRM, SIGUSR1, SIGUSR2, SIGXCPU; where not ignored) removes every output file's
  /// temporary file before it ends the process. For programs, such as clpool's command line; a
  /// library leaves the handling of signals to the program it is part of.
  public static func removeTemporariesOnSignals() { clpool_remove_temporaries_on_signals() }

  /// True for a temporary regular file, which can be written at any offset; false for a device
  /// or FIFO, written in order.
  var isPositional: Bool { temporary != nil || !owner }

  /// Writes `bytes` at byte `offset` of a positional file.
  func write(_ bytes: UnsafeRawBufferPointer, at offset: Int) throws {
    var done = 0
    while done < bytes.count {
      let written = pwrite(descriptor, bytes.baseAddress! + done, bytes.count - done, off_t(offset + done))
      if written < 0 {
        if errno == EINTR { continue }
        throw Self.failure(path, errno)
      }
      guard written > 0 else { throw Self.failure(path, EIO) }
      done += written
    }
  }

  /// Sets a positional file's size.
  func resize(to bytes: Int) throws {
    guard ftruncate(descriptor, off_t(bytes)) == 0 else { throw Self.failure(path, errno) }
  }

  /// Appends `bytes`.
  public func write(_ bytes: UnsafeRawBufferPointer) throws {
    let code = writeAll(descriptor, bytes)
    guard code == 0 else { throw Self.failure(path, code) }
  }

  public func write(_ data: Data) throws {
    try data.withUnsafeBytes { try write($0) }
  }

  /// Finishes the file: a regular file appears at its path, whole.
  public func commit() throws {
    guard !committed else { return }
    let status = close(descriptor)
    let closeError = errno
    descriptor = -1
    guard status == 0 else { throw Self.failure(path, closeError) }
    if owner, let temporary, rename(temporary, target) != 0 { throw Self.failure(path, errno) }
    committed = true
    signalCleanup.forget()
  }

  /// Writes `data` to `url` whole, as `OutputFile` describes.
  public static func write(_ data: Data, to url: URL) throws { try write(data, toPath: url.path) }

  /// Writes `data` to `path` (as the kernel takes it, not standardized as a URL's path) whole,
  /// as `OutputFile` describes.
  /// - Parameters:
  ///   - data: the file's contents.
  ///   - path: the file, as given on a command line.
  public static func write(_ data: Data, toPath path: String) throws {
    let file = try OutputFile(path: path)
    try file.write(data)
    try file.commit()
  }

  /// True when writing `a` would replace the regular file `b` names, or the file `b` will be:
  /// - two paths that exist name the same regular file or FIFO (one device and inode, through
  ///   symbolic and hard links alike: a pipe read and written would feed clpool its own output);
  ///   a character device (`/dev/null`) is written, never replaced, so it clashes with none;
  /// - two paths that do not exist yet name one folder (as `realpath` gives it) and one name once
  ///   the links along their last component are followed.
  public static func sameFile(_ a: String, _ b: String) -> Bool {
    var x = stat(), y = stat()
    let first = stat(a, &x) == 0, second = stat(b, &y) == 0
    if first || second {
      let type = x.st_mode & S_IFMT
      return first && second && (type == S_IFREG || type == S_IFIFO) && x.st_dev == y.st_dev && x.st_ino == y.st_ino
    }
    guard let p = newFileName(a), let q = newFileName(b) else { return false }
    return p == q
  }

  /// Where a file that does not exist yet would be created: its folder's real path and its name.
  private static func newFileName(_ path: String) -> String? {
    guard let target = try? resolve(path) else { return nil }
    let folder = (target as NSString).deletingLastPathComponent
    guard let real = realpath(folder.isEmpty ? "." : folder, nil) else { return nil }
    defer { free(real) }
    return String(cString: real) + "/" + (target as NSString).lastPathComponent
  }

  private static func isStream(_ status: stat) -> Bool {
    status.st_mode & S_IFMT == S_IFCHR || status.st_mode & S_IFMT == S_IFIFO
  }

  /// `path` with every symbolic link along its last component followed (a dangling link gives
  /// the path it points to).
  static func resolve(_ path: String) throws -> String {
    var current = path
    for _ in 0..<40 {
      var status = stat()
      guard lstat(current, &status) == 0, status.st_mode & S_IFMT == S_IFLNK else { return current }
      var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
      let length = readlink(current, &buffer, buffer.count - 1)
      guard length >= 0 else { throw failure(path, errno) }
      let link = String(decoding: buffer.prefix(length).map { UInt8(bitPattern: $0) }, as: UTF8.self)
      let folder = (current as NSString).deletingLastPathComponent
      current = link.hasPrefix("/") || folder.isEmpty ? link : folder + "/" + link
    }
    throw CLPoolError.invalidInput("\(path): cannot write: too many levels of symbolic links")
  }

  static func failure(_ path: String, _ code: Int32) -> CLPoolError {
    .invalidInput("\(path): cannot write (\(String(cString: strerror(code))))")
  }
}

/// A temporary file's entry in the list a signal's handler removes (temporaries.c), when the
/// program asked for that (`OutputFile.removeTemporariesOnSignals`).
struct SignalCleanup {
  private let slot: Int32

  init(_ path: String?) { slot = path.map { clpool_register_temporary($0) } ?? -1 }

  /// The file was renamed or removed: the handler leaves its path alone.
  func forget() { clpool_forget_temporary(slot) }
}
