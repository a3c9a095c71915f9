import Foundation

/// The process's resident memory, for leak checks (`clpool selftest --repeat`, the tests).
public enum ResourceUsage {
  /// Resident set size in bytes from /proc/self/statm (Linux); nil where that is unavailable.
  public static func residentBytes() -> Int? {
    guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return nil }
    let fields = text.split(separator: " ")
    guard fields.count > 1, let pages = Int(fields[1]) else { return nil }
    return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
  }
}
