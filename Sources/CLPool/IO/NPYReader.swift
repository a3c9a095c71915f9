import Foundation

#if canImport(Glibc)
  import Glibc
#endif

extension NPY {
  /// An `.npy` file opened for reading: its header first, then its elements a range at a time,
  /// converted into the caller's storage type, so a file larger than memory can be read in
  /// chunks of whole samples (`read(elements:into:)`) or whole (`readAll`). Regular files are read
  /// at any offset; a pipe or other stream (`<(…)`, `/dev/stdin`) only in order.
  public final class Reader {
    /// The path given, for messages.
    public let path: String
    let layout: FileLayout
    let file: InputFile

    public var shape: [Int] { layout.header.shape }
    public var isFortranOrder: Bool { layout.header.fortranOrder && layout.header.shape.count > 1 }
    /// The file's element type.
    public var scalarType: ScalarType { layout.element.kind.scalarType }

    public init(path: String) throws {
      self.path = path
      let file = try InputFile(path: path)
      self.file = file
      var prefix = [UInt8](repeating: 0, count: FileLayout.prefixBytes)
      let got = try prefix.withUnsafeMutableBytes { try file.read(into: $0, at: 0) }
      var headerBytes = Array(prefix.prefix(got))
      if let end = headerBytes.withUnsafeBytes({ FileLayout.dataOffset(fromPrefix: $0) }), end > got, end <= 1 << 24 {
        var rest = [UInt8](repeating: 0, count: end - got)
        let more = try rest.withUnsafeMutableBytes { try file.read(into: $0, at: got) }
        headerBytes += rest.prefix(more)
      }
      layout = try headerBytes.withUnsafeBytes { try FileLayout(parsing: $0, name: path) }
      if let size = file.size, size - layout.dataOffset != layout.payloadBytes {
        throw layout.sizeMismatch(size - layout.dataOffset)
      }
    }

    /// The whole array in storage type S.
    public func readAll<S: StorageScalar>(as _: S.Type) throws -> TypedTensor<S> {
      try HostMemory.check(elements: layout.count, 1, width: S.scalarType.byteWidth, what: "\(path)'s array")
      var values = [S](repeating: 0, count: layout.count)
      try values.withUnsafeMutableBufferPointer { try read(elements: 0..<layout.count, into: $0) }
      try checkNothingFollows()
      if isFortranOrder { values = fortranToC(values, shape: shape) }
      return try TypedTensor(shape: shape, scalars: values)
    }

    /// Elements `range` of the payload, in file order, converted into `out` (range.count of S).
    public func read<S: StorageScalar>(elements range: Range<Int>, into out: UnsafeMutableBufferPointer<S>) throws {
      precondition(out.count >= range.count && range.upperBound <= layout.count)
      let width = layout.element.size
      let direct = layout.element.kind.scalarType == S.scalarType && !layout.element.bigEndian
      let chunk = direct ? max(1, range.count) : max(1, (1 << 22) / width)  // stride's step is never 0
      var scratch = direct ? [] : [UInt8](repeating: 0, count: min(chunk, range.count) * width)
      for begin in stride(from: range.lowerBound, to: range.upperBound, by: chunk) {
        let end = min(begin + chunk, range.upperBound)
        let destination = UnsafeMutableBufferPointer(rebasing: out[(begin - range.lowerBound)..<(end - range.lowerBound)])
        let offset = layout.dataOffset + begin * width
        let bytes = (end - begin) * width
        if direct {
          try readExactly(UnsafeMutableRawBufferPointer(destination), at: offset)
        } else {
          try scratch.withUnsafeMutableBytes { raw in
            let part = UnsafeMutableRawBufferPointer(rebasing: raw[0..<bytes])
            try readExactly(part, at: offset)
            NPY.convert(UnsafeRawBufferPointer(part), layout.element, into: destination)
          }
        }
      }
    }

    /// For a stream, read to its end: nothing may follow the payload (a regular file's size was
    /// checked on opening).
    func checkNothingFollows() throws {
      guard file.size == nil else { return }
      var extra: UInt8 = 0
      if try withUnsafeMutableBytes(of: &extra, { try file.read(into: $0, at: layout.dataOffset + layout.payloadBytes) }) > 0 {
        throw layout.sizeMismatch(layout.payloadBytes + 1)
      }
    }

