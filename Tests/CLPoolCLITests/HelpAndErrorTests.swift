import Foundation
import TestSupport
import Testing

/// Help that reads well at any terminal width, and errors that say where to look, also as JSON.
@Suite struct HelpAndErrorTests {
  static let subcommands = ["selftest", "devices", "pool", "dense", "head", "cam", "bench"]

  static func help(_ subcommand: String, columns: Int) throws -> ClpoolRun {
    try ClpoolRun.run(["help", subcommand], environment: ["COLUMNS": "\(columns)"])
  }

  @Test(arguments: subcommands)
  func helpHasAnExampleAndFitsTheTerminal(_ subcommand: String) throws {
    let narrow = try Self.help(subcommand, columns: 80)
    #expect(narrow.status == 0, "\(narrow.stderr)")
    #expect(narrow.stdout.contains("Example"), "clpool help \(subcommand) has no example")
    for line in narrow.stdout.split(separator: "\n") {
      #expect(line.count <= 80, "clpool help \(subcommand): a line of \(line.count) columns: \(line)")
    }
    // Prose is written for ArgumentParser's wrapping: on a wide terminal each paragraph of the
    // discussion is one line (a hard newline would break it early). Indented lines are examples.
    let wide = try Self.help(subcommand, columns: 4000).stdout
    let discussion = wide.components(separatedBy: "USAGE:")[0].split(separator: "\n", omittingEmptySubsequences: false).dropFirst()
    for (line, next) in zip(discussion, discussion.dropFirst()) where !line.isEmpty && !next.isEmpty {
      #expect(line.hasPrefix(" ") || next.hasPrefix(" ") || line.hasSuffix(":"), "clpool help \(subcommand): a paragraph broken by a hard newline after '\(line.suffix(30))'")
    }
    // Example command lines are short enough never to wrap: each stays indented.
    var inExamples = false
    for line in narrow.stdout.split(separator: "\n", omittingEmptySubsequences: false) {
      if line.hasPrefix("Example") { inExamples = true } else if line.isEmpty { inExamples = false } else if inExamples {
        #expect(line.hasPrefix("  "), "clpool help \(subcommand): an example wrapped at 80 columns: '\(line)'")
      }
    }
    // Value lists say something about each value, never the value again ("nchw - nchw").
    for line in narrow.stdout.split(separator: "\n") {
      let words = line.split(separator: " ")
      if words.count >= 3, words[1] == "-" { #expect(words[0] != words[2], "\(subcommand): \(line)") }
    }
  }

  @Test func usageErrorsPointAtTheSubcommandsHelp() throws {
    let run = try ClpoolRun.run(["pool", "x.npy", "-o", "y.npy", "--layout", "nwhc"])
    #expect(run.status == 2)
    #expect(run.stderrLines.count == 1 && run.stderr.contains("(see 'clpool help pool')"), "\(run.stderr)")
    let activation = try ClpoolRun.run(["dense", "x.npy", "--weight", "w.npy", "-o", "y.npy", "--activation", "tanh"])
    #expect(activation.status == 2 && activation.stderr.contains("(see 'clpool help dense')"), "\(activation.stderr)")
    let backend = try ClpoolRun.run(["devices", "--backend", "gpu"])
    #expect(backend.status == 2 && backend.stderr.contains("(see 'clpool help devices')"), "\(backend.stderr)")
    let unknown = try ClpoolRun.run(["poool"])
    #expect(unknown.status == 2 && unknown.stderr.contains("(see 'clpool help')"), "\(unknown.stderr)")
  }

  struct ErrorReport: Decodable {
    struct Body: Decodable {
      let message: String
      let exit: Int32
    }
    let error: Body
  }

  /// With --json an error is also `{"error": {"message", "exit"}}` on stdout, the same line as on
  /// stderr, for usage mistakes (2) and device failures (1) alike.
  @Test func errorsAreJSONWithJSON() throws {
    let noPlatform = FileManager.default.temporaryDirectory.appendingPathComponent("clpool-no-icd-\(UUID())")
    try FileManager.default.createDirectory(at: noPlatform, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: noPlatform) }
    let input = noPlatform.appendingPathComponent("x.npy")
    try NPYBytes.float32File(shape: [1, 2, 2], values: [1, 2, 3, 4]).write(to: input)
    let cases: [([String], [String: String], Int32)] = [
      (["pool", "missing.npy", "-o", "y.npy", "--json"], [:], 2),
      (["pool", input.path, "-o", "y.npy", "--layout", "nwhc", "--json"], [:], 2),
      (["devices", "--json", "--backend", "nope"], [:], 2),
      (["pool", input.path, "-o", noPlatform.appendingPathComponent("y.npy").path, "--json", "--backend", "opencl"], ["OCL_ICD_VENDORS": noPlatform.path], 1),
    ]
    for (arguments, environment, status) in cases {
      let run = try ClpoolRun.run(arguments, environment: environment)
      #expect(run.status == status, "\(arguments): \(run.stderr)")
      let report = try JSONDecoder().decode(ErrorReport.self, from: Data(run.stdout.utf8))
      #expect(report.error.exit == status)
      #expect("clpool: \(report.error.message)\n" == run.stderr, "\(arguments)")
    }
    // Without --json, stdout stays empty.
    #expect(try ClpoolRun.run(["pool", "missing.npy", "-o", "y.npy"]).stdout.isEmpty)
  }

  /// The bench table names layouts as frameworks do.
  @Test func benchTableSaysNCHWAndNHWC() throws {
    for (shape, layout) in [("2x3x4x5", "nchw"), ("2x4x5x3", "nhwc"), ("2x3x8", "ncl")] {
      let run = try ClpoolRun.run([
        "bench", "--op", "avg", "--shape", shape, "--layout", layout == "nhwc" ? "channels-last" : "channels-first",
        "--min-time", "0", "--repetitions", "1", "--backend", "cpu",
      ])
      #expect(run.status == 0, "\(run.stderr)")
      let row = run.stdout.split(separator: "\n").dropFirst().first.map(String.init) ?? ""
      #expect(row.split(separator: " ").dropFirst(2).first.map(String.init) == layout, "\(run.stdout)")
    }
  }
}
