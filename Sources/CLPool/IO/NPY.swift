import CLPoolCPU
import Foundation

/// NumPy `.npy` files: format versions 1.0, 2.0 and 3.0.
///
/// Reading takes float16, float32 or float64 in either byte order, in C order or Fortran order
/// (transposed into C order), and converts to float32. Writing produces little-endian float32
/// (`<f4`) or int64 (`<i8`) in C order, through `OutputFile`, so a failure never leaves a partial
/// file and a device, FIFO or link is never replaced. Every malformed input is a `CLPoolError.invalidInput` naming the
/// file and the problem.
public enum NPY {
  static let magic: [UInt8] = [0x93] + Array("NUMPY".utf8)

  // MARK: Reading

  /// Reads a floating-point array as float32.
  public static func readTensor(at url: URL) throws -> Tensor {
    try readTensor(at: url, as: Float.self)
  }

  /// Reads a floating-point array in storage type S (each element rounded once, to nearest, when
  /// S is narrower than the file's type). The payload goes straight into the tensor's storage
  /// (converted a chunk at a time when the types differ), so reading costs about the tensor once.
  public static func readTensor<S: StorageScalar>(at url: URL, as type: S.Type) throws -> TypedTensor<S> {
    try readTensor(atPath: url.path, as: type)
  }

  /// `readTensor(at:as:)` for a path taken as the kernel takes it: a URL's path is standardized
  /// as text (`link/../x.npy` becomes `x.npy`, `x.npy/` becomes `x.npy`), which names another file
  /// where `link` leads into another folder.
  /// - Parameters:
  ///   - path: the file, as given on a command line.
  ///   - type: the storage type to read into.
  public static func readTensor<S: StorageScalar>(atPath path: String, as type: S.Type) throws -> TypedTensor<S> {
    try Reader(path: path).readAll(as: type)
  }

  /// Decodes the bytes of an `.npy` file as float32; `name` appears in error messages.
  public static func decodeTensor(_ data: Data, name: String) throws -> Tensor {
    try decodeTensor(data, name: name, as: Float.self)
  }

  /// Decodes the bytes of an `.npy` file in storage type S, each element rounded once (to nearest,
  /// ties to even) when S is narrower than the file's type.
  public static func decodeTensor<S: StorageScalar>(_ data: Data, name: String, as _: S.Type) throws
    -> TypedTensor<S>
  {
    try data.withUnsafeBytes { bytes in
      let layout = try FileLayout(parsing: bytes, name: name)
      guard bytes.count - layout.dataOffset == layout.payloadBytes else { throw layout.sizeMismatch(bytes.count - layout.dataOffset) }
      let values = try elements(UnsafeRawBufferPointer(rebasing: bytes[layout.dataOffset...]), layout, as: S.self)
      return try TypedTensor(shape: layout.header.shape, scalars: values)
    }
  }

  /// Where a file's data lie: its header, the element type, and the payload's offset and size.
  struct FileLayout {
    let header: Header
    let element: ElementType
    let dataOffset: Int
    let count: Int
    let payloadBytes: Int
    let fail: (String) -> CLPoolError

    /// The prefix bytes a header needs before `headerLength` can be read.
    static let prefixBytes = 12

