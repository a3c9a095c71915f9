import CLPool
import Foundation
import TestSupport
import Testing

@Suite struct NPYTests {
  @Test func readsEveryVersionDtypeAndByteOrder() throws {
    let values: [Float] = [1, -2.5, 0.125, 3, .infinity, -0.0]
    let cases: [(UInt8, String, [UInt8])] = [
      (1, "<f4", NPYBytes.float32(values)),
      (2, ">f4", NPYBytes.float32(values, bigEndian: true)),
      (3, "<f8", NPYBytes.float64(values.map(Double.init))),
      (1, ">f8", NPYBytes.float64(values.map(Double.init), bigEndian: true)),
      // float16 bits of the same values: 1, -2.5, 0.125, 3, inf, -0
      (1, "<f2", [0x00, 0x3C, 0x00, 0xC1, 0x00, 0x30, 0x00, 0x42, 0x00, 0x7C, 0x00, 0x80]),
      (2, ">f2", [0x3C, 0x00, 0xC1, 0x00, 0x30, 0x00, 0x42, 0x00, 0x7C, 0x00, 0x80, 0x00]),
    ]
    for (version, descr, payload) in cases {
      let tensor = try NPY.decodeTensor(NPYBytes.file(version: version, descr: descr, shape: [2, 3], payload: payload), name: "t.npy")
      #expect(tensor.shape == [2, 3], "\(descr) v\(version)")
      #expect(tensor.scalars.map(\.bitPattern) == values.map(\.bitPattern), "\(descr) v\(version)")
    }
  }

  @Test func float16SubnormalsAndNaN() throws {
    let payload: [UInt8] = [0x01, 0x00, 0xFF, 0x03, 0x00, 0x7E]  // smallest subnormal, largest subnormal, NaN
    let tensor = try NPY.decodeTensor(NPYBytes.file(descr: "<f2", shape: [3], payload: payload), name: "h.npy")
    #expect(tensor.scalars[0] == 0x1p-24)
    #expect(tensor.scalars[1] == 1023 * 0x1p-24)
    #expect(tensor.scalars[2].isNaN)
  }

  /// Reading into another storage type rounds once from the file's type: float64 keeps what
  /// float32 cannot, and float64 → float16 does not pass through float32 (which would round
  /// 1 + 2^-11 + 2^-40 to 1 and then to the tie's even neighbour 1, instead of up).
  @Test func readsIntoEachStorageTypeRoundingOnce() throws {
    let value = 1 + 0x1p-11 + 0x1p-40
    let file = NPYBytes.file(descr: "<f8", fortran: true, shape: [2, 2], payload: NPYBytes.float64([value, 3, 2, 4]))
    #expect(try NPY.decodeTensor(file, name: "d.npy", as: Double.self).scalars == [value, 2, 3, 4])
    #expect(try NPY.decodeTensor(file, name: "d.npy", as: Float16.self).scalars == [1 + 0x1p-10, 2, 3, 4])
    #expect(try NPY.decodeTensor(file, name: "d.npy", as: Float.self).scalars == [Float(value), 2, 3, 4])
    let halves = NPYBytes.file(descr: ">f2", shape: [2], payload: [0x3C, 0x01, 0x7C, 0x00])  // 1 + 2^-10, +Inf
    #expect(try NPY.decodeTensor(halves, name: "h.npy", as: Double.self).scalars == [1 + 0x1p-10, .infinity])
  }

  @Test func fortranOrderIsTransposedIntoCOrder() throws {
    // C-order [[[0,1],[2,3],[4,5]],[[6,7],[8,9],[10,11]]] of shape (2,3,2) stored column-major.
    let shape = [2, 3, 2]
    var columnMajor = [Float](repeating: 0, count: 12)
    for i in 0..<2 { for j in 0..<3 { for k in 0..<2 { columnMajor[i + 2 * j + 6 * k] = Float(i * 6 + j * 2 + k) } } }
    let tensor = try NPY.decodeTensor(NPYBytes.file(descr: "<f4", fortran: true, shape: shape, payload: NPYBytes.float32(columnMajor)), name: "f.npy")
    #expect(tensor.scalars == (0..<12).map(Float.init))
  }

  @Test func writesWhatNumPyReadsAndRoundTrips() throws {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("npy-\(UUID())")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: directory) }
    let tensor = try Tensor(shape: [3, 1, 5], scalars: (0..<15).map { Float($0) * 0.5 - 3 })
    let url = directory.appendingPathComponent("t.npy")
    try NPY.write(tensor, to: url)
    let bytes = try Data(contentsOf: url)
    #expect(bytes.prefix(8) == Data([0x93] + Array("NUMPY".utf8) + [1, 0]))
    #expect((10 + Int(bytes[8]) + Int(bytes[9]) * 256) % 64 == 0, "data starts on a 64-byte boundary")
    #expect(try NPY.readTensor(at: url) == tensor)
    try NPY.write(indices: [7, -1, 3], shape: [3], to: directory.appendingPathComponent("i.npy"))
    let indexBytes = try Data(contentsOf: directory.appendingPathComponent("i.npy"))
    #expect(String(decoding: indexBytes.prefix(70), as: UTF8.self).contains("'descr': '<i8'"))
    #expect(indexBytes.suffix(24) == Data(NPYBytes.float64([]) + [7, 0, 0, 0, 0, 0, 0, 0, 255, 255, 255, 255, 255, 255, 255, 255, 3, 0, 0, 0, 0, 0, 0, 0]))
    let leftovers = try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasSuffix(".tmp") }
    #expect(leftovers.isEmpty)
  }

  @Test(arguments: [
    ("truncated data", NPYBytes.file(descr: "<f4", shape: [2, 3], payload: NPYBytes.float32([1, 2, 3, 4, 5])), "header says shape 2x3 of <f4 (24 bytes) but 20 bytes of data follow"),
    ("bad magic", Data("PK\u{3}\u{4}not numpy at all".utf8), "not a .npy file"),
    ("lying header", NPYBytes.file(descr: "<f4", shape: [4, 4], payload: NPYBytes.float32([1, 2, 3, 4])), "header says shape 4x4"),
    ("unsupported dtype", NPYBytes.file(descr: "<i4", shape: [2], payload: [1, 0, 0, 0, 2, 0, 0, 0]), "unsupported dtype '<i4'"),
    ("object array", NPYBytes.file(descr: "|O", shape: [1], payload: [0, 0, 0, 0, 0, 0, 0, 0]), "object arrays"),
    ("truncated header", Data(NPYBytes.file(descr: "<f4", shape: [1], payload: []).prefix(30)), "truncated header"),
    ("garbled header", Data([0x93] + Array("NUMPY".utf8) + [1, 0, 12, 0] + Array("{'descr': 5}".utf8)), "malformed header"),
    ("huge shape", NPYBytes.file(descr: "<f4", shape: [Int(Int32.max), Int(Int32.max), 8], payload: []), "is too large"),
    ("shape beyond the data", NPYBytes.file(descr: "<f8", shape: [1 << 40, 1 << 20], payload: []), "bytes of data follow"),
    ("version 9", Data([0x93] + Array("NUMPY".utf8) + [9, 0, 0, 0]), "unsupported .npy format version 9.0"),
  ] as [(String, Data, String)])
  func malformedFilesAreClearErrors(_ name: String, _ data: Data, _ message: String) {
    #expect {
      try NPY.decodeTensor(data, name: "bad.npy")
    } throws: { error in
      guard case CLPoolError.invalidInput(let text) = error else { return false }
      return text.hasPrefix("bad.npy: ") && text.contains(message) && !text.contains("\n")
    }
  }
}
