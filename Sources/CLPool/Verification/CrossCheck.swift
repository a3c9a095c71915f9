/// How far a backend's output is from the float64 reference, against SPEC.md's tolerances.
public struct CheckOutcome: Sendable {
  /// In the metric's units: pooling |out − ref| / mean|x| of the plane; max pooling |out − ref|;
  /// dense ‖out − ref‖ / ‖ref‖.
  public var maxError: Double
  public var tolerance: Double
  /// The first element that failed, described; nil when every element passed.
  public var mismatch: String?

  public var passed: Bool { mismatch == nil }
}

/// SPEC.md's acceptance rules, shared by `clpool selftest` and the tests. Tolerances depend on
/// the storage type: SPEC.md's for float32; float16 (float32 arithmetic) adds the rounding of each
/// output to half (and, for dense and head, of stored intermediates); float64 is held to float64
/// accuracy.
public enum CrossCheck {
  /// |out − ref| ≤ 4e-6 · mean|x| of each plane (float32 and float16; 1e-12 for float64).
  public static let poolTolerance = 4e-6
  /// ‖out − ref‖ / ‖ref‖ ≤ 1e-5 (Frobenius; 2e-3 for float16, 1e-12 for float64).
  public static let denseTolerance = 1e-5

  public static func poolTolerance(_ type: ScalarType) -> Double { type == .float64 ? 1e-12 : poolTolerance }

  public static func denseTolerance(_ type: ScalarType) -> Double {
    switch type {
    case .float16: return 2e-3  // outputs (and the head's pooled rows) rounded to half: 2^-11 each
    case .float32: return denseTolerance
    case .float64: return 1e-12
    }
  }

  /// The relative error of storing a value in `type`, rounding to nearest (half an ulp). Added to
  /// the pooling bound for float16, whose rounding is far above the sum's error.
  static func storageRounding(_ type: ScalarType) -> Double { type == .float16 ? 0x1p-11 : 0 }

  /// Non-finite references (NaN, ±Inf) must be matched exactly.
  public static func averagePool<S: BinaryFloatingPoint>(
    _ output: [S], reference: (mean: [Double], meanAbs: [Double]), type: ScalarType = .float32
  ) -> CheckOutcome {
    let tolerance = poolTolerance(type)
    var outcome = CheckOutcome(maxError: 0, tolerance: tolerance, mismatch: nil)
    guard output.count == reference.mean.count else {
      outcome.mismatch = "\(output.count) outputs, expected \(reference.mean.count)"
      return outcome
    }
    for (i, stored) in output.enumerated() {
      let (value, expected) = (Double(stored), reference.mean[i])
      let error: Double
      if !expected.isFinite || !value.isFinite {
        error = sameNonFinite(value, expected) ? 0 : .infinity
      } else {
        // The storage rounding is allowed on top, as a share of the plane's scale.
        let difference = max(0, abs(value - expected) - storageRounding(type) * abs(expected))
        error = reference.meanAbs[i] > 0 ? difference / reference.meanAbs[i] : (difference == 0 ? 0 : .infinity)
      }
      outcome.maxError = max(outcome.maxError, error)
      if outcome.mismatch == nil, !(error <= tolerance) {
        outcome.mismatch = "plane \(i): got \(value), expected \(expected) (mean|x| \(reference.meanAbs[i]))"
      }
    }
    return outcome
  }

  /// Maxima are exact (a max is one of the inputs); indices, when given, must equal the
  /// reference's first-max index.
  public static func maxPool<S: BinaryFloatingPoint>(
    _ output: [S], indices: [Int64]?, reference: (values: [Double], indices: [Int64])
  ) -> CheckOutcome {
    var outcome = CheckOutcome(maxError: 0, tolerance: 0, mismatch: nil)
    guard output.count == reference.values.count,
      indices == nil || indices!.count == reference.indices.count
    else {
      outcome.mismatch = "\(output.count) outputs, expected \(reference.values.count)"
      return outcome
    }
    for (i, value) in output.enumerated() {
      let expected = reference.values[i]
      let matches = Double(value) == expected || (value.isNaN && expected.isNaN)
      if !matches {
        let error = abs(Double(value) - expected)
        outcome.maxError = max(outcome.maxError, error.isNaN ? .infinity : error)
      }
      if outcome.mismatch == nil, !matches {
        outcome.mismatch = "plane \(i): got \(value), expected \(expected)"
      } else if outcome.mismatch == nil, let indices, indices[i] != reference.indices[i] {
        outcome.maxError = .infinity
        outcome.mismatch = "plane \(i): index \(indices[i]), expected \(reference.indices[i])"
      }
    }
    return outcome
  }

