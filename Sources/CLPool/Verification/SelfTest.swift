import Foundation

/// One cross-check: an operation, a shape, a storage type, and how to draw its data, compute its
/// float64 reference and check a backend against it. Cases are data: each is built once by one of
/// the factories in `SelfTestCases.swift`, which fixes the check it runs; nothing is matched at
/// run time.
public struct SelfTestCase: Sendable, CustomStringConvertible {
  /// "avg", "max", "dense", "head", "avg backward", "cam", …
  public let operationName: String
  /// Layout and options, e.g. "nhwc", "out-in relu +bias", "nchw float16 ties/nan/inf".
  public let variant: String
  /// Pooling and head: the channels-first shape [N, C, spatial...] (channels-last cases store the
  /// same values permuted to [N, spatial..., C]). Dense: [N, K, M]. Head: [N, C, spatial..., M].
  /// Ragged: [N, C]. CAM: [C, H, W, M] or, batched, [N, C, H, W, M].
  public let shape: [Int]
  /// Ragged cases: each sample's spatial extent.
  public let extents: [[Int]]
  /// The storage type of inputs and outputs.
  public let scalarType: ScalarType

  typealias Check = @Sendable (any Backend) throws -> CheckOutcome
  /// Draws the case's data from `random`, computes the reference, and returns the check.
  let prepare: @Sendable (inout SplitMix64) throws -> Check

  init(
    _ operationName: String, _ variant: String, _ shape: [Int], extents: [[Int]] = [], scalarType: ScalarType = .float32,
    special: Bool = false, prepare: @escaping @Sendable (inout SplitMix64) throws -> Check
  ) {
    self.operationName = operationName
    var text = variant
    if scalarType != .float32 { text += " \(scalarType.rawValue)" }
    self.variant = special ? text + " ties/nan/inf" : text
    self.shape = shape
    self.extents = extents
    self.scalarType = scalarType
    self.prepare = prepare
  }

  /// The shape as the table prints it; a ragged batch lists its samples' extents.
  public var shapeDescription: String {
    guard !extents.isEmpty else { return Tensor.describe(shape) }
    return "\(Tensor.describe(shape)) [" + extents.map(Tensor.describe).joined(separator: ",") + "]"
  }

  public var description: String { "\(operationName) \(variant) \(shapeDescription)" }

  /// Operation and variant, e.g. "avg nchw": what a row prints before the shape.
  public var label: String { "\(operationName) \(variant)" }
}

/// A case with its inputs drawn and its float64 reference computed, ready to run on backends.
public struct PreparedSelfTest: Sendable {
  public let testCase: SelfTestCase
  private let check: SelfTestCase.Check

  /// Draws the case's data from a generator seeded by `seed` and the case, so one seed
  /// reproduces a whole run and every case gets different data.
  public init(_ testCase: SelfTestCase, seed: UInt64) throws {
    self.testCase = testCase
    var random = SplitMix64(seed: seed ^ testCase.description.hashValueStable)
    check = try testCase.prepare(&random)
  }

  /// Runs the case once on `backend` and checks it; errors become a failed result, a storage
  /// type the backend does not have a skipped one (with the reason).
  public func run(on backend: any Backend) -> SelfTestResult {
    let start = DispatchTime.now().uptimeNanoseconds
    func result(_ outcome: CheckOutcome, skipped: String? = nil) -> SelfTestResult {
      let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9
      return SelfTestResult(testCase: testCase, backend: backend.label, outcome: outcome, seconds: seconds, skipped: skipped)
    }
    do {
      try backend.checkSupport(testCase.scalarType)
    } catch {
      return result(CheckOutcome(maxError: 0, tolerance: 0, mismatch: nil), skipped: "\(error)")
    }
    do {
      return result(try check(backend))
    } catch {
      return result(CheckOutcome(maxError: .infinity, tolerance: 0, mismatch: "error: \(error)"))
    }
  }
}

public struct SelfTestResult: Sendable {
  public let testCase: SelfTestCase
  /// `Backend.label`, e.g. "opencl: pthread-haswell-AMD EPYC (Portable Computing Language)".
  public let backend: String
  public let outcome: CheckOutcome
  public let seconds: Double
  /// Why the case did not run on this backend (a storage type its device lacks); nil if it ran.
  public let skipped: String?
  public var passed: Bool { skipped == nil && outcome.passed }
  public var failed: Bool { skipped == nil && !outcome.passed }
}

/// A result as `clpool selftest --json` reports it.
extension SelfTestResult: Encodable {
  private enum CodingKeys: String, CodingKey {
    case backend, operation, variant, shape, extents, scalarType, maxError, tolerance, seconds, passed, skipped, mismatch
  }

  public func encode(to encoder: any Encoder) throws {
    var container = encoder.container(keyedBy: CodingKeys.self)
    try container.encode(backend, forKey: .backend)
    try container.encode(testCase.operationName, forKey: .operation)
    try container.encode(testCase.variant, forKey: .variant)
    try container.encode(testCase.shape, forKey: .shape)
    try container.encodeIfPresent(testCase.extents.isEmpty ? nil : testCase.extents, forKey: .extents)
    try container.encode(testCase.scalarType.rawValue, forKey: .scalarType)
    try container.encode(outcome.maxError, forKey: .maxError)
    try container.encode(outcome.tolerance, forKey: .tolerance)
    try container.encode(seconds, forKey: .seconds)
    try container.encode(passed, forKey: .passed)
    try container.encodeIfPresent(skipped, forKey: .skipped)
    try container.encodeIfPresent(outcome.mismatch, forKey: .mismatch)
  }
}

extension String {
  /// FNV-1a of the UTF-8 bytes: unlike `hashValue`, the same in every process.
  var hashValueStable: UInt64 {
    utf8.reduce(0xcbf2_9ce4_8422_2325) { ($0 ^ UInt64($1)) &* 0x0000_0100_0000_01B3 }
  }
}
