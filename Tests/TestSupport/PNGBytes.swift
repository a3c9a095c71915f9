/// PNG files edited by hand, for hostile-input tests.
public enum PNGBytes {
  /// `png` with its IHDR width and height replaced (and the chunk's CRC fixed, so only the size
  /// is wrong).
  public static func withDimensions(_ png: [UInt8], _ width: UInt32, _ height: UInt32) -> [UInt8] {
    var bytes = png
    for (offset, value) in [(16, width), (20, height)] {
      for byte in 0..<4 { bytes[offset + byte] = UInt8(truncatingIfNeeded: value >> (24 - 8 * UInt32(byte))) }
    }
    let crc = crc32(bytes[12..<29])  // the chunk type and its 13 data bytes
    for byte in 0..<4 { bytes[29 + byte] = UInt8(truncatingIfNeeded: crc >> (24 - 8 * UInt32(byte))) }
    return bytes
  }

  public static func crc32(_ bytes: ArraySlice<UInt8>) -> UInt32 {
    var crc: UInt32 = 0xFFFF_FFFF
    for byte in bytes {
      crc ^= UInt32(byte)
      for _ in 0..<8 { crc = crc & 1 == 1 ? (crc >> 1) ^ 0xEDB8_8320 : crc >> 1 }
    }
    return ~crc
  }
}
