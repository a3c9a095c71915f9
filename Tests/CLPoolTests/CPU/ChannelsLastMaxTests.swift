import CLPool
import TestSupport
import Testing

/// The CPU's channels-last max without indices (Sources/CLPoolCPU/pooling_channels.inc, which
/// reads rows wider than a tile a row at a time with one NaN probe for the call, otherwise takes
/// positions in pairs and probes them for NaN together on AVX-512, and for float16
/// pooling_halves.inc, which decides on the halves' bits) gives each channel's first maximum bit
/// for bit: strict `>` in position order, so among equal values, −0 and +0 included, the first
/// wins; NaN of either sign and any payload anywhere gives the type's quiet NaN. Checked against
/// a scalar scan for channel counts that reach full tiles, half tiles, single vectors and scalar
/// tails, odd and even position counts around the 64-position block, infinities, subnormals,
/// channels whose values are all negative (−0 among them), and values whose products overflow the
/// probe (which must only cost a rescan); and the same without NaN and infinities, the inputs the
/// row-at-a-time path keeps (it hands any other to the blocked path).
@Suite struct ChannelsLastMaxTests {
  /// Values on a coarse grid (many ties) with zeros of both signs and infinities; `huge` scales
  /// them near the type's limit; `negative` leaves out +0, +Inf and the positive values;
  /// `zeroMaxima` leaves out the positive values but keeps zeros of both signs, so each channel's
  /// maximum is its first zero, of whichever sign that one has;
  /// `nanEvery` puts a NaN (quiet or signalling, payloads from 1 to all bits) in one position of
  /// every that-many channels, of `nanSign` or of either sign, with `nanSignificand` or any of
  /// those; without `infinities` the ends of the grid are finite.
  static func input<S: StorageScalar>(
    _: S.Type, batch: Int, positions: Int, channels: Int, huge: Bool, negative: Bool = false,
    zeroMaxima: Bool = false, nanEvery: Int, nanSign: FloatingPointSign? = nil,
    nanSignificand: S.RawSignificand? = nil, infinities: Bool = true, random: inout SplitMix64
  ) throws -> TypedTensor<S> {
    let scale: S = huge ? S.greatestFiniteMagnitude / 4 : 1
    var values = (0..<batch * positions * channels).map { _ -> S in
      // -8 ... 3 (-8 ... 0 when negative): a zero in 1 of 12, an infinity at either end, a
      // subnormal, maxima often tied
      let step = Int(random.next() % (negative || zeroMaxima ? 9 : 12)) - 8
      switch step {
      case 0: return negative || random.next() % 2 == 0 ? -S.zero : S.zero
      case -8: return infinities ? -S.infinity : -4 * scale
      case 3: return infinities ? S.infinity : 3 / 2 * scale
      case -7: return S.leastNonzeroMagnitude * S(Int(random.next() % 7) - (negative || zeroMaxima ? 7 : 3))
      default: return S(step) / 2 * scale
      }
    }
    if nanEvery > 0 {
      for n in 0..<batch {
        for c in stride(from: Int(random.next() % UInt64(nanEvery)), to: channels, by: nanEvery) {
          // quiet NaNs with small payloads, and the NaNs next to the infinities and farthest
          // from them (signalling payload 1, every significand bit set)
          let quiet: S.RawSignificand = 1 << (S.significandBitCount - 1)
          let significand: S.RawSignificand
          switch random.next() % 4 {
          case 0: significand = 1
          case 1: significand = quiet | (quiet - 1)
          default: significand = quiet | S.RawSignificand(random.next() % 8)
          }
          let nanBits = nanSignificand ?? significand
          let sign: FloatingPointSign = nanSign ?? (random.next() % 2 == 0 ? .plus : .minus)
          let nan = S(sign: sign, exponentBitPattern: S.infinity.exponentBitPattern, significandBitPattern: nanBits)
          values[(n * positions + Int(random.next() % UInt64(positions))) * channels + c] = nan
        }
      }
    }
    return try TypedTensor(shape: [batch, positions, 1, channels], scalars: values)
  }