    /// Parses the magic, version and header at the start of `bytes` (which must hold the whole
    /// header; the payload may or may not follow).
    init(parsing bytes: UnsafeRawBufferPointer, name: String) throws {
      // Header text is echoed in messages: escaped, so a message stays one line.
      let fail = { (problem: String) -> CLPoolError in .invalidInput("\(name): \(CLPoolError.printable(problem))") }
      self.fail = fail
      guard bytes.count >= 10, Array(bytes[0..<6]) == NPY.magic else {
        throw fail("not a .npy file (bad magic; expected \\x93NUMPY)")
      }
      let (major, minor) = (bytes[6], bytes[7])
      let headerLength: Int
      let headerStart: Int
      switch (major, minor) {
      case (1, 0):
        headerLength = Int(bytes[8]) | Int(bytes[9]) << 8
        headerStart = 10
      case (2, 0), (3, 0):
        guard bytes.count >= 12 else { throw fail("truncated header") }
        headerLength = (0..<4).reduce(0) { $0 | Int(bytes[8 + $1]) << (8 * $1) }
        headerStart = 12
      default:
        throw fail("unsupported .npy format version \(major).\(minor) (supported: 1.0, 2.0, 3.0)")
      }
      guard headerStart + headerLength <= bytes.count else {
        throw fail("truncated header (\(headerLength) bytes announced, \(bytes.count - headerStart) present)")
      }
      let headerBytes = bytes[headerStart..<(headerStart + headerLength)]
      guard
        let headerText = major == 3
          ? String(bytes: headerBytes, encoding: .utf8) : String(bytes: headerBytes, encoding: .isoLatin1)
      else { throw fail("header is not valid text") }
      do {
        header = try Header(parsing: headerText)
      } catch let problem as HeaderProblem {
        throw fail("malformed header: \(problem.text)")
      }
      element = try ElementType(descr: header.descr, fail: fail)
      do {
        count = try Tensor.elementCount(of: header.shape)
      } catch {
        throw fail("shape \(header.shape) is too large")
      }
      dataOffset = headerStart + headerLength
      let (bytes, overflow) = count.multipliedReportingOverflow(by: element.size)
      payloadBytes = overflow ? Int.max : bytes
    }

    /// The length of the whole header (magic to payload) from its first `prefixBytes` bytes, or
    /// nil when those are too few to tell.
    static func dataOffset(fromPrefix bytes: UnsafeRawBufferPointer) -> Int? {
      guard bytes.count >= 10, Array(bytes[0..<6]) == NPY.magic else { return nil }
      if bytes[6] == 1 { return 10 + (Int(bytes[8]) | Int(bytes[9]) << 8) }
      guard bytes.count >= 12 else { return nil }
      return 12 + (0..<4).reduce(0) { $0 | Int(bytes[8 + $1]) << (8 * $1) }
    }

    func sizeMismatch(_ present: Int) -> CLPoolError {
      let expected = payloadBytes == Int.max ? "too many" : String(payloadBytes)
      return fail(
        "header says shape \(Tensor.describe(header.shape)) of \(header.descr) (\(expected) bytes) but \(present) bytes of data follow")
    }
  }

  /// The payload's elements in storage type S, in row-major order.
  private static func elements<S: StorageScalar>(_ payload: UnsafeRawBufferPointer, _ layout: FileLayout, as _: S.Type) throws
    -> [S]
  {
    try HostMemory.check(elements: layout.count, 1, width: S.scalarType.byteWidth, what: "an input array")
    let values = [S](unsafeUninitializedCapacity: layout.count) { out, initialized in
      convert(payload, layout.element, into: UnsafeMutableBufferPointer(rebasing: out[0..<layout.count]))
      initialized = layout.count
    }
    return layout.header.fortranOrder && layout.header.shape.count > 1 ? fortranToC(values, shape: layout.header.shape) : values
  }

  /// Elements of the file's type at `source` (out.count of them) into S, each rounded once (the
  /// CPU kernels' conversion, which byte-swaps a big-endian file's elements too).
  static func convert<S: StorageScalar>(_ source: UnsafeRawBufferPointer, _ element: ElementType, into out: UnsafeMutableBufferPointer<S>) {
    guard out.count > 0 else { return }
    clpool_convert(
      element.kind.scalarType.kernelCode, source.baseAddress, element.bigEndian ? 1 : 0, S.scalarType.kernelCode,
      out.baseAddress, out.count)
  }

