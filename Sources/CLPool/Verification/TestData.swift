/// Input data for cross-checks: fresh random values, with optional planes of special values.
public enum TestData {
  public enum Special: Sendable {
    /// Values on a 0.25 grid (many ties), planes with NaN of both signs, with two +Inf, all −Inf,
    /// and planes whose maximum is zero, −0 and +0 in random places (the first zero decides the
    /// sign).
    case forMax
    /// Planes with NaN of both signs, +Inf, −Inf, and both infinities (whose mean is NaN).
    case forAverage
  }

  /// `tensor` in storage type S: rounded to nearest for float16; for float64, unless `keepGrid`
  /// (data whose ties must stay ties), with low-order bits float32 cannot hold, so a backend that
  /// computes float64 in float32 fails its check.
  public static func stored<S: StorageScalar>(
    _ tensor: Tensor, as _: S.Type, keepGrid: Bool, random: inout SplitMix64
  ) throws -> TypedTensor<S> {
    guard S.scalarType == .float64, !keepGrid else { return TypedTensor(converting: tensor) }
    let widened = tensor.scalars.map { Double($0) * (1 + Double(random.nextFloat(in: -1..<1)) * 0x1p-30) }
    return TypedTensor(converting: try TypedTensor<Double>(shape: tensor.shape, scalars: widened))
  }

  public static func uniform(_ shape: [Int], in range: Range<Float>, random: inout SplitMix64) throws -> Tensor {
    let count = try Tensor.elementCount(of: shape)
    var values = [Float](repeating: 0, count: count)
    for i in 0..<count { values[i] = random.nextFloat(in: range) }
    return try Tensor(shape: shape, scalars: values)
  }

  /// `tensor` with a share `rate` of its elements replaced by NaNs, each of its own sign and
  /// payload, and half as many by infinities (which make more NaNs: ∞ − ∞, 0 · ∞): where two NaNs
  /// meet in a sum, which one an instruction keeps depends on its operand order, so these data show
  /// whether a NaN output's bits depend on the path that computed it.
  public static func withNaNs(_ tensor: Tensor, rate: Double, random: inout SplitMix64) throws -> Tensor {
    var scalars = tensor.scalars
    for i in scalars.indices {
      let draw = Double(random.next() >> 11) * 0x1p-53
      let (payload, negative) = (UInt32(truncatingIfNeeded: random.next()) & 0x3F_FFFF, random.next() & 1 == 1)
      if draw < rate {
        scalars[i] = Float(bitPattern: 0x7FC0_0000 | payload | (negative ? 0x8000_0000 : 0))
      } else if draw < rate * 1.5 {
        scalars[i] = negative ? -.infinity : .infinity
      }
    }
    return try Tensor(shape: tensor.shape, scalars: scalars)
  }

  /// Values uniform in [−1, 3) (a non-zero mean makes accumulation error visible), drawn for the
  /// channels-first shape [N, C, spatial...] and stored in `layout`.
  public static func poolInput(
    _ channelsFirstShape: [Int], layout: Layout, special: Special?, random: inout SplitMix64
  ) throws -> Tensor {
    let (batch, channels) = (channelsFirstShape[0], channelsFirstShape[1])
    let spatial = channelsFirstShape[2...].reduce(1, *)
    var planes = try uniform(channelsFirstShape, in: -1..<3, random: &random).scalars
    if let special {
      for plane in 0..<(batch * channels) {
        let base = plane * spatial
        func at(_ value: Float) { planes[base + Int(random.next() % UInt64(spatial))] = value }
        if special == .forMax {
          for s in 0..<spatial { planes[base + s] = (planes[base + s] * 4).rounded() / 4 }
        }
        switch (plane % 6, special) {
        case (1, _): at(.nan); at(-.nan)  // both signs: a kernel on the bits sees them apart
        case (2, _): at(.infinity); at(.infinity)
        case (3, .forMax): for s in 0..<spatial { planes[base + s] = -.infinity }
        case (3, .forAverage): at(.infinity); at(-.infinity)
        case (4, _): at(-.infinity)
        case (5, .forMax):
          for s in 0..<spatial { planes[base + s] = -abs(planes[base + s]) - 0.25 }
          at(-0.0); at(0.0)
        default: break
        }
      }
    }
    guard layout == .channelsLast else { return try Tensor(shape: channelsFirstShape, scalars: planes) }
    var permuted = [Float](repeating: 0, count: planes.count)
    for n in 0..<batch {
      for c in 0..<channels {
        for s in 0..<spatial {
          permuted[(n * spatial + s) * channels + c] = planes[(n * channels + c) * spatial + s]
        }
      }
    }
    let shape = [batch] + Array(channelsFirstShape[2...]) + [channels]
    return try Tensor(shape: shape, scalars: permuted)
  }
}

/// A small, fast, seedable generator (SplitMix64), so every run draws the same data.
public struct SplitMix64: RandomNumberGenerator, Sendable {
  private var state: UInt64

  public init(seed: UInt64) { state = seed }

  public mutating func next() -> UInt64 {
    state &+= 0x9E37_79B9_7F4A_7C15
    var z = state
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
  }

  /// Uniform in `range`, on a 2^-24 grid.
  public mutating func nextFloat(in range: Range<Float>) -> Float {
    let unit = Float(next() >> 40) * 0x1p-24
    return range.lowerBound + unit * (range.upperBound - range.lowerBound)
  }
}
