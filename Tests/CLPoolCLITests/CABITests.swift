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

  /// Compiles the test program once per run, into a temporary folder.
  static let program: Result<URL, CLIError> = {
    guard FileManager.default.fileExists(atPath: library.path) else {
      return .failure(CLIError("\(library.path) is not built; run 'swift build --product clpool-c' first"))
    }
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("clpool-cabi-\(UUID().uuidString)")
    let output = folder.appendingPathComponent("clpool_abi_test")
    do {
      try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
      let directory = library.deletingLastPathComponent().path
      let compile = try ClpoolRun.program(
        URL(fileURLWithPath: "/usr/bin/env"),
        ["cc", "-std=c11", "-Wall", "-Wextra", "-Werror", "-I", root.appendingPathComponent("Sources/CLPoolC/include").path,
         root.appendingPathComponent("Tests/CABI/clpool_abi_test.c").path, "-o", output.path,
         "-L", directory, "-lclpool-c", "-Wl,-rpath,\(directory)", "-lm", "-lpthread"])
      guard compile.status == 0 else { return .failure(CLIError("cc failed:\n\(compile.stdout)\(compile.stderr)")) }
      return .success(output)
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