  /// Column-major to row-major for any rank.
  static func fortranToC<T>(_ values: [T], shape: [Int]) -> [T] {
    guard let first = values.first else { return values }
    var result = [T](repeating: first, count: values.count)
    var fortranStrides = [Int](repeating: 1, count: shape.count)
    for axis in 1..<shape.count { fortranStrides[axis] = fortranStrides[axis - 1] * shape[axis - 1] }
    var index = [Int](repeating: 0, count: shape.count)
    for cOffset in 0..<values.count {
      result[cOffset] = values[zip(index, fortranStrides).reduce(0) { $0 + $1.0 * $1.1 }]
      var axis = shape.count - 1  // advance the row-major multi-index
      while axis >= 0 {
        index[axis] += 1
        if index[axis] < shape[axis] { break }
        index[axis] = 0
        axis -= 1
      }
    }
    return result
  }

  /// The dtypes we read.
  struct ElementType {
    enum Kind {
      case float16, float32, float64
      var scalarType: ScalarType { self == .float16 ? .float16 : self == .float32 ? .float32 : .float64 }
    }
    let kind: Kind
    let bigEndian: Bool
    var size: Int { kind == .float16 ? 2 : kind == .float32 ? 4 : 8 }

    init(descr: String, fail: (String) -> CLPoolError) throws {
      guard descr.count >= 2 else { throw fail("unsupported dtype '\(descr)'") }
      let order = descr.first!
      let code = String(descr.dropFirst())
      if code.hasPrefix("O") { throw fail("object arrays ('\(descr)') are not supported; save a numeric float array") }
      switch code {
      case "f2": kind = .float16
      case "f4": kind = .float32
      case "f8": kind = .float64
      default:
        throw fail("unsupported dtype '\(descr)' (supported: float16, float32, float64 as <f2 <f4 <f8 or >f2 >f4 >f8)")
      }
      switch order {
      case "<": bigEndian = false
      case ">": bigEndian = true
      case "=": bigEndian = 1.bigEndian == 1
      default: throw fail("unsupported byte order in dtype '\(descr)'")
      }
    }
  }

  /// The header dictionary: `{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }`.
  struct Header {
    var descr = ""
    var fortranOrder = false
    var shape: [Int] = []

    init(parsing text: String) throws {
      var parser = LiteralParser(text)
      var seen = Set<String>()
      try parser.expect("{")
      while !parser.consume("}") {
        let key = try parser.string()
        try parser.expect(":")
        switch key {
        case "descr": descr = try parser.string()
        case "fortran_order": fortranOrder = try parser.bool()
        case "shape": shape = try parser.intTuple()
        default: throw HeaderProblem(text: "unknown key '\(key)'")
        }
        seen.insert(key)
        if !parser.consume(",") {
          try parser.expect("}")
          break
        }
      }
      try parser.expectEnd()  // only the padding numpy writes (spaces, the final newline) may follow
      for key in ["descr", "fortran_order", "shape"] where !seen.contains(key) {
        throw HeaderProblem(text: "missing key '\(key)'")
      }
    }
  }

  struct HeaderProblem: Error { let text: String }

  /// Just enough of Python's literal syntax for .npy headers.
  struct LiteralParser {
    private let characters: [Character]
    private var position = 0

    init(_ text: String) { characters = Array(text) }

    /// Python's whitespace between tokens: not Unicode's, which `numpy.load` refuses.
    private mutating func skipSpace() {
      while position < characters.count, characters[position].unicodeScalars.allSatisfy({ " \t\n\r\u{0C}".unicodeScalars.contains($0) }) {
        position += 1
      }
    }

    mutating func consume(_ token: Character) -> Bool {
      skipSpace()
      guard position < characters.count, characters[position] == token else { return false }
      position += 1
      return true
    }

    mutating func expect(_ token: Character) throws {
      guard consume(token) else { throw HeaderProblem(text: "expected '\(token)' at offset \(position)") }
    }

    mutating func expectEnd() throws {
      skipSpace()
      guard position == characters.count else { throw HeaderProblem(text: "text after the closing '}' at offset \(position)") }
    }