  /// The first maximum of each (n, c) by a scalar scan, as bit patterns (NaN: nil).
  static func firstMaxima<S: StorageScalar>(_ x: TypedTensor<S>) -> [S?] {
    let (batch, positions, channels) = (x.shape[0], x.shape[1], x.shape[3])
    var result: [S?] = []
    for n in 0..<batch {
      for c in 0..<channels {
        var best = -S.infinity
        var sawNaN = false
        for q in 0..<positions {
          let v = x.scalars[(n * positions + q) * channels + c]
          if v.isNaN { sawNaN = true }
          if v > best { best = v }
        }
        result.append(sawNaN ? nil : best)
      }
    }
    return result
  }

  static func check<S: StorageScalar>(
    _ type: S.Type, huge: Bool, negative: Bool = false, zeroMaxima: Bool = false, nanSign: FloatingPointSign? = nil,
    nanSignificand: S.RawSignificand? = nil
  ) throws {
    let backend = TestBackends.cpu.backend
    var random = SplitMix64(seed: TestEnvironment.seed)
    for channels in [1, 7, 16, 48, 64, 100, 112, 128, 200, 2053] {
      for (positions, special) in [1, 2, 3, 49, 63, 64, 65, 130].flatMap({ [($0, true), ($0, false)] }) {
        let x = try input(
          type, batch: 2, positions: positions, channels: channels, huge: huge, negative: negative, zeroMaxima: zeroMaxima,
          nanEvery: special ? 5 : 0, nanSign: nanSign, nanSignificand: nanSignificand, infinities: special,
          random: &random)
        let got = try backend.globalMaxPool(x, layout: .channelsLast).scalars
        let expected = firstMaxima(x)
        // Equal and of the same sign: the same bits, zeros and subnormals included; NaN as the
        // type's quiet NaN (0x7e00 for float16), whichever NaN the input held.
        let wrong = got.indices.first { i in
          guard let want = expected[i] else {
            let (bits, quietNaN): ([UInt8], [UInt8]) = (withUnsafeBytes(of: got[i], Array.init), withUnsafeBytes(of: S.nan, Array.init))
            return bits != quietNaN
          }
          return got[i] != want || got[i].sign != want.sign
        }
        #expect(
          wrong == nil,
          "\(S.self), \(channels) channels x \(positions) positions\(huge ? ", near the limit" : "")\(negative ? ", negative" : "")\(zeroMaxima ? ", zero maxima" : "")\(nanSign.map { ", NaNs \($0)" } ?? "")\(nanSignificand.map { " of significand \($0)" } ?? "")\(special ? "" : ", finite"): output \(wrong ?? 0) is \(wrong.map { "\(got[$0])" } ?? ""), not \(wrong.map { expected[$0].map { "\($0)" } ?? "NaN" } ?? "")")
      }
    }
  }

  @Test func float32GivesTheFirstMaximum() throws {
    try Self.check(Float.self, huge: false)
    try Self.check(Float.self, huge: true)
    try Self.check(Float.self, huge: false, negative: true)
    try Self.check(Float.self, huge: false, zeroMaxima: true)
  }

  @Test func float64GivesTheFirstMaximum() throws {
    try Self.check(Double.self, huge: false)
    try Self.check(Double.self, huge: true)
    try Self.check(Double.self, huge: false, negative: true)
    try Self.check(Double.self, huge: false, zeroMaxima: true)
  }

  @Test func float16GivesTheFirstMaximum() throws {
    try Self.check(Float16.self, huge: false)
    try Self.check(Float16.self, huge: true)
    try Self.check(Float16.self, huge: false, negative: true)
    try Self.check(Float16.self, huge: false, zeroMaxima: true)
    // pooling_halves.inc's rows keep the smallest key per channel only once a negative NaN is seen
    try Self.check(Float16.self, huge: false, nanSign: .plus)
    try Self.check(Float16.self, huge: false, nanSign: .minus)
    try Self.check(Float16.self, huge: false, nanSign: .minus, nanSignificand: 1)  // 0xfc01, next to -Inf
  }
}