    private func readExactly(_ buffer: UnsafeMutableRawBufferPointer, at offset: Int) throws {
      let got = try file.read(into: buffer, at: offset)
      guard got == buffer.count else { throw layout.sizeMismatch(offset - layout.dataOffset + got) }
    }
  }
}

/// A file opened for reading with POSIX calls, so every failure names the file and the reason
/// (a directory, no permission, no such file) in one line.
public final class InputFile {
  let path: String
  /// The size of a regular file; nil for a pipe, a device or a /proc file, read until it ends.
  let size: Int?
  let descriptor: Int32
  /// What fstat said when the file was opened.
  let status: stat
  /// Where a stream is: it can only be read on from here.
  private var position = 0

  convenience init(path: String) throws {
    let descriptor = open(path, O_RDONLY | O_CLOEXEC)
    guard descriptor >= 0 else { throw Self.failure(path, errno) }
    try self.init(path: path, adopting: descriptor)
  }

  /// The file open at `descriptor`, which it now owns (and closes on failure).
  init(path: String, adopting descriptor: Int32) throws {
    self.path = path
    self.descriptor = descriptor
    var status = stat()
    guard fstat(descriptor, &status) == 0 else {
      let code = errno
      close(descriptor)
      throw Self.failure(path, code)
    }
    self.status = status
    switch status.st_mode & S_IFMT {
    case S_IFDIR:
      close(descriptor)
      throw CLPoolError.invalidInput("\(path): cannot read: it is a directory")
    case S_IFREG where status.st_size > 0:
      size = Int(status.st_size)
    default:  // pipes, devices, and /proc files that report size 0
      size = nil
    }
  }

  deinit { close(descriptor) }

  /// Reads up to buffer.count bytes from `offset` (a stream: the next bytes, which must be at
  /// `offset`); fewer only at the end of the file.
  func read(into buffer: UnsafeMutableRawBufferPointer, at offset: Int) throws -> Int {
    if size == nil, offset != position {
      throw CLPoolError.invalidInput("\(path): cannot read: it is a stream, read only in order")
    }
    var total = 0
    while total < buffer.count {
      let got =
        size == nil
        ? Glibc.read(descriptor, buffer.baseAddress! + total, buffer.count - total)
        : pread(descriptor, buffer.baseAddress! + total, buffer.count - total, off_t(offset + total))
      if got < 0 {
        if errno == EINTR { continue }
        throw Self.failure(path, errno)
      }
      if got == 0 { break }
      total += got
    }
    if size == nil { position += total }
    return total
  }

  static func failure(_ path: String, _ code: Int32) -> CLPoolError {
    .invalidInput("\(path): cannot read (\(String(cString: strerror(code))))")
  }

  /// The whole file at `path` (a regular file or a stream), refused past `limit` bytes.
  public static func contents(of path: String, limit: Int) throws -> [UInt8] {
    try InputFile(path: path).contents(after: [], limit: limit)
  }

  /// The file's first `count` bytes, or all of a shorter one.
  func prefix(_ count: Int) throws -> [UInt8] {
    var bytes = [UInt8](repeating: 0, count: count)
    let got = try bytes.withUnsafeMutableBytes { try read(into: $0, at: 0) }
    return Array(bytes.prefix(got))
  }

  /// The whole file, of which `start` was read already (`prefix`), refused past `limit` bytes.
  func contents(after start: [UInt8], limit: Int) throws -> [UInt8] {
    var bytes = start + [UInt8](repeating: 0, count: max(min(size ?? 1 << 16, limit) + 1 - start.count, 1))
    var count = start.count
    while true {
      let got = try bytes.withUnsafeMutableBytes { try read(into: UnsafeMutableRawBufferPointer(rebasing: $0[count...]), at: count) }
      count += got
      if count < bytes.count { break }
      guard bytes.count <= limit else { throw CLPoolError.invalidInput("\(path): cannot read: larger than \(limit) bytes") }
      bytes += [UInt8](repeating: 0, count: min(bytes.count, limit + 1 - bytes.count))
    }
    return Array(bytes.prefix(count))
  }
}
