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

/// SPEC.md's acceptance rules, shared by `clpool selftest` and the tests.
public enum CrossCheck {
  /// |out − ref| ≤ 4e-6 · mean|x| of each plane.
  public static let poolTolerance = 4e-6
  /// ‖out − ref‖ / ‖ref‖ ≤ 1e-5 (Frobenius).
  public static let denseTolerance = 1e-5

  /// Non-finite references (NaN, ±Inf) must be matched exactly.
  public static func averagePool(
    _ output: [Float], reference: (mean: [Double], meanAbs: [Double])
  ) -> CheckOutcome {
    var outcome = CheckOutcome(maxError: 0, tolerance: poolTolerance, mismatch: nil)
    guard output.count == reference.mean.count else {
      outcome.mismatch = "\(output.count) outputs, expected \(reference.mean.count)"
      return outcome
    }
    for (i, value) in output.enumerated() {
      let expected = reference.mean[i]
      let error: Double
      if !expected.isFinite || !value.isFinite {
        error = sameNonFinite(Double(value), expected) ? 0 : .infinity
      } else {
        let difference = abs(Double(value) - expected)
        error = reference.meanAbs[i] > 0 ? difference / reference.meanAbs[i] : (difference == 0 ? 0 : .infinity)
      }
      outcome.maxError = max(outcome.maxError, error)
      if outcome.mismatch == nil, !(error <= poolTolerance) {
        outcome.mismatch = "plane \(i): got \(value), expected \(expected) (mean|x| \(reference.meanAbs[i]))"
      }
    }
    return outcome
  }

  /// Maxima are exact (a max is one of the inputs); indices, when given, must equal the
  /// reference's first-max index.
  public static func maxPool(
    _ output: [Float], indices: [Int64]?, reference: (values: [Double], indices: [Int64])
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
  /// the reference is.
  public static func dense(_ output: [Float], reference: [Double]) -> CheckOutcome {
    var outcome = CheckOutcome(maxError: 0, tolerance: denseTolerance, mismatch: nil)
    guard output.count == reference.count else {
      outcome.mismatch = "\(output.count) outputs, expected \(reference.count)"
      return outcome
    }
    var differenceSquares = 0.0
    var referenceSquares = 0.0
    for (i, value) in output.enumerated() {
      let expected = reference[i]
      if !expected.isFinite || !value.isFinite {
        if outcome.mismatch == nil, !sameNonFinite(Double(value), expected) {
          outcome.mismatch = "element \(i): got \(value), expected \(expected)"
        }
        continue
      }
      differenceSquares += (Double(value) - expected) * (Double(value) - expected)
      referenceSquares += expected * expected
    }
    outcome.maxError =
      referenceSquares > 0
      ? (differenceSquares / referenceSquares).squareRoot() : differenceSquares.squareRoot()
    if outcome.mismatch == nil, !(outcome.maxError <= denseTolerance) {
      outcome.mismatch = "relative Frobenius error \(outcome.maxError)"
    }
    if outcome.mismatch != nil, outcome.maxError == 0 { outcome.maxError = .infinity }
    return outcome
  }

  private static func sameNonFinite(_ value: Double, _ expected: Double) -> Bool {
    (value.isNaN && expected.isNaN) || value == expected
  }
}
