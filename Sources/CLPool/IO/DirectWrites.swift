import CLPoolCPU
import Foundation

#if canImport(Glibc)
  import Glibc
#endif

/// A large output's bytes written around the page cache (O_DIRECT on the file's own descriptor):
/// whole aligned blocks, copied from the writer's buffers into an aligned staging buffer, and the
/// last partial block through the page cache once the file is done. A streamed output is written
/// once and read by someone else later, so caching it costs the kernel a copy into fresh
/// page-cache pages that no reader gains from. On the VMs our benchmarks ran on, those pages
/// filled at 0.1-0.5 GB/s after a few idle seconds, longer than the stream's compute for a 122 MB
/// output; direct writes ran at 2.2-2.7 GB/s there (BENCHMARKS.md, streaming). Writes are
/// sequential, each starting where the last ended. Used by one thread at a time (NPY.Writer's
/// write queue, then its owner after draining it).
final class DirectWrites {
  /// File offsets, lengths and buffer addresses of direct writes are multiples of this: the
  /// largest logical block size of Linux block devices, accepted by every file system that takes
  /// O_DIRECT.
  static let alignment = 4096
  /// Under `CLPOOL_DIRECT_IO=auto` (the default), payloads of at least this many bytes are
  /// written directly: a stream's output, not a batch's.
  static let automaticBytes = 16 << 20

  private let file: OutputFile
  private var staging: UnsafeMutableRawBufferPointer
  /// The file offset of `staging`'s first byte (aligned while direct), and the bytes there not
  /// yet written.
  private var base = 0
  private var pending = 0
  /// False once finished, or once the file system refused a direct write: the rest goes through
  /// the page cache.
  private var direct = true
  /// Bytes written around the page cache so far.
  private(set) var directBytes = 0
  /// For tests: direct writes stop short at this many bytes, and are refused (EINVAL) after.
  var refusesAfterBytes = Int.max

  /// Whether a payload of `bytes` is written directly, by `CLPOOL_DIRECT_IO`: `auto` (or unset)
  /// from `automaticBytes` up, `on` whatever its size, `off` never.
  static func wanted(payloadBytes bytes: Int, environment: [String: String]) throws -> Bool {
    switch environment["CLPOOL_DIRECT_IO"] ?? "auto" {
    case "auto", "": return bytes >= automaticBytes
    case "on": return true
    case "off": return false
    case let other:
      throw CLPoolError.invalidArgument("CLPOOL_DIRECT_IO=\(other): expected auto, on or off")
    }
  }

  /// Direct writes to `file`'s temporary file, nothing written yet, whose first bytes will be
  /// `header`: nil when the system or the file system has no direct writes (tmpfs before Linux
  /// 6.6, some network and FUSE file systems), which leaves the whole file to the page cache.
  init?(_ file: OutputFile, header: Data) {
    guard file.temporary != nil, clpool_set_direct(file.descriptor, 1) == 0 else { return nil }
    self.file = file
    staging = .allocate(byteCount: max(1 << 20, header.count), alignment: Self.alignment)
    header.copyBytes(to: staging.bindMemory(to: UInt8.self), count: header.count)
    pending = header.count
  }

  deinit { staging.deallocate() }

  /// Writes `bytes` at file `offset`, which is where the previous write ended.
  func write(_ bytes: UnsafeRawBufferPointer, at offset: Int) throws {
    precondition(offset == base + pending, "direct writes are sequential")
    guard direct else {
      try finish()
      try file.write(bytes, at: offset)
      base = offset + bytes.count
      return
    }
    reserve(pending + bytes.count)
    if let source = bytes.baseAddress { (staging.baseAddress! + pending).copyMemory(from: source, byteCount: bytes.count) }
    pending += bytes.count
    let whole = pending / Self.alignment * Self.alignment
    guard whole > 0 else { return }
    try writeDirectly(UnsafeRawBufferPointer(rebasing: staging[..<whole]), at: base)
    staging.baseAddress!.copyMemory(from: staging.baseAddress! + whole, byteCount: pending - whole)
    base += whole
    pending -= whole
  }

  /// Writes what is left, the last partial block, through the page cache (a direct write is
  /// whole blocks) and frees the staging buffer; later writes, if any, go through the page cache.
  func finish() throws {
    try stopDirectWrites()
    if pending > 0 { try file.write(UnsafeRawBufferPointer(rebasing: staging[..<pending]), at: base) }
    base += pending
    pending = 0
    staging.deallocate()
    staging = UnsafeMutableRawBufferPointer(start: nil, count: 0)
  }

  /// Aligned `bytes` at aligned `offset`. A refusal (EINVAL, ENOTSUP: a device that wants a
  /// larger alignment, a file system that takes the flag but not the write) or a short write
  /// that leaves the rest unaligned writes them and everything after through the page cache.
  private func writeDirectly(_ bytes: UnsafeRawBufferPointer, at offset: Int) throws {
    var done = 0
    while done < bytes.count {
      let allowed = min(bytes.count - done, max(0, refusesAfterBytes - directBytes))
      let written = allowed == 0 ? -1 : pwrite(file.descriptor, bytes.baseAddress! + done, allowed, off_t(offset + done))
      let code = allowed == 0 ? EINVAL : errno
      if written < 0 {
        if code == EINTR { continue }
        guard [EINVAL, ENOTSUP, EOPNOTSUPP].contains(code) else { throw OutputFile.failure(file.path, code) }
      } else {
        done += written
        directBytes += written
      }
      if written <= 0 || (done < bytes.count && done % Self.alignment != 0) {
        try stopDirectWrites()
        return try file.write(UnsafeRawBufferPointer(rebasing: bytes[done...]), at: offset + done)
      }
    }
  }

  private func stopDirectWrites() throws {
    guard direct else { return }
    direct = false
    guard clpool_set_direct(file.descriptor, 0) == 0 else { throw OutputFile.failure(file.path, errno) }
  }

  /// Grows `staging` to hold at least `bytes`, keeping what it holds.
  private func reserve(_ bytes: Int) {
    guard bytes > staging.count else { return }
    let grown = UnsafeMutableRawBufferPointer.allocate(
      byteCount: (max(bytes, 2 * staging.count) + Self.alignment - 1) / Self.alignment * Self.alignment,
      alignment: Self.alignment)
    grown.baseAddress!.copyMemory(from: staging.baseAddress!, byteCount: pending)
    staging.deallocate()
    staging = grown
  }
}
