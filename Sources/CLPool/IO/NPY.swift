import Foundation

/// NumPy `.npy` files: format versions 1.0, 2.0 and 3.0.
///
/// Reading takes float16, float32 or float64 in either byte order, in C order or Fortran order
/// (transposed into C order), and converts to float32. Writing produces little-endian float32
/// (`<f4`) or int64 (`<i8`) in C order, through a temporary file renamed into place, so a failure
/// never leaves a partial file. Every malformed input is a `CLPoolError.invalidInput` naming the
/// file and the problem.
public enum NPY {
  static let magic: [UInt8] = [0x93] + Array("NUMPY".utf8)

  // MARK: Reading

  /// Reads a floating-point array as float32.
  public static func readTensor(at url: URL) throws -> Tensor {
    try readTensor(at: url, as: Float.self)
  }

  /// Reads a floating-point array in storage type S (rounded to nearest when S is narrower than
  /// the file's type; float64 files are read into float64 without passing through float32).
  public static func readTensor<S: StorageScalar>(at url: URL, as type: S.Type) throws -> TypedTensor<S> {
    let data: Data
    do {
      data = try Data(contentsOf: url)
    } catch {
      throw CLPoolError.invalidInput("\(url.path): cannot read (\(AtomicFile.reason(error)))")
    }
    return try decodeTensor(data, name: url.path, as: type)
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
    let bytes = [UInt8](data)
    // Header text is echoed in messages: escape control characters so a message stays one line.
    func fail(_ problem: String) -> CLPoolError {
      let printable = problem.unicodeScalars.map { $0.properties.generalCategory == .control ? $0.escaped(asASCII: true) : String($0) }
      return .invalidInput("\(name): \(printable.joined())")
    }

    guard bytes.count >= 10, Array(bytes[0..<6]) == magic else {
      throw fail("not a .npy file (bad magic; expected \\x93NUMPY)")
    }
    let major = bytes[6]
    let headerLength: Int
    let headerStart: Int
    switch major {
    case 1:
      headerLength = Int(bytes[8]) | Int(bytes[9]) << 8
      headerStart = 10
    case 2, 3:
      guard bytes.count >= 12 else { throw fail("truncated header") }
      headerLength = (0..<4).reduce(0) { $0 | Int(bytes[8 + $1]) << (8 * $1) }
      headerStart = 12
    default:
      throw fail("unsupported .npy format version \(major).\(bytes[7]) (supported: 1.0, 2.0, 3.0)")
    }
    guard headerStart + headerLength <= bytes.count else {
      throw fail("truncated header (\(headerLength) bytes announced, \(bytes.count - headerStart) present)")
    }
    let headerBytes = bytes[headerStart..<(headerStart + headerLength)]
    guard let headerText = major == 3 ? String(bytes: headerBytes, encoding: .utf8) : String(bytes: headerBytes, encoding: .isoLatin1)
    else { throw fail("header is not valid text") }
    let header: Header
    do {
      header = try Header(parsing: headerText)
    } catch let problem as HeaderProblem {
      throw fail("malformed header: \(problem.text)")
    }

    let element = try ElementType(descr: header.descr, fail: fail)
    let count: Int
    do {
      count = try Tensor.elementCount(of: header.shape)
    } catch {
      throw fail("shape \(header.shape) is too large")
    }
    let dataStart = headerStart + headerLength
    let (expectedBytes, overflow) = count.multipliedReportingOverflow(by: element.size)
    guard !overflow, bytes.count - dataStart == expectedBytes else {
      throw fail(
        "header says shape \(Tensor.describe(header.shape)) of \(header.descr) (\(overflow ? "too many" : String(expectedBytes)) bytes) "
          + "but \(bytes.count - dataStart) bytes of data follow")
    }

    let payload = bytes[dataStart...]
    // Through float64 when that is the target or the file's type and the target is narrower than
    // float32 (else float64 → float32 → float16 would round twice).
    let throughDouble = S.scalarType == .float64 || (S.scalarType == .float16 && element.kind == .float64)
    let values =
      throughDouble
      ? converted(elements(payload, count, header, element.loadDouble), to: S.self)
      : converted(elements(payload, count, header, element.load), to: S.self)
    return try TypedTensor(shape: header.shape, scalars: values)
  }

  /// The payload's `count` elements in row-major order, each loaded by `load`. Called with
  /// concrete T (float32 or float64), so the loop is specialised.
  private static func elements<T>(
    _ payload: ArraySlice<UInt8>, _ count: Int, _ header: Header, _ load: (UnsafeRawPointer, Int) -> T
  ) -> [T] {
    let values = payload.withUnsafeBytes { raw in (0..<count).map { load(raw.baseAddress!, $0) } }
    return header.fortranOrder && header.shape.count > 1 ? fortranToC(values, shape: header.shape) : values
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
    enum Kind { case float16, float32, float64 }
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

    @inline(__always)
    func load(_ base: UnsafeRawPointer, _ i: Int) -> Float {
      switch kind {
      case .float16:
        let bits = base.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)
        return HalfConversion.float(fromBits: bigEndian ? bits.byteSwapped : bits)
      case .float32:
        let bits = base.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)
        return Float(bitPattern: bigEndian ? bits.byteSwapped : bits)
      case .float64:
        return Float(loadDouble(base, i))
      }
    }

    /// Element i as float64 (exact for every type read).
    @inline(__always)
    func loadDouble(_ base: UnsafeRawPointer, _ i: Int) -> Double {
      guard kind == .float64 else { return Double(load(base, i)) }
      let bits = base.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self)
      return Double(bitPattern: bigEndian ? bits.byteSwapped : bits)
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

    private mutating func skipSpace() {
      while position < characters.count, characters[position].isWhitespace { position += 1 }
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
  public static func write(_ tensor: Tensor, to url: URL) throws {
    var payload = Data(capacity: tensor.count * 4)
    for value in tensor.scalars { withUnsafeBytes(of: value.bitPattern.littleEndian) { payload.append(contentsOf: $0) } }
    try AtomicFile.write(encode(descr: "<f4", shape: tensor.shape, payload: payload), to: url)
  }

  /// Writes int64 indices (e.g. max-pool positions) as little-endian `<i8` in C order.
  public static func write(indices: [Int64], shape: [Int], to url: URL) throws {
    precondition(indices.count == shape.reduce(1, *))
    var payload = Data(capacity: indices.count * 8)
    for value in indices { withUnsafeBytes(of: value.littleEndian) { payload.append(contentsOf: $0) } }
    try AtomicFile.write(encode(descr: "<i8", shape: shape, payload: payload), to: url)
  }

  /// A complete .npy file: version 1.0 (2.0 when the header needs it), header padded so the data
  /// starts on a 64-byte boundary.
  static func encode(descr: String, shape: [Int], payload: Data) -> Data {
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
