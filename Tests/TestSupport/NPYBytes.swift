import Foundation

/// Builds .npy bytes by hand (independently of `NPY.encode`) for any version, dtype and order.
public enum NPYBytes {
  public static func file(version: UInt8 = 1, descr: String, fortran: Bool = false, shape: [Int], payload: [UInt8]) -> Data {
    let shapeText = shape.count == 1 ? "(\(shape[0]),)" : "(\(shape.map(String.init).joined(separator: ", ")))"
    let header = "{'descr': '\(descr)', 'fortran_order': \(fortran ? "True" : "False"), 'shape': \(shapeText), }\n"
    var bytes: [UInt8] = [0x93] + Array("NUMPY".utf8) + [version, 0]
    let length = header.utf8.count
    bytes += version == 1 ? [UInt8(length & 0xFF), UInt8(length >> 8)] : [UInt8(length & 0xFF), UInt8(length >> 8 & 0xFF), 0, 0]
    return Data(bytes + Array(header.utf8) + payload)
  }

  public static func float32(_ values: [Float], bigEndian: Bool = false) -> [UInt8] {
    values.flatMap { value -> [UInt8] in
      let bits = bigEndian ? value.bitPattern.bigEndian : value.bitPattern.littleEndian
      return withUnsafeBytes(of: bits) { Array($0) }
    }
  }

  public static func float64(_ values: [Double], bigEndian: Bool = false) -> [UInt8] {
    values.flatMap { value -> [UInt8] in
      let bits = bigEndian ? value.bitPattern.bigEndian : value.bitPattern.littleEndian
      return withUnsafeBytes(of: bits) { Array($0) }
    }
  }

  /// A header, then `bytes` bytes of junk (for files whose header lies about their data).
  public static func file(descr: String, shape: [Int], bytes: Int) -> Data {
    file(descr: descr, shape: shape, payload: (0..<bytes).map { UInt8(truncatingIfNeeded: $0 &* 37) })
  }

  public static func float32File(shape: [Int], values: [Float]) -> Data {
    file(descr: "<f4", shape: shape, payload: float32(values))
  }
}
