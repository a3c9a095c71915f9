import Foundation
import TestSupport
import Testing

/// The README's command-line examples (each block between `<!-- example:begin -->` and
/// `<!-- example:end -->`) run as written, each in a shell of its own. They need python3 with
/// numpy, like a user would; the photo example also scikit-image (scripts/setup installs both,
/// and CI must have them).
@Suite struct ReadmeExampleTests {
  static func pythonHas(_ module: String) throws -> Bool {
    let probe = try ClpoolRun.program(URL(fileURLWithPath: "/usr/bin/env"), ["python3", "-c", "import \(module)"])
    return probe.status == 0
  }

  @Test func commandLineExamplesRun() throws {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    let readme = try String(contentsOf: root.appendingPathComponent("README.md"), encoding: .utf8)
    var scripts: [String] = []
    var rest = readme[...]
    while let begin = rest.range(of: "<!-- example:begin -->\n```sh\n"), let end = rest[begin.upperBound...].range(of: "```\n<!-- example:end -->") {
      scripts.append(String(rest[begin.upperBound..<end.lowerBound]))
      rest = rest[end.upperBound...]
    }
    #expect(scripts.count >= 3, "expected the worked, photo and top-k examples, found \(scripts.count)")
    guard try Self.pythonHas("numpy") else {
      #expect(!TestEnvironment.isCI, "CI needs python3 with numpy")
      print("note: README examples skipped: python3 with numpy not found")
      return
    }
    let hasScikitImage = try Self.pythonHas("skimage")
    // The examples expect the release build's folder; point them at the clpool under test.
    let path = ClpoolRun.executable.deletingLastPathComponent().path + ":" + (ProcessInfo.processInfo.environment["PATH"] ?? "")
    var output = ""
    for script in scripts {
      if script.contains("skimage") && !hasScikitImage {
        #expect(!TestEnvironment.isCI, "CI needs python3 with scikit-image (scripts/setup installs it)")
        print("note: README photo example skipped: python3 with scikit-image not found")
        continue
      }
      let shell = try ClpoolRun.program(
        URL(fileURLWithPath: "/bin/bash"), ["-euo", "pipefail", "-c", script], environment: ["PATH": path],
        directory: ClpoolRun.executable.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent())
      let text = shell.stdout + shell.stderr
      #expect(shell.status == 0, "\(script.prefix(200))…\n\(text)")
      output += text
    }
    #expect(output.contains("pool, dense and head match numpy") && output.contains("cam matches numpy"), "\(output)")
    #expect(output.contains("SAMPLE  RANK  CLASS  PROBABILITY  LABEL") && output.contains("\"top\":[["), "\(output)")
    if hasScikitImage { #expect(output.contains("\"classes\":[") && output.contains("the cat with its heat map"), "\(output)") }
  }
}

/// The Swift examples compile against the library as built: every ```swift block of the README's
/// "Using the library", in order, inside one function whose parameters stand for the user's data,
/// and likewise the blocks of each DocC article.
@Suite struct ReadmeSwiftExamplesTests {
  static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent()

  /// The ```swift blocks of `text`, but for package manifest fragments (`.package(…)`).
  static func swiftBlocks<Text: StringProtocol>(_ text: Text) -> [String] {
    var blocks: [String] = []
    var rest = text[...]
    while let open = rest.range(of: "```swift\n"), let close = rest[open.upperBound...].range(of: "```") {
      let block = String(rest[open.upperBound..<close.lowerBound])
      if !block.hasPrefix(".package") { blocks.append(block) }
      rest = rest[close.upperBound...]
    }
    return blocks
  }

  /// Type-checks `blocks` in one function taking `parameters`; the compiler's complaint, or nil.
  static func typeCheck(_ blocks: [String], parameters: String) throws -> String? {
    let body = blocks.joined(separator: "\n").replacingOccurrences(of: "import CLPool\n", with: "")
    let source = """
      import CLPool
      import COpenCL
      import Foundation
      func examples(\(parameters)) throws {
      \(body)
      }
      """
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("clpool-readme-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: directory) }
    let file = directory.appendingPathComponent("examples.swift")
    try source.write(to: file, atomically: true, encoding: .utf8)
    // The library's module sits next to clpool; its system modules' maps are in Sources/, the C
    // targets' in their build folders.
    let build = ClpoolRun.executable.deletingLastPathComponent()
    let compiler = try ClpoolRun.program(
      URL(fileURLWithPath: "/usr/bin/env"),
      ["swiftc", "-typecheck", "-I", build.appendingPathComponent("Modules").path]
        + ["COpenCL", "CPNG", "CJPEG"].flatMap { ["-I", root.appendingPathComponent("Sources/\($0)").path] }
        + ["CLPoolCPU", "CLPoolJPEG"].flatMap {
          ["-I", build.appendingPathComponent("\($0).build").path, "-I", root.appendingPathComponent("Sources/\($0)/include").path]
        }
        + [file.path])
    return compiler.status == 0 ? nil : compiler.stdout + compiler.stderr
  }

  @Test func librarySnippetsTypeCheck() throws {
    let readme = try String(contentsOf: Self.root.appendingPathComponent("README.md"), encoding: .utf8)
    let start = try #require(readme.range(of: "## Using the library"))
    let section = readme[start.upperBound...]
    let blocks = Self.swiftBlocks(section[..<(section.range(of: "\n## ")?.lowerBound ?? section.endIndex)])
    #expect(blocks.count >= 8, "expected the library section's examples, found \(blocks.count) blocks")
    let failure = try Self.typeCheck(
      blocks,
      parameters: """
        featureMaps: [Float], w: [Float], b: [Float], a: [Float], video: [Float], sample: Tensor, dz: Tensor, dy: Tensor, \
        myContext: cl_context, myDevice: cl_device_id, myQueue: cl_command_queue, myBuffer: cl_mem, myKernelDone: cl_event
        """)
    #expect(failure == nil, "README Swift examples do not compile:\n\(failure ?? "")")
  }

  @Test func docCArticleSnippetsTypeCheck() throws {
    let catalog = Self.root.appendingPathComponent("Sources/CLPool/CLPool.docc")
    let articles = try FileManager.default.contentsOfDirectory(atPath: catalog.path).filter { $0.hasSuffix(".md") }.sorted()
    var checked = 0
    for article in articles {
      let blocks = Self.swiftBlocks(try String(contentsOf: catalog.appendingPathComponent(article), encoding: .utf8))
      guard !blocks.isEmpty else { continue }
      checked += 1
      let failure = try Self.typeCheck(
        blocks,
        parameters: """
          featureMaps: [Float], w: [Float], b: [Float], features: Tensor, weight: Tensor, myContext: cl_context, \
          myDevice: cl_device_id, myQueue: cl_command_queue, myBuffer: cl_mem, myUploadFinished: cl_event
          """)
      #expect(failure == nil, "\(article): its Swift examples do not compile:\n\(failure ?? "")")
    }
    #expect(checked >= 3, "expected examples in the DocC articles, found \(checked) articles with some")
  }
}
