import CLPoolCPU

#if canImport(Glibc)
  import Glibc
#endif

/// Writes `text` to stderr as far as stderr takes it. A closed, full or size-limited stderr loses
/// the text but never ends the process, which `FileHandle.standardError.write` would (it traps).
package func writeToStandardError(_ text: String) {
  let bytes = Array(text.utf8)
  var offset = 0
  while offset < bytes.count {
    let written = bytes[offset...].withUnsafeBytes { write(STDERR_FILENO, $0.baseAddress, $0.count) }
    if written < 0 && errno == EINTR { continue }
    guard written > 0 else { return }
    offset += written
  }
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
