import CLPool
import Foundation
import Testing

/// Hostile input, round 2 (issue 11), as a user or an attacker runs clpool: what `-o` names, build
/// options, impossible requests, usage mistakes and the memory of a big input. Every refusal is
/// exit 2 and one line on stderr; nothing is left behind or replaced.
@Suite struct HostileCLITests {
  typealias Scratch = ComputeCommandTests.Scratch

  static func input(_ scratch: Scratch) throws -> String {
    try scratch.save(try Tensor(shape: [2, 3, 2, 2], scalars: (0..<24).map(Float.init)), "x.npy")
  }

  static func isCharacterDevice(_ path: String) -> Bool {
    var status = stat()
    return lstat(path, &status) == 0 && status.st_mode & S_IFMT == S_IFCHR
  }

  /// `-o` writes through a link to its target (the link stays), into a character device or FIFO
  /// directly (never replacing it), keeps an existing file's permissions, and refuses a directory.
  @Test func outputPathsAreWrittenAsUsersExpect() throws {
    let scratch = try Scratch()
    let x = try Self.input(scratch)
    let expected: [Float] = [1.5, 5.5, 9.5, 13.5, 17.5, 21.5]
    func pool(_ output: String) throws -> ClpoolRun { try ClpoolRun.run(["pool", x, "-o", output, "--backend", "cpu"]) }
    // A link to a file, a dangling link, a chain of links: the target gets the result.
    try FileManager.default.createSymbolicLink(atPath: scratch.path("link.npy"), withDestinationPath: "target.npy")
    try FileManager.default.createSymbolicLink(atPath: scratch.path("chain.npy"), withDestinationPath: scratch.path("link.npy"))
    for name in ["link.npy", "chain.npy"] {
      let run = try pool(scratch.path(name))
      #expect(run.status == 0, "\(run.stderr)")
      #expect(try FileManager.default.destinationOfSymbolicLink(atPath: scratch.path("link.npy")) == "target.npy")
      #expect(try scratch.load("target.npy").scalars == expected)
    }
    // An existing file keeps its permission bits.
    chmod(scratch.path("target.npy"), 0o640)
    #expect(try pool(scratch.path("target.npy")).status == 0)
    #expect((try FileManager.default.attributesOfItem(atPath: scratch.path("target.npy"))[.posixPermissions] as? Int) == 0o640)
    // A FIFO is written directly, in order, and stays a FIFO.
    let fifo = scratch.path("pipe.npy")
    #expect(mkfifo(fifo, 0o600) == 0)
    let reader = Process()
    reader.executableURL = URL(fileURLWithPath: "/bin/sh")
    reader.arguments = ["-c", "cat '\(fifo)' > '\(scratch.path("from-pipe.npy"))'"]
    try reader.run()
    #expect(try pool(fifo).status == 0)
    reader.waitUntilExit()
    #expect(try scratch.load("from-pipe.npy").scalars == expected)
    var status = stat()
    #expect(lstat(fifo, &status) == 0 && status.st_mode & S_IFMT == S_IFIFO)
    // A character device (/dev/null itself, and a node of its own where root may make one).
    #expect(try pool("/dev/null").status == 0)
    #expect(Self.isCharacterDevice("/dev/null"), "/dev/null must stay a character device")
    if mknod(scratch.path("mynull"), S_IFCHR | 0o666, 0x103) == 0 {
      #expect(try pool(scratch.path("mynull")).status == 0)
      #expect(Self.isCharacterDevice(scratch.path("mynull")))
    }
    // A directory is refused, and left as it was.
    try FileManager.default.createDirectory(atPath: scratch.path("folder.npy"), withIntermediateDirectories: false)
    let folder = try pool(scratch.path("folder.npy"))
    #expect(folder.status == 2 && folder.stderrLines.count == 1 && folder.stderr.contains("directory"), "\(folder.stderr)")
    // Names up to NAME_MAX work (the temporary name is short), and no temporary file is left.
    let long = String(repeating: "n", count: 251) + ".npy"
    let longRun = try pool(scratch.path(long))
    #expect(longRun.status == 0, "\(longRun.stderr)")
    #expect(try scratch.files().allSatisfy { !$0.hasSuffix(".tmp") })
    // --indices and -o naming one file, also through a link or another spelling, are refused.
    for (indices, output) in [("same.npy", "same.npy"), ("./same.npy", "same.npy"), ("link.npy", "target.npy")] {
      let run = try ClpoolRun.run(
        ["pool", x, "--op", "max", "--indices", indices, "-o", output, "--backend", "cpu"], directory: scratch.url)
      #expect(run.status == 2 && run.stderr.contains("same file"), "\(indices) \(output): \(run.stderr)")
    }
  }

