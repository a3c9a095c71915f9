import Foundation
import TestSupport
import Testing

/// Runs the built `clpool` binary (or another program), as a user would, and captures what it
/// printed.
struct ClpoolRun {
  let status: Int32
  let stdout: String
  let stderr: String

  /// The `clpool` executable next to the test bundle (`swift build` puts both in one folder).
  static let executable: URL = {
    var directory = Bundle.main.bundleURL
    if directory.pathExtension == "xctest" { directory.deleteLastPathComponent() }
    return directory.appendingPathComponent("clpool")
  }()

  static func run(_ arguments: [String], environment extra: [String: String] = [:], directory: URL? = nil) throws
    -> ClpoolRun
  {
    guard FileManager.default.isExecutableFile(atPath: executable.path) else {
      throw CLIError("clpool is not built at \(executable.path); run 'swift build --product clpool' first")
    }
    return try program(executable, arguments, environment: extra, directory: directory)
  }

  /// Runs any program and captures what it printed; `environment` adds to (or replaces in) this
  /// process's. Output goes to files rather than pipes, so a large output can never block the
  /// child.
  static func program(
    _ program: URL, _ arguments: [String], environment extra: [String: String] = [:], directory: URL? = nil
  ) throws -> ClpoolRun {
    let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("clpool-cli-\(UUID())")
    try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: scratch) }
    let outURL = scratch.appendingPathComponent("stdout"), errURL = scratch.appendingPathComponent("stderr")
    try Data().write(to: outURL)
    try Data().write(to: errURL)
    let process = Process()
    process.executableURL = program
    process.arguments = arguments
    if let directory { process.currentDirectoryURL = directory }
    var environment = ProcessInfo.processInfo.environment
    for (key, value) in extra { environment[key] = value }
    process.environment = environment
    process.standardOutput = try FileHandle(forWritingTo: outURL)
    process.standardError = try FileHandle(forWritingTo: errURL)
    try process.run()
    process.waitUntilExit()
    return ClpoolRun(
      status: process.terminationStatus,
      stdout: try String(contentsOf: outURL, encoding: .utf8),
      stderr: try String(contentsOf: errURL, encoding: .utf8))
  }

  var stderrLines: [Substring] { stderr.split(separator: "\n") }
}

struct CLIError: Error, CustomStringConvertible {
  let description: String
  init(_ description: String) { self.description = description }
}

/// A tool or driver a test needs is not here: in CI that fails the test (CI installs every one),
/// elsewhere the test is skipped with a printed reason. Always false, for `guard found || …`.
func missing(_ what: String, for test: String) -> Bool {
  if TestEnvironment.isCI { Issue.record("\(test): \(what)") }
  print("note: \(test) skipped: \(what)")
  return false
}
