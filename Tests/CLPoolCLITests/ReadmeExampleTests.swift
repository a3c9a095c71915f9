import Foundation
import Testing

/// The README's worked example runs as written (it needs python3 with numpy, like a user would).
@Suite struct ReadmeExampleTests {
  @Test func workedExampleRuns() throws {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    let readme = try String(contentsOf: root.appendingPathComponent("README.md"), encoding: .utf8)
    let begin = try #require(readme.range(of: "<!-- example:begin -->\n```sh\n"))
    let end = try #require(readme.range(of: "```\n<!-- example:end -->"))
    let script = String(readme[begin.upperBound..<end.lowerBound])
    let numpy = Process()
    numpy.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    numpy.arguments = ["python3", "-c", "import numpy"]
    numpy.standardError = FileHandle.nullDevice
    try numpy.run()
    numpy.waitUntilExit()
    guard numpy.terminationStatus == 0 else {
      print("note: README example skipped: python3 with numpy not found")
      return
    }
    let shell = Process()
    shell.executableURL = URL(fileURLWithPath: "/bin/bash")
    shell.arguments = ["-euo", "pipefail", "-c", script]
    // The example expects the release build's folder; point it at the clpool under test.
    shell.currentDirectoryURL = ClpoolRun.executable.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    var environment = ProcessInfo.processInfo.environment
    environment["PATH"] = ClpoolRun.executable.deletingLastPathComponent().path + ":" + (environment["PATH"] ?? "")
    shell.environment = environment
    let output = Pipe()
    shell.standardOutput = output
    shell.standardError = output
    try shell.run()
    let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    shell.waitUntilExit()
    #expect(shell.terminationStatus == 0, "\(text)")
    #expect(text.contains("pool, dense and head match numpy") && text.contains("cam matches numpy"), "\(text)")
  }
}
