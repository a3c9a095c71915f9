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
    // The example expects the release build's folder; point it at the clpool under test.
    let path = ClpoolRun.executable.deletingLastPathComponent().path + ":" + (ProcessInfo.processInfo.environment["PATH"] ?? "")
    let shell = try ClpoolRun.program(
      URL(fileURLWithPath: "/bin/bash"), ["-euo", "pipefail", "-c", script], environment: ["PATH": path],
      directory: ClpoolRun.executable.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent())
    let text = shell.stdout + shell.stderr
    #expect(shell.status == 0, "\(text)")
    #expect(text.contains("pool, dense and head match numpy") && text.contains("cam matches numpy"), "\(text)")
  }
}

/// The README's Swift examples compile against the library as built: every ```swift block of
/// "Using the library", in order, inside one function whose parameters stand for the user's data.
@Suite struct ReadmeSwiftExamplesTests {
  @Test func librarySnippetsTypeCheck() throws {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    let readme = try String(contentsOf: root.appendingPathComponent("README.md"), encoding: .utf8)
    let start = try #require(readme.range(of: "## Using the library"))
    let section = readme[start.upperBound...]
    let end = section.range(of: "\n## ")?.lowerBound ?? section.endIndex
    var blocks: [String] = []
    var rest = section[..<end]
    while let open = rest.range(of: "```swift\n"), let close = rest[open.upperBound...].range(of: "```") {
      blocks.append(String(rest[open.upperBound..<close.lowerBound]))
      rest = rest[close.upperBound...]
    }
    #expect(blocks.count >= 8, "expected the library section's examples, found \(blocks.count) blocks")
    let body = blocks.joined(separator: "\n").replacingOccurrences(of: "import CLPool\n", with: "")
    let source = """
      import CLPool
      func readmeExamples(
        featureMaps: [Float], w: [Float], b: [Float], a: [Float], video: [Float], sample: Tensor, dz: Tensor, dy: Tensor
      ) throws {
      \(body)
      }
      """
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("clpool-readme-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: directory) }
    let file = directory.appendingPathComponent("readme.swift")
    try source.write(to: file, atomically: true, encoding: .utf8)
    // The library's module sits next to clpool; its system modules' maps are in Sources/, the C
    // target's in its build folder.
    let build = ClpoolRun.executable.deletingLastPathComponent()
    let compiler = try ClpoolRun.program(
      URL(fileURLWithPath: "/usr/bin/env"),
      ["swiftc", "-typecheck", "-I", build.appendingPathComponent("Modules").path]
        + ["COpenCL", "CPNG"].flatMap { ["-I", root.appendingPathComponent("Sources/\($0)").path] }
        + ["-I", build.appendingPathComponent("CLPoolCPU.build").path, "-I", root.appendingPathComponent("Sources/CLPoolCPU/include").path]
        + [file.path])
    #expect(compiler.status == 0, "README Swift examples do not compile:\n\(compiler.stdout)\(compiler.stderr)")
  }
}