  /// Build options the kernels cannot take: one line, never a wrong answer or a hang.
  @Test(arguments: ComputeCommandTests.backends.contains("opencl") ? ["-DBLOCK=7", "-DBLOCK=0", "-DBLOCK=1", "-DBLOCK=257", "-DK_BLOCK=3"] : [])
  func badTunablesFailTheBuildInOneLine(_ options: String) throws {
    let scratch = try Scratch()
    let x = try Self.input(scratch)
    let explicit = try ClpoolRun.run(["pool", x, "-o", scratch.path("y.npy"), "--backend", "opencl"], environment: ["CLPOOL_BUILD_OPTIONS": options])
    #expect(explicit.status == 1 && explicit.stderrLines.count == 1 && explicit.stderr.contains("CL_BUILD_PROGRAM_FAILURE"), "\(explicit.stderr)")
    #expect(explicit.stderr.contains("must be"), "the kernel's own message: \(explicit.stderr)")
    let auto = try ClpoolRun.run(["pool", x, "-o", scratch.path("y.npy"), "--device", "0"], environment: ["CLPOOL_BUILD_OPTIONS": options])
    #expect(auto.status == 0 && auto.stderrLines.count == 1 && auto.stderr.contains("using the CPU backend"), "\(auto.stderr)")
    #expect(try scratch.load("y.npy").scalars == [1.5, 5.5, 9.5, 13.5, 17.5, 21.5])
  }

  /// Every mistake below is exit 2, one line naming the file or option, and nothing written.
  @Test func usageMistakesAreOneLineErrors() throws {
    let scratch = try Scratch()
    let x = try Self.input(scratch)
    let rank2 = try scratch.save(try Tensor(shape: [2, 3], repeating: 1), "rank2.npy")
    let weight = try scratch.save(try Tensor(shape: [3, 4], repeating: 1), "w.npy")
    try FileManager.default.createDirectory(atPath: scratch.path("dir.npy"), withIntermediateDirectories: false)
    var version11 = [UInt8](try Data(contentsOf: URL(fileURLWithPath: x)))
    version11[7] = 1
    try Data(version11).write(to: URL(fileURLWithPath: scratch.path("v11.npy")))
    let out = scratch.path("o.npy")
    let cases: [([String], [String: String], String)] = [
      (["selftest", "--filter", "no such case", "--backend", "cpu"], [:], "matches no case"),
      (["pool", rank2, "-o", out], [:], "rank2.npy: pooling takes a rank 3"),
      (["pool", x, "-o", out, "--layout", "ncdhw"], [:], "x.npy: --layout ncdhw takes a rank-5 input"),
      (["pool", x, "-o", out, "--layout", "ncl"], [:], "takes a rank-3 input"),
      (["pool", scratch.path("dir.npy"), "-o", out], [:], "dir.npy: cannot read: it is a directory"),
      (["pool", "/proc/self/status", "-o", out], [:], "/proc/self/status: not a .npy file"),
      (["pool", scratch.path("v11.npy"), "-o", out], [:], "unsupported .npy format version 1.1"),
      (["cam", try scratch.save(try Tensor(shape: [3, 2, 2], repeating: 1), "f.npy"), "--weight", weight, "--class", "-1", "-o", out], [:], "class -1 is out of range"),
      (["dense", rank2, "--weight", scratch.path("rank2.npy"), "-o", out], [:], "rank2.npy"),
      (["devices", "--device", "99"], [:], "no OpenCL device with index 99"),
      (["pool", x, "-o", out, "--backend", ""], [:], "--backend '' is not a backend"),
      (["pool", x, "-o", out, "--device", ""], [:], "--device ''"),
      (["pool", x, "-o", out], ["CLPOOL_BUILD_OPTIONS": "-cl-fast-relaxed-math"], "'-cl-fast-relaxed-math' is not accepted"),
      (["pool", x, "-o", out], ["CLPOOL_BUILD_OPTIONS": "-DWG_SIZE=64"], "'-DWG_SIZE=64' is not accepted"),
      (["bench", "--op", "head", "--shape", "1x8x2x2", "--classes", "99999999999", "--backend", "cpu"], [:], "more than this host's memory"),
      (["bench", "--repetitions", "999999999999", "--backend", "cpu"], [:], "--repetitions must be from 1 to"),
      (["pool", x, "-o", out, "--backend", "cpu"], ["CLPOOL_MAX_HOST_BYTES": "64"], "more than this host's memory"),
      (["pool", x, "-o", out, "--backend", "cpu"], ["CLPOOL_DIRECT_IO": "yes"], "CLPOOL_DIRECT_IO=yes: expected auto, on or off"),
    ]
    for (arguments, environment, message) in cases {
      let run = try ClpoolRun.run(arguments, environment: environment)
      #expect(run.status == 2, "\(arguments): \(run.status) \(run.stderr)")
      #expect(run.stderrLines.count == 1 && run.stderr.contains(message), "\(arguments): \(run.stderr)")
      #expect(!scratch.exists("o.npy"), "\(arguments) wrote its output")
    }
    // A huge dense output is refused before it is allocated.
    let tall = try scratch.save(try Tensor(shape: [1 << 16, 1], repeating: 1), "tall.npy")
    let wide = try scratch.save(try Tensor(shape: [1, 1 << 18], repeating: 1), "wide.npy")
    let huge = try ClpoolRun.run(["dense", tall, "--weight", wide, "-o", out, "--backend", "cpu"], environment: ["CLPOOL_MAX_HOST_BYTES": "1000000000"])
    #expect(huge.status == 2 && huge.stderrLines.count == 1 && huge.stderr.contains("dense output"), "\(huge.stderr)")
  }