    mutating func string() throws -> String {
      skipSpace()
      guard position < characters.count, characters[position] == "'" || characters[position] == "\"" else {
        throw HeaderProblem(text: "expected a string at offset \(position)")
      }
      let quote = characters[position]
      position += 1
      let start = position
      while position < characters.count, characters[position] != quote { position += 1 }
      guard position < characters.count else { throw HeaderProblem(text: "unterminated string") }
      defer { position += 1 }
      return String(characters[start..<position])
    }

    mutating func bool() throws -> Bool {
      skipSpace()
      for (word, value) in [("True", true), ("False", false)] {
        let end = position + word.count
        if end <= characters.count, String(characters[position..<end]) == word {
          position = end
          return value
        }
      }
      throw HeaderProblem(text: "expected True or False at offset \(position)")
    }

    mutating func intTuple() throws -> [Int] {
      try expect("(")
      var values: [Int] = []
      while !consume(")") {
        skipSpace()
        let start = position
        while position < characters.count, characters[position].isNumber { position += 1 }
        guard position > start, let value = Int(String(characters[start..<position])) else {
          throw HeaderProblem(text: "expected a non-negative integer in shape at offset \(start)")
        }
        values.append(value)
        if !consume(",") {
          try expect(")")
          break
        }
      }
      return values
    }
  }

  // MARK: Writing

  /// Writes `tensor` as little-endian float32 in C order.
  public static func write(_ tensor: Tensor, to url: URL) throws { try write(tensor, toPath: url.path) }

  /// `write(_:to:)` for a path taken as the kernel takes it (see `readTensor(atPath:as:)`).
  /// - Parameters:
  ///   - tensor: what to write.
  ///   - path: the file, as given on a command line.
  public static func write(_ tensor: Tensor, toPath path: String) throws {
    var payload = Data(capacity: tensor.count * 4)
    for value in tensor.scalars { withUnsafeBytes(of: value.bitPattern.littleEndian) { payload.append(contentsOf: $0) } }
    try OutputFile.write(encode(descr: "<f4", shape: tensor.shape, payload: payload), toPath: path)
  }

  /// Writes int64 indices (e.g. max-pool positions) as little-endian `<i8` in C order.
  public static func write(indices: [Int64], shape: [Int], to url: URL) throws {
    try write(indices: indices, shape: shape, toPath: url.path)
  }

  /// `write(indices:shape:to:)` for a path taken as the kernel takes it (see `readTensor(atPath:as:)`).
  /// - Parameters:
  ///   - indices: the values, `shape`'s element count of them.
  ///   - shape: the array's shape.
  ///   - path: the file, as given on a command line.
  public static func write(indices: [Int64], shape: [Int], toPath path: String) throws {
    precondition(indices.count == shape.reduce(1, *))
    var payload = Data(capacity: indices.count * 8)
    for value in indices { withUnsafeBytes(of: value.littleEndian) { payload.append(contentsOf: $0) } }
    try OutputFile.write(encode(descr: "<i8", shape: shape, payload: payload), toPath: path)
  }

  /// A complete .npy file: version 1.0 (2.0 when the header needs it), header padded so the data
  /// starts on a 64-byte boundary.
  public static func encode(descr: String, shape: [Int], payload: Data) -> Data {
    let shapeText = shape.count == 1 ? "(\(shape[0]),)" : "(" + shape.map(String.init).joined(separator: ", ") + ")"
    var header = "{'descr': '\(descr)', 'fortran_order': False, 'shape': \(shapeText), }"
    let version: UInt8 = header.utf8.count + 11 < 65_536 ? 1 : 2
    let prefix = version == 1 ? 10 : 12
    let padding = (64 - (prefix + header.utf8.count + 1) % 64) % 64
    header += String(repeating: " ", count: padding) + "\n"
    var file = Data(magic + [version, 0])
    let length = header.utf8.count
    file.append(contentsOf: version == 1 ? [UInt8(length & 0xFF), UInt8(length >> 8)] : (0..<4).map { UInt8((length >> (8 * $0)) & 0xFF) })
    file.append(contentsOf: Array(header.utf8))
    file.append(payload)
    return file
  }
}