  /// Batch invariance: each sample's output computed alone (`alone`: sample index and its row)
  /// must be its row of `batch` bit for bit, NaNs included. maxError counts the differing outputs.
  public static func sameBits<S: BinaryFloatingPoint>(_ batch: [S], alone: [(sample: Int, row: [S])]) -> CheckOutcome {
    func bytes(_ value: S) -> [UInt8] { withUnsafeBytes(of: value) { Array($0) } }
    func hex(_ value: S) -> String { bytes(value).reversed().map { String(format: "%02x", $0) }.joined() }
    var outcome = CheckOutcome(maxError: 0, tolerance: 0, mismatch: nil)
    for (sample, row) in alone {
      guard batch.count >= (sample + 1) * row.count else {
        outcome.maxError = .infinity
        outcome.mismatch = "sample \(sample): \(row.count) outputs alone, \(batch.count) for the whole batch"
        return outcome
      }
      for (j, value) in row.enumerated() where bytes(value) != bytes(batch[sample * row.count + j]) {
        outcome.maxError += 1
        if outcome.mismatch == nil {
          outcome.mismatch = "sample \(sample), output \(j): 0x\(hex(batch[sample * row.count + j])) in the batch, 0x\(hex(value)) alone"
        }
      }
    }
    return outcome
  }

  /// Every element must equal the reference rounded to float32 (NaN matching NaN).
  public static func exact(_ output: [Float], reference: [Double]) -> CheckOutcome {
    var outcome = CheckOutcome(maxError: 0, tolerance: 0, mismatch: nil)
    guard output.count == reference.count else {
      outcome.mismatch = "\(output.count) outputs, expected \(reference.count)"
      return outcome
    }
    for (i, value) in output.enumerated() {
      let expected = Float(reference[i])
      guard value.bitPattern != expected.bitPattern, !(value.isNaN && expected.isNaN), value != expected else { continue }
      outcome.maxError = max(outcome.maxError, abs(Double(value) - reference[i]).isNaN ? .infinity : abs(Double(value) - reference[i]))
      if outcome.mismatch == nil { outcome.mismatch = "element \(i): got \(value), expected \(expected)" }
    }
    return outcome
  }

  /// Relative Frobenius error over the finite reference elements; an output is NaN exactly where
  /// the reference is. With `magnitudes` (each output's Σ|w|·|x|), the error is relative to their
  /// norm instead of the reference's: the bound a dot product of few terms can keep when its
  /// terms cancel (a 3-channel map whose value is near 0), where ‖ref‖ would demand more than
  /// float32 has.
  public static func dense<S: BinaryFloatingPoint>(
    _ output: [S], reference: [Double], magnitudes: [Double]? = nil, type: ScalarType = .float32
  ) -> CheckOutcome {
    let tolerance = denseTolerance(type)
    var outcome = CheckOutcome(maxError: 0, tolerance: tolerance, mismatch: nil)
    guard output.count == reference.count, magnitudes.map({ $0.count == reference.count }) ?? true else {
      outcome.mismatch = "\(output.count) outputs, expected \(reference.count)"
      return outcome
    }
    var differenceSquares = 0.0
    var referenceSquares = 0.0
    for (i, stored) in output.enumerated() {
      let (value, expected) = (Double(stored), reference[i])
      if !expected.isFinite || !value.isFinite {
        if outcome.mismatch == nil, !sameNonFinite(value, expected) {
          outcome.mismatch = "element \(i): got \(value), expected \(expected)"
        }
        continue
      }
      differenceSquares += (value - expected) * (value - expected)
      let scale = magnitudes?[i] ?? expected
      referenceSquares += scale * scale
    }
    outcome.maxError =
      referenceSquares > 0
      ? (differenceSquares / referenceSquares).squareRoot() : differenceSquares.squareRoot()
    if outcome.mismatch == nil, !(outcome.maxError <= tolerance) {
      outcome.mismatch = "relative Frobenius error \(outcome.maxError)"
    }
    if outcome.mismatch != nil, outcome.maxError == 0 { outcome.maxError = .infinity }
    return outcome
  }

  private static func sameNonFinite(_ value: Double, _ expected: Double) -> Bool {
    (value.isNaN && expected.isNaN) || value == expected
  }
}
