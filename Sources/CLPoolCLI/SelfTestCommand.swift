import ArgumentParser
import CLPool
import Foundation

struct SelfTestCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "selftest",
    abstract: "Cross-check every operation on every backend against a float64 reference.",
    usage: "clpool selftest [--backend <backend>] [--filter <filter>] [<options>]",
    discussion: """
      Runs the standard grid (spatial 1x1 to >= 2^20 elements per plane, ranks 3-5, both \
      layouts, ties/NaN/Inf for max, dense with every activation, the ResNet-50 head, backward \
      passes, ragged batches, float16 and float64 storage) on the CPU backend and every OpenCL \
      device, with output buffers poisoned first. A storage type a device lacks (float64 without \
      cl_khr_fp64) is reported as skipped, with the reason. Exit 0 only if no case fails.

      Examples:
        clpool selftest
        clpool selftest --backend opencl --filter 'max nhwc' --seed 42
      """)

  @OptionGroup var backendOptions: BackendOptionGroup

  @Flag(help: "Print one JSON document instead of the table.")
  var json = false

  @Option(help: "Seed for the random data (default: a fresh one, printed in the summary).")
  var seed: UInt64?

  @Option(help: "Run only cases whose description contains this text (e.g. 'max nhwc').")
  var filter: String?

  @Option(help: "standard, or reduced: a small grid that still reaches every kernel and its edges, for simulators such as Oclgrind.")
  var grid: Grid = .standard

  enum Grid: String, ExpressibleByArgument {
    case standard, reduced
    var cases: [SelfTestCase] { self == .standard ? SelfTestCase.standard : SelfTestCase.reduced }
  }

  @Flag(help: "Do not poison output buffers first (for Oclgrind's --uninitialized check, to which clEnqueueFillBuffer's poison does not count as initialisation).")
  var noPoison = false

  @Option(
    name: .customLong("repeat"),
    help: "Run the whole grid this many times in one process, reporting resident memory and live OpenCL objects after each round (a leak check).")
  var rounds = 1

  func validate() throws {
    guard rounds >= 1 else { throw ValidationError("--repeat must be at least 1") }
  }

  private func runRounds() throws {
    let selection = try backendOptions.selection()
    let backends = try selection.makeAllBackends(options: BackendOptions(poisonOutputs: !noPoison))
    let seed = self.seed ?? UInt64.random(in: 0...UInt64.max)
    let cases = grid.cases.filter { filter == nil || $0.description.contains(filter!) }
    guard !cases.isEmpty else {
      throw CLPoolError.invalidArgument("--filter '\(filter ?? "")' matches no case (case names look like 'avg nchw 8x2048x7x7')")
    }
    let table = ResultTable(json: json)
    table.header(cases: cases.count, backends: backends, seed: seed)
    let start = Date()
    var results: [SelfTestResult] = []
    for round in 1...rounds {
      for testCase in cases {
        let prepared = try PreparedSelfTest(testCase, seed: seed)
        for backend in backends {
          let result = prepared.run(on: backend)
          results.append(result)
          if round == 1 { table.row(result) }
        }
      }
      if rounds > 1 && !json {
        let resident = ResourceUsage.residentBytes().map { String(format: "%.1f MiB", Double($0) / 1_048_576) } ?? "n/a"
        print("round \(round): resident memory \(resident), live OpenCL objects \(OpenCLDiagnostics.liveObjects)")
      }
    }
    let failed = results.filter(\.failed).count
    table.summary(results, backends: backends, seed: seed, seconds: Date().timeIntervalSince(start))
    if failed > 0 { throw ExitCode(1) }
  }

  func run() throws {
    try runRounds()
    // The backends are gone now: every OpenCL object they made must be released with them.
    if rounds > 1 && !json { print("live OpenCL objects after releasing the backends: \(OpenCLDiagnostics.liveObjects)") }
  }
}

/// The selftest's human table or JSON document.
private struct ResultTable {
  let json: Bool

  private func pad(_ text: String, _ width: Int) -> String {
    text.count >= width ? String(text.prefix(width)) : text + String(repeating: " ", count: width - text.count)
  }

  private func formatError(_ value: Double) -> String {
    value.isFinite ? String(format: "%.2e", value) : "inf"
  }

