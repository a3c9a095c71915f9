import Foundation

/// The host memory one allocation may take: the machine's physical memory, or less where a
/// control group (a container) limits this process, or `CLPOOL_MAX_HOST_BYTES`. Every output,
/// weight, image and record a call or command is about to allocate is checked against it first,
/// so an impossible request is one `CLPoolError.sizeLimit` line instead of an abort in the
/// allocator.
public enum HostMemory {
  /// The limit in bytes.
  public static let limit: Int = {
    var limit = Int(clamping: UInt64(sysconf(Int32(_SC_PHYS_PAGES))) &* UInt64(sysconf(Int32(_SC_PAGESIZE))))
    if limit <= 0 { limit = Int.max }
    // cgroup v2 (memory.max) and v1 (memory.limit_in_bytes) limits, where they are set.
    for path in ["/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"] {
      if let text = try? String(contentsOfFile: path, encoding: .utf8),
        let bytes = Int(text.trimmingCharacters(in: .whitespacesAndNewlines)), bytes > 0
      {
        limit = min(limit, bytes)
      }
    }
    if let text = ProcessInfo.processInfo.environment["CLPOOL_MAX_HOST_BYTES"], let bytes = Int(text), bytes > 0 {
      limit = min(limit, bytes)
    }
    return limit
  }()

  /// Throws `CLPoolError.sizeLimit` naming `what` unless rows × columns elements of `width` bytes
  /// fit in `limit`.
  public static func check(elements rows: Int, _ columns: Int, width: Int, what: String) throws {
    let (count, countOverflow) = rows.multipliedReportingOverflow(by: columns)
    let (bytes, bytesOverflow) = count.multipliedReportingOverflow(by: width)
    guard !countOverflow, !bytesOverflow, bytes <= limit else {
      let size = countOverflow || bytesOverflow ? "more bytes than Int holds" : "\(bytes) bytes"
      throw CLPoolError.sizeLimit("\(what) of \(rows)x\(columns) elements needs \(size), more than this host's memory (\(limit) bytes)")
    }
  }
}
