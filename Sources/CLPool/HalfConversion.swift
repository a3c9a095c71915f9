/// float16 → float32 without the compiler's conversion, which on x86-64 without F16C is a
/// library call per element (~9 ns: a float16 GAP of ResNet-50's [256,2048,7,7] spent 220 ms just
/// widening). Every half is exactly a float, so this is exact.
enum HalfConversion {
  /// One half, from its bits, branch-free (so loops over it vectorise): the magnitude's bits
  /// shifted into float position and scaled by 2^112 re-bias the exponent, for normals and
  /// subnormals alike; Inf and NaN take the float exponent directly.
  @inline(__always)
  static func float(fromBits bits: UInt16) -> Float {
    let magnitude = UInt32(bits & 0x7FFF) << 13
    let sign = UInt32(bits & 0x8000) << 16
    let finite = (Float(bitPattern: magnitude) * 0x1p112).bitPattern
    return Float(bitPattern: (magnitude >= 0x7C00 << 13 ? magnitude | 0x7F80_0000 : finite) | sign)
  }

  /// On every core: the widening runs at memory speed only with both.
  static func widen(_ halves: UnsafeBufferPointer<Float16>, into out: UnsafeMutableBufferPointer<Float>) {
    precondition(out.count >= halves.count)
    parallelFor(halves.count, grain: 1 << 16) { range in
      for i in range { out[i] = float(fromBits: halves[i].bitPattern) }
    }
  }

  static func widen(_ halves: UnsafeBufferPointer<Float16>) -> [Float] {
    [Float](unsafeUninitializedCapacity: halves.count) { out, initialized in
      widen(halves, into: out)
      initialized = halves.count
    }
  }
}