  func header(cases: Int, backends: [any Backend], seed: UInt64) {
    guard !json else { return }
    print("clpool selftest: \(cases) cases x \(backends.count) backends, seed \(seed)")
    for backend in backends { print("  backend \(backend.label)") }
    print(
      pad("BACKEND", 7) + "  " + pad("DEVICE", 24) + "  " + pad("OP", 26) + "  " + pad("SHAPE", 18) + "  "
        + pad("MAX ERR", 9) + "  " + pad("TOL", 9) + "  " + pad("TIME", 9) + "  RESULT")
  }

  func row(_ result: SelfTestResult) {
    guard !json else { return }
    let (kind, device) = splitLabel(result.backend)
    let line =
      pad(kind, 7) + "  " + pad(device, 24) + "  " + pad(result.testCase.label, 26) + "  "
      + pad(result.testCase.shapeDescription, 18) + "  " + pad(formatError(result.outcome.maxError), 9)
      + "  " + pad(formatError(result.outcome.tolerance), 9) + "  "
      + pad(String(format: "%.4f s", result.seconds), 9) + "  " + (result.skipped != nil ? "SKIP" : result.passed ? "PASS" : "FAIL")
    print(line)
    if let reason = result.skipped { print("    skipped: \(reason)") }
    if let mismatch = result.outcome.mismatch { print("    \(mismatch)") }
    fflush(nil)  // rows appear as cases finish, also through a pipe
  }

  func summary(_ results: [SelfTestResult], backends: [any Backend], seed: UInt64, seconds: Double) {
    let failed = results.filter(\.failed).count
    let skipped = results.filter { $0.skipped != nil }.count
    if json {
      try? printJSON(SelfTestReport(results: results, backends: backends, seed: seed, seconds: seconds))
      return
    }
    print("")
    for backend in backends {
      let mine = results.filter { $0.backend == backend.label }
      let slowest = mine.max { $0.seconds < $1.seconds }
      let slowestText = slowest.map { String(format: "slowest %@ %@ %.3f s", $0.testCase.label, Tensor.describe($0.testCase.shape), $0.seconds) } ?? ""
      print("  \(backend.label): \(mine.filter(\.passed).count)/\(mine.count) passed, \(slowestText)")
      print("    storage types: " + typeReport(mine))
    }
    let cache = ProgramCache.shared.statistics
    if backends.contains(where: { $0.kind == .opencl }) {
      print(String(
        format: "OpenCL programs: %d compiled, %d from the disk cache, %d from memory, %.2f s",
        cache.sourceBuilds, cache.diskHits, cache.memoryHits, ProgramCache.shared.secondsSpent))
    }
    print(String(format: "seed %llu, %.1f s", seed, seconds))
    print("selftest: \(results.count - failed - skipped) passed, \(failed) failed, \(skipped) skipped")
  }

  /// Which storage types a backend ran (and how many of their cases passed) and which it
  /// skipped, with the reason.
  private func typeReport(_ results: [SelfTestResult]) -> String {
    ScalarType.allCases.compactMap { type in
      let mine = results.filter { $0.testCase.scalarType == type }
      guard !mine.isEmpty else { return nil }
      if let reason = mine.first(where: { $0.skipped != nil })?.skipped { return "\(type.rawValue) skipped (\(reason))" }
      return "\(type.rawValue) ran (\(mine.filter(\.passed).count)/\(mine.count) passed)"
    }.joined(separator: ", ")
  }

  private func splitLabel(_ label: String) -> (String, String) {
    guard let colon = label.firstIndex(of: ":") else { return (label, "") }
    return (String(label[..<colon]), label[label.index(after: colon)...].trimmingCharacters(in: .whitespaces))
  }
}

private struct SelfTestReport: Encodable {
  let seed: UInt64
  let seconds: Double
  let backends: [String]
  let passed: Int
  let failed: Int
  let skipped: Int
  let results: [SelfTestResult]

  init(results: [SelfTestResult], backends: [any Backend], seed: UInt64, seconds: Double) {
    self.seed = seed
    self.seconds = seconds
    self.backends = backends.map(\.label)
    passed = results.filter(\.passed).count
    failed = results.filter(\.failed).count
    skipped = results.count - passed - failed
    self.results = results
  }
}
