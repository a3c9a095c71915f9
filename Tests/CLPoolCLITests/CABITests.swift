import Foundation
import TestSupport
import Testing

/// The C ABI as a C program sees it: Tests/CABI/clpool_abi_test.c, compiled with the system cc
/// against the public header and the built libclpool-c.so, calls every function on each backend
/// against its own float64 reference and checks the error paths.
@Suite struct CABITests {
  /// The library next to clpool (`swift build --product clpool-c` puts it there).
  static let library = ClpoolRun.executable.deletingLastPathComponent().appendingPathComponent("libclpool-c.so")
  static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

  /// Compiles the test program once per run, next to the library it links (so that no run leaves a
  /// folder behind); compiled under a name of its own, then renamed into place whole.
  static let program: Result<URL, CLIError> = {
    guard FileManager.default.fileExists(atPath: library.path) else {
      return .failure(CLIError("\(library.path) is not built; run 'swift build --product clpool-c' first"))
    }
    let directory = library.deletingLastPathComponent().path
    let program = library.deletingLastPathComponent().appendingPathComponent("clpool_abi_test")
    let output = library.deletingLastPathComponent().appendingPathComponent("clpool_abi_test-\(getpid())")
    do {
      let compile = try ClpoolRun.program(
        URL(fileURLWithPath: "/usr/bin/env"),
        ["cc", "-std=c11", "-Wall", "-Wextra", "-Werror", "-I", root.appendingPathComponent("Sources/CLPoolC/include").path,
         root.appendingPathComponent("Tests/CABI/clpool_abi_test.c").path, "-o", output.path,
         "-L", directory, "-lclpool-c", "-Wl,-rpath,\(directory)", "-lm", "-lpthread"])
      guard compile.status == 0 else { return .failure(CLIError("cc failed:\n\(compile.stdout)\(compile.stderr)")) }
      guard rename(output.path, program.path) == 0 else { return .failure(CLIError("cannot rename \(output.path) to \(program.path)")) }
      return .success(program)
    } catch {
      return .failure(CLIError("cannot compile the C ABI test: \(error)"))
    }
  }()

  @Test(arguments: ["cpu", "opencl", "auto"])
  func everyFunctionMatchesTheReference(backend: String) throws {
    let program = try Self.program.get()
    let run = try ClpoolRun.program(program, [backend])
    let text = run.stdout + run.stderr
    if run.status == 77 {
      // No OpenCL device here: a skip on a developer's machine, a failure in CI.
      #expect(!TestEnvironment.isCI, "CI=true needs an OpenCL device: \(text)")
      print("note: C ABI test on \(backend) skipped: \(text)")
      return
    }
    #expect(run.status == 0, "clpool_abi_test \(backend) exited \(run.status):\n\(text)")
    #expect(text.contains("every check passed"), "\(text)")
  }
}

/// README's "Using clpool from C and Python" runs as written: its C example compiled against the
/// header and the library under test, its Python example over that library.
@Suite struct ReadmeCAndPythonExamplesTests {
  /// The fenced block between `<!-- name:begin -->` and `<!-- name:end -->`.
  static func example(_ name: String, _ language: String) throws -> String {
    let readme = try String(contentsOf: CABITests.root.appendingPathComponent("README.md"), encoding: .utf8)
    let begin = try #require(readme.range(of: "<!-- \(name):begin -->\n```\(language)\n"))
    let end = try #require(readme.range(of: "```\n<!-- \(name):end -->"))
    return String(readme[begin.upperBound..<end.lowerBound])
  }

  static func scratch() throws -> URL {
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("clpool-readme-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    return folder
  }

  @Test func cExampleRuns() throws {
    let library = CABITests.library
    try #require(FileManager.default.fileExists(atPath: library.path), "\(library.path) is not built; run 'swift build --product clpool-c' first")
    let folder = try Self.scratch()
    defer { try? FileManager.default.removeItem(at: folder) }
    let source = folder.appendingPathComponent("example.c"), program = folder.appendingPathComponent("example")
    try Self.example("c-example", "c").write(to: source, atomically: true, encoding: .utf8)
    let directory = library.deletingLastPathComponent().path
    let compile = try ClpoolRun.program(
      URL(fileURLWithPath: "/usr/bin/env"),
      ["cc", "-Wall", "-Werror", "-I", CABITests.root.appendingPathComponent("Sources/CLPoolC/include").path, source.path,
       "-L", directory, "-lclpool-c", "-Wl,-rpath,\(directory)", "-o", program.path])
    try #require(compile.status == 0, "README C example does not compile:\n\(compile.stdout)\(compile.stderr)")
    let run = try ClpoolRun.program(program, [])
    #expect(run.status == 0, "\(run.stdout)\(run.stderr)")
    #expect(run.stdout.contains("means 1.5 5.5 ... 21.5, max 23 at 3") && run.stdout.contains("CLPOOL_ERROR_INVALID_ARGUMENT: pooling takes a rank 3"), "\(run.stdout)")
  }

  @Test func pythonExampleRuns() throws {
    let numpy = try ClpoolRun.program(URL(fileURLWithPath: "/usr/bin/env"), ["python3", "-c", "import numpy"])
    guard numpy.status == 0 else {
      #expect(!TestEnvironment.isCI, "CI=true needs python3 with numpy: \(numpy.stderr)")
      print("note: README Python example skipped: python3 with numpy not found")
      return
    }
    let folder = try Self.scratch()
    defer { try? FileManager.default.removeItem(at: folder) }
    let script = folder.appendingPathComponent("example.py")
    try Self.example("python-example", "python").write(to: script, atomically: true, encoding: .utf8)
    let run = try ClpoolRun.program(
      URL(fileURLWithPath: "/usr/bin/env"), ["python3", script.path],
      environment: ["PYTHONPATH": CABITests.root.appendingPathComponent("python").path, "CLPOOL_LIBRARY": CABITests.library.path])
    #expect(run.status == 0, "\(run.stdout)\(run.stderr)")
    #expect(run.stdout.contains("clpool.Error: dense weight 10x1000") && run.stdout.contains("pooled (8, 2048), head (8, 1000), cam (7, 7)"), "\(run.stdout)\(run.stderr)")
  }
}
