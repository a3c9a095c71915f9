import CLPoolCPU

#if canImport(Glibc)
  import Glibc
#endif

/// Writes `text` to stderr as far as stderr takes it. A closed, full or size-limited stderr loses
/// the text but never ends the process, which `FileHandle.standardError.write` would (it traps).
package func writeToStandardError(_ text: String) {
  _ = Array(text.utf8).withUnsafeBytes { writeAll(STDERR_FILENO, $0) }
}

/// Writes all of `bytes` to `descriptor` in order, again where a signal interrupted a write: 0, or
/// the errno of the write that failed (EIO for one that wrote nothing).
func writeAll(_ descriptor: Int32, _ bytes: UnsafeRawBufferPointer) -> Int32 {
  var offset = 0
  while offset < bytes.count {
    let written = write(descriptor, bytes.baseAddress! + offset, bytes.count - offset)
    if written < 0 && errno == EINTR { continue }
    if written < 0 { return errno }
    guard written > 0 else { return EIO }
    offset += written
  }
  return 0
}

/// A program's stdin, stdout and stderr (standard_streams.c), for clpool's command line.
package enum StandardStreams {
  /// Puts the root folder on each of descriptors 0–2 that is closed, before the program opens any
  /// file: otherwise that file would take the number, and `-o /dev/stdout` name it. Writing to
  /// the folder fails, as to a closed descriptor, and `-o /dev/stdout` is refused as a folder.
  package static func occupyClosedDescriptors() { clpool_occupy_standard_descriptors() }

  /// Flushes stdout: 0, or the errno of a write that failed.
  package static func flushOutput() -> Int32 { clpool_flush_standard_output() }
}
