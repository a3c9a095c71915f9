import Foundation
import TestSupport
import Testing

/// An OpenCL driver that lists a GPU but fails at context creation (Tests/Fixtures/failing_icd.c,
/// built here and loaded alone through the ICD loader): auto degrades to the CPU with a one-line
/// reason; an explicit OpenCL request fails with the symbolic error.
@Suite struct FaultTests {
  static let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("Fixtures/failing_icd.c")

  /// Builds the fake ICD into a folder with its .icd file; nil (with a note) when no C compiler.
  static func buildFailingICD() throws -> URL? {
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("failing-icd-\(UUID())")
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    let library = folder.appendingPathComponent("libfailing_icd.so")
    let compiler = Process()
    compiler.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    compiler.arguments = ["cc", "-shared", "-fPIC", "-o", library.path, fixture.path]
    try compiler.run()
    compiler.waitUntilExit()
    guard compiler.terminationStatus == 0 else { return nil }
    try (library.path + "\n").write(to: folder.appendingPathComponent("failing.icd"), atomically: true, encoding: .utf8)
    return folder
  }

  @Test func contextCreationFailureDegradesOrFailsClearly() throws {
    guard let vendors = try Self.buildFailingICD() else {
      #expect(!TestEnvironment.isCI, "CI must be able to build the fake ICD")
      print("note: fault test skipped: no C compiler to build the fake ICD")
      return
    }
    defer { try? FileManager.default.removeItem(at: vendors) }
    let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("fault-\(UUID())")
    try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: scratch) }
    let input = scratch.appendingPathComponent("x.npy").path
    try NPYBytes.float32File(shape: [1, 2, 2], values: [1, 2, 3, 5]).write(to: URL(fileURLWithPath: input))
    let environment = ["OCL_ICD_VENDORS": vendors.path, "CLPOOL_BACKEND": "auto"]

    let devices = try ClpoolRun.run(["devices"], environment: environment)
    #expect(devices.stdout.contains("Failing Test GPU"), "the fake ICD was not loaded: \(devices.stdout)")

    let auto = try ClpoolRun.run(["pool", input, "-o", scratch.appendingPathComponent("y.npy").path], environment: environment)
    #expect(auto.status == 0, "\(auto.stderr)")
    #expect(auto.stderrLines.count == 1 && auto.stderr.contains("clCreateContext failed: CL_OUT_OF_HOST_MEMORY") && auto.stderr.contains("using the CPU backend"), "\(auto.stderr)")

    let explicit = try ClpoolRun.run(["pool", input, "-o", scratch.appendingPathComponent("z.npy").path, "--backend", "opencl"], environment: environment)
    #expect(explicit.status == 1)
    #expect(explicit.stderr == "clpool: clCreateContext failed: CL_OUT_OF_HOST_MEMORY (-6)\n")
    #expect(!FileManager.default.fileExists(atPath: scratch.appendingPathComponent("z.npy").path))
  }
}
