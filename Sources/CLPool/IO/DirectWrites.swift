import CLPoolCPU
import Foundation

#if canImport(Glibc)
  import Glibc
#endif

/// A large output's bytes written around the page cache (O_DIRECT): whole aligned blocks from an
/// aligned staging buffer, the last partial block through the page cache when the file is done.
/// A streamed output is written once and read by someone else later, so caching it costs a copy
/// into fresh page-cache pages and no reader gains. On the VMs our benchmarks ran on those
/// pages cost 0.1-0.5 GB/s to fill after a few idle seconds, which made the write of a 122 MB
/// output longer than the stream's compute; direct writes ran at 2.2-2.7 GB/s there, with no
/// copy by the CPU (BENCHMARKS.md, streaming). Writes are sequential: each starts where the last
/// ended. Used by one thread at a time (NPY.Writer's write queue, then its owner after draining).
final class DirectWrites {
  /// File offsets, lengths and buffer addresses of direct writes are multiples of this: the
  /// largest logical block size of Linux block devices, accepted by every file system that takes
  /// O_DIRECT.
  static let alignment = 4096
  /// Under `CLPOOL_DIRECT_IO=auto` (the default), payloads of at least this many bytes are
  /// written directly: a stream's output, not a batch's.
  static let automaticBytes = 16 << 20

  private let file: OutputFile
  private let descriptor: Int32
  private var staging: UnsafeMutableRawBufferPointer
  /// The file offset of `staging`'s first byte (aligned), and the bytes there not yet written.
  private var base = 0
  private var pending = 0
  /// False once the file system refused a direct write: the rest goes through the page cache.
  private var direct = true

  /// Whether a payload of `bytes` is written directly, by `CLPOOL_DIRECT_IO`: `auto` (or unset)
  /// from `automaticBytes` up, `on` whatever its size, `off` never.
  static func wanted(payloadBytes bytes: Int, environment: [String: String] = ProcessInfo.processInfo.environment) throws
    -> Bool
  {
    switch environment["CLPOOL_DIRECT_IO"] ?? "auto" {
    case "auto", "": return bytes >= automaticBytes
    case "on": return true
    case "off": return false
    case let other:
      throw CLPoolError.invalidArgument("CLPOOL_DIRECT_IO=\(other): expected auto, on or off")
    }
  }

  /// Direct writes to `file`'s temporary file, whose first bytes are `header` (already written):
  /// nil when the system or the file system has no direct writes (tmpfs before Linux 6.6, some
  /// network file systems), which leaves the file to the page cache.
  init?(_ file: OutputFile, header: Data) {
    guard let temporary = file.temporary else { return nil }
    let descriptor = clpool_open_direct(temporary)
    guard descriptor >= 0 else { return nil }
    self.file = file
    self.descriptor = descriptor
    staging = .allocate(byteCount: 1 << 20, alignment: Self.alignment)
    header.copyBytes(to: staging.bindMemory(to: UInt8.self), count: header.count)
    pending = header.count
  }

  deinit {
    close(descriptor)
    staging.deallocate()
  }

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
    (staging.baseAddress!).copyMemory(from: staging.baseAddress! + whole, byteCount: pending - whole)
    base += whole
    pending -= whole
  }

  /// Writes the last partial block, through the page cache (a direct write is whole blocks).
  func finish() throws {
    guard pending > 0 else { return }
    try file.write(UnsafeRawBufferPointer(rebasing: staging[..<pending]), at: base)
    base += pending
    pending = 0
  }

  /// Aligned `bytes` at aligned `offset`; a refusal (EINVAL: the device wants a larger
  /// alignment) writes them and everything after through the page cache instead.
  private func writeDirectly(_ bytes: UnsafeRawBufferPointer, at offset: Int) throws {
    var done = 0
    while done < bytes.count {
      let written = pwrite(descriptor, bytes.baseAddress! + done, bytes.count - done, off_t(offset + done))
      if written < 0 {
        if errno == EINTR { continue }
        guard errno == EINVAL else { throw OutputFile.failure(file.path, errno) }
      } else {
        done += written
      }
      // Refused, or a short write that left the rest unaligned.
      if written <= 0 || (done < bytes.count && done % Self.alignment != 0) {
        direct = false
        return try file.write(UnsafeRawBufferPointer(rebasing: bytes[done...]), at: offset + done)
      }
    }
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