  /// A pipe is a valid input (process substitution); `--json` names the backend that ran.
  @Test func streamsAreInputsAndJSONNamesTheBackend() throws {
    let scratch = try Scratch()
    let x = try Self.input(scratch)
    let run = try ClpoolRun.program(
      URL(fileURLWithPath: "/bin/sh"),
      ["-c", "cat '\(x)' | '\(ClpoolRun.executable.path)' pool /dev/stdin -o '\(scratch.path("y.npy"))' --backend cpu --json"])
    #expect(run.status == 0, "\(run.stderr)")
    #expect(run.stdout.contains("\"backend\":\"cpu\""))
    #expect(try scratch.load("y.npy").scalars == [1.5, 5.5, 9.5, 13.5, 17.5, 21.5])
  }

  /// A big input streams: resident memory stays about two 64 MiB chunks (mapped pages included),
  /// whatever the file's size (it peaked at 3x the file before streaming, then at 1x).
  @Test func aBigInputStreamsInBoundedMemory() throws {
    let scratch = try Scratch()
    let samples = 64, sample = 2048 * 28 * 28  // 411 MB of float32
    let path = scratch.path("big.npy")
    let handle = try OutputFile(path: path)
    try handle.write(NPY.encode(descr: "<f4", shape: [samples, 2048, 28, 28], payload: Data()))
    let chunk = [Float](repeating: 0.5, count: sample)
    for _ in 0..<samples { try chunk.withUnsafeBytes { try handle.write($0) } }
    try handle.commit()
    let run = try ClpoolRun.program(
      URL(fileURLWithPath: "/usr/bin/time"), ["-f", "%M", ClpoolRun.executable.path, "pool", path, "-o", scratch.path("y.npy"), "--backend", "cpu"])
    #expect(run.status == 0, "\(run.stderr)")
    let peakKiB = Int(run.stderr.split(separator: "\n").last.map(String.init) ?? "") ?? .max
    let fileKiB = samples * sample * 4 / 1024
    print("note: pooling a \(fileKiB / 1024) MiB input peaked at \(peakKiB / 1024) MiB resident")
    #expect(peakKiB < 256 * 1024, "peak \(peakKiB) KiB for a \(fileKiB) KiB file")
  }
}
