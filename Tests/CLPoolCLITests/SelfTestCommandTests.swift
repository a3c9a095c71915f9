import Foundation
import TestSupport
import Testing

/// `clpool selftest` and `clpool devices` driven as a user runs them: exit codes, one-line
/// errors, backend selection through options and environment.
@Suite struct SelfTestCommandTests {

  private func json(_ text: String) throws -> [String: Any] {
    try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
  }

  @Test func cpuSelftestPassesEveryCase() throws {
    let run = try ClpoolRun.run(["selftest", "--json"], environment: ["CLPOOL_BACKEND": "cpu"])
    #expect(run.status == 0, "\(run.stderr)")
    let report = try json(run.stdout)
    #expect((report["backends"] as? [String])?.count == 1)
    #expect((report["backends"] as? [String])?.first?.hasPrefix("cpu:") == true)
    let failures = (report["results"] as? [[String: Any]] ?? []).filter { ($0["passed"] as? Bool) == false && $0["skipped"] == nil }
    #expect(report["failed"] as? Int == 0, "seed \(report["seed"] ?? "?"): \(failures)")
    #expect((report["passed"] as? Int ?? 0) >= 70)
  }

  @Test func openCLSelftestRunsOnlyOpenCL() throws {
    let run = try ClpoolRun.run(["selftest", "--filter", "nchw"], environment: ["CLPOOL_BACKEND": "opencl"])
    guard run.status == 0 || TestEnvironment.isCI else {
      print("note: OpenCL selftest skipped: \(run.stderr)")
      return
    }
    #expect(run.status == 0, "\(run.stderr)")
    let rows = run.stdout.split(separator: "\n").filter { $0.hasSuffix("PASS") || $0.hasSuffix("FAIL") }
    #expect(!rows.isEmpty)
    #expect(rows.allSatisfy { $0.hasPrefix("opencl") })
    #expect(run.stdout.contains("failed") && run.stdout.contains(" 0 failed"))
  }

  /// With no OpenCL platform, auto notes why once and still passes on the CPU; an explicit
  /// OpenCL request exits 1 naming the error.
  @Test func noPlatformFallsBackOrFailsWithTheSymbolicName() throws {
    let noPlatform = ["OCL_ICD_VENDORS": "/nonexistent", "CLPOOL_BACKEND": "auto"]
    let auto = try ClpoolRun.run(["selftest", "--filter", "1x1x1"], environment: noPlatform)
    #expect(auto.status == 0, "\(auto.stderr)")
    #expect(auto.stderrLines.count == 1 && auto.stderr.contains("CL_PLATFORM_NOT_FOUND_KHR"), "\(auto.stderr)")
    #expect(!auto.stdout.contains("\nopencl"))
    let explicit = try ClpoolRun.run(["selftest", "--backend", "opencl"], environment: noPlatform)
    #expect(explicit.status == 1)
    #expect(explicit.stderrLines.count == 1 && explicit.stderr.contains("CL_PLATFORM_NOT_FOUND_KHR"), "\(explicit.stderr)")
  }

  /// A leak check in a process of its own: rounds of the selftest keep resident memory and the
  /// number of live OpenCL objects flat. glibc's malloc raises its mmap threshold as large blocks
  /// are freed and then keeps freed blocks of that size in each thread's arena: resident memory
  /// grew in 8 MB steps (one dense weight) from round to round in some runs, up to +31 MB, and
  /// stayed flat to 0.5 MB with the threshold fixed. A fixed threshold makes resident memory
  /// follow live memory, which is what a leak check needs.
  @Test func repeatedSelftestKeepsMemoryFlat() throws {
    let run = try ClpoolRun.run(["selftest", "--repeat", "6", "--filter", "nchw"], environment: ["MALLOC_MMAP_THRESHOLD_": "1048576"])
    #expect(run.status == 0, "\(run.stderr)")
    let rounds = run.stdout.split(separator: "\n").filter { $0.hasPrefix("round ") }
    #expect(rounds.count == 6)
    func numbers(_ line: Substring) -> (megabytes: Double, objects: Int)? {
      let words = line.split(separator: " ")
      guard let memory = words.firstIndex(of: "memory"), memory + 1 < words.count,
        let megabytes = Double(words[memory + 1]), let objects = Int(words.last ?? "")
      else { return nil }
      return (megabytes, objects)
    }
    guard rounds.count == 6, let second = numbers(rounds[1]), let last = numbers(rounds[5]) else {
      Issue.record("no resident-memory lines: \(run.stdout.suffix(400))")
      return
    }
    // Four more rounds of every nchw case (hundreds of calls, tens of MB through the backends).
    #expect(last.megabytes - second.megabytes < 8, "resident memory grew from \(second.megabytes) to \(last.megabytes) MiB")
    #expect(last.objects == second.objects, "live OpenCL objects went from \(second.objects) to \(last.objects)")
    #expect(run.stdout.contains("live OpenCL objects after releasing the backends: 0\n"), "\(run.stdout.suffix(300))")
  }

  @Test func badUsageExitsTwoWithOneLine() throws {
    let badEnvironment = try ClpoolRun.run(["selftest"], environment: ["CLPOOL_BACKEND": "gpu"])
    #expect(badEnvironment.status == 2)
    #expect(
      badEnvironment.stderr
        == "clpool: CLPOOL_BACKEND=gpu is not a backend; valid values: auto, cpu, opencl (see 'clpool help selftest')\n")
    let badOption = try ClpoolRun.run(["selftest", "--backend", "tpu"])
    #expect(badOption.status == 2)
    #expect(badOption.stderr.contains("--backend=tpu"))
    let unknown = try ClpoolRun.run(["selftest", "--frobnicate"])
    #expect(unknown.status == 2)
    #expect(unknown.stderrLines.count == 1 && unknown.stderr.contains("--frobnicate"))
    let badDevice = try ClpoolRun.run(["selftest", "--backend", "opencl", "--device", "no-such-device"])
    #expect(badDevice.status == (TestEnvironment.isCI ? 2 : badDevice.status))
    #expect(badDevice.stderrLines.count == 1)
  }

  @Test func devicesListsPlatformsAndTheSelection() throws {
    let run = try ClpoolRun.run(["devices", "--json"])
    #expect(run.status == 0, "\(run.stderr)")
    let report = try json(run.stdout)
    let devices = try #require(report["devices"] as? [[String: Any]])
    if TestEnvironment.isCI {
      #expect(devices.contains { ($0["platform"] as? String)?.contains("Portable Computing Language") == true })
    }
    for device in devices {
      #expect(device["computeUnits"] as? Int ?? 0 > 0)
      #expect(device["maxWorkGroupSize"] as? Int ?? 0 > 0)
      #expect(device["fp64"] is Bool)
      let types = try #require(device["storageTypes"] as? [String])
      #expect(types.contains("float16") && types.contains("float32") && types.contains("float64") == (device["fp64"] as? Bool))
    }
    #expect((report["selected"] as? String)?.isEmpty == false)
    let table = try ClpoolRun.run(["devices"], environment: ["CLPOOL_BACKEND": "cpu"])
    #expect(table.status == 0)
    #expect(table.stdout.contains("selection cpu: cpu:"))
  }
}
