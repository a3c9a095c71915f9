import CLPool
import Foundation
import TestSupport
import Testing

/// Hostile input, round 4: the process's own surroundings. An OpenCL platform without devices,
/// standard descriptors closed, full or limited, stdout a pipe, outputs that share only a
/// spelling, and a device given as a photo. Every failure is one line and a non-zero exit; no
/// input is replaced.
@Suite struct HostileRound4Tests {
  typealias Scratch = ComputeCommandTests.Scratch

  /// Runs `script` under /bin/sh with `$0` the clpool executable, in `scratch`.
  static func shell(_ script: String, _ scratch: Scratch, environment: [String: String] = [:]) throws -> ClpoolRun {
    try ClpoolRun.program(
      URL(fileURLWithPath: "/bin/sh"), ["-c", script, ClpoolRun.executable.path], environment: environment,
      directory: scratch.url)
  }

  /// Mesa's rusticl with RUSTICL_ENABLE unset is a platform that lists no device, as is a GPU
  /// driver without its GPU. `--backend opencl` (which indexed an empty list: a trap) and
  /// `--device all` say so in one line with exit 1; `auto`, with or without a device named, notes
  /// it and runs on the CPU; `devices` says why it lists none.
  @Test func aPlatformWithoutDevicesIsReportedNotTrapped() throws {
    let icd = "/etc/OpenCL/vendors/rusticl.icd"
    guard FileManager.default.fileExists(atPath: icd) || missing("\(icd) not found (mesa-opencl-icd)", for: "platform-without-devices test")
    else { return }
    let scratch = try Scratch()
    let vendors = scratch.path("vendors")
    try FileManager.default.createDirectory(atPath: vendors, withIntermediateDirectories: false)
    try FileManager.default.copyItem(atPath: icd, toPath: vendors + "/rusticl.icd")
    let environment = ["OCL_ICD_VENDORS": vendors, "RUSTICL_ENABLE": ""]
    let x = try HostileCLITests.input(scratch)
    let expected = try ClpoolRun.run(["pool", x, "-o", scratch.path("cpu.npy"), "--backend", "cpu"])
    #expect(expected.status == 0, "\(expected.stderr)")
    for options in [["--backend", "opencl"], ["--backend", "opencl", "--device", "0"], ["--device", "all"]] {
      let run = try ClpoolRun.run(["pool", x, "-o", scratch.path("y.npy")] + options, environment: environment)
      #expect(run.status == 1 && run.stderrLines.count == 1 && run.stderr.contains("no OpenCL device"), "\(options): \(run.stderr)")
      #expect(!scratch.exists("y.npy"), "\(options)")
    }
    for options in [[], ["--device", "0"], ["--backend", "cpu", "--device", "0"]] {
      let run = try ClpoolRun.run(["pool", x, "-o", scratch.path("y.npy")] + options, environment: environment)
      #expect(run.status == 0 && run.stderrLines.count <= 1, "\(options): \(run.stderr)")
      #expect(try HostileRound3Tests.bytes(scratch.path("y.npy")) == HostileRound3Tests.bytes(scratch.path("cpu.npy")), "\(options)")
    }
    let devices = try ClpoolRun.run(["devices"], environment: environment)
    #expect(devices.status == 0 && devices.stdout.contains("no OpenCL device") && devices.stdout.contains("selection auto: cpu"),
      "\(devices.stdout)\(devices.stderr)")
    let selftest = try ClpoolRun.run(["selftest", "--backend", "opencl"], environment: environment)
    #expect(selftest.status == 1 && selftest.stderr.contains("no OpenCL device"), "\(selftest.stderr)")
  }

  /// clpool started with stdin, stdout or stderr closed (`>&-`, a daemon's child): its first
  /// file would take that descriptor. With stdout closed, `-o /dev/stdout` then named the input,
  /// and clpool renamed its result over it. Now the descriptors hold /dev/null; writes to a
  /// closed or full stdout or stderr are errors, not a trap (FileHandle's) or a silent exit 0.
  @Test func closedOrFullStandardDescriptors() throws {
    let scratch = try Scratch()
    let x = try HostileCLITests.input(scratch)
    let before = try HostileRound3Tests.bytes(x)
    let cases: [(script: String, status: Int32)] = [
      ("\"$0\" pool x.npy -o /dev/stdout >&-", 2),  // refused: descriptor 1 holds a folder, not the input
      ("\"$0\" pool x.npy -o y.npy <&- >&- 2>&-", 0),
      ("\"$0\" pool nosuch.npy 2>&-", 2),  // the error has nowhere to go, but the status says it
      ("\"$0\" pool nosuch.npy 2>/dev/full", 2),
      ("\"$0\" devices >&-", 2),
      ("\"$0\" devices >/dev/full", 2),
      ("\"$0\" help >/dev/full", 2),
      ("\"$0\" pool --help >&-", 2),
      ("cat x.npy | \"$0\" pool /dev/stdin -o /dev/stdin --backend cpu", 2),  // one pipe, read and written
    ]
    for (script, status) in cases {
      let run = try Self.shell(script + "; echo \"status $?\" >&2", scratch)
      #expect(run.stderr.hasSuffix("status \(status)\n"), "\(script): \(run.stderr)")
      #expect(!run.stderr.contains("crashed") && !run.stderr.contains("Illegal instruction"), "\(script): \(run.stderr)")
      #expect(try HostileRound3Tests.bytes(x) == before, "\(script) replaced the input")
    }
    let full = try Self.shell("\"$0\" devices >/dev/full", scratch)
    #expect(full.stderrLines == ["clpool: stdout: cannot write (No space left on device)"], "\(full.stderr)")
    #expect(try scratch.files().filter { $0.hasSuffix(".tmp") }.isEmpty)
  }

  /// `-o /dev/stdout` into a pipe: the link leads to `pipe:[N]`, which no path spells, so it was
  /// taken for a new file in /proc/self/fd and refused. It is a FIFO: written in order, with the
  /// bytes of a file output.
  @Test func anOutputThroughStdoutIntoAPipe() throws {
    let scratch = try Scratch()
    _ = try HostileCLITests.input(scratch)  // x.npy
    for arguments in ["pool x.npy --backend cpu", "pool x.npy --op max --backend cpu"] {
      let file = try Self.shell("\"$0\" \(arguments) -o file.npy", scratch)
      let piped = try Self.shell("\"$0\" \(arguments) -o /dev/stdout | cat > piped.npy", scratch)
      #expect(file.status == 0 && piped.status == 0 && piped.stderr.isEmpty, "\(arguments): \(piped.stderr)")
      #expect(try HostileRound3Tests.bytes(scratch.path("piped.npy")) == HostileRound3Tests.bytes(scratch.path("file.npy")))
    }
  }

  /// A write past `ulimit -f` fails with EFBIG in one line (SIGXFSZ would end clpool and leave
  /// its temporary file).
  @Test func aWritePastTheFileSizeLimit() throws {
    let scratch = try Scratch()
    _ = try scratch.save(try Tensor(shape: [64, 64, 4, 4], repeating: 1), "x.npy")  // a 16 KiB output
    let run = try Self.shell("ulimit -f 4; \"$0\" pool x.npy -o y.npy --backend cpu", scratch)
    #expect(run.stderrLines == ["clpool: y.npy: cannot write (File too large)"], "\(run.stderr)")
    let left = try scratch.files()
    #expect(left == ["x.npy"], "left behind: \(left)")
  }

  /// Two outputs clash only where one would replace the other: `/dev/null` twice is fine, and so
  /// is `lk/../y.npy` beside `y.npy` where lk leads into another folder (a textual compare took
  /// them for one file); `./y.npy` and `y.npy`, or a link to y.npy, are refused.
  @Test func outputsThatShareOnlyASpelling() throws {
    let scratch = try Scratch()
    let x = try HostileCLITests.input(scratch)
    try FileManager.default.createDirectory(atPath: scratch.path("sub/inner"), withIntermediateDirectories: true)
    try FileManager.default.createSymbolicLink(atPath: scratch.path("lk"), withDestinationPath: "sub/inner")
    try FileManager.default.createSymbolicLink(atPath: scratch.path("to-y.npy"), withDestinationPath: "y.npy")
    let accepted: [[String]] = [
      ["-o", "/dev/null", "--indices", "/dev/null"],
      ["-o", scratch.path("y.npy"), "--indices", scratch.path("lk/../y.npy")],
    ]
    for options in accepted {
      let run = try ClpoolRun.run(["pool", x, "--op", "max", "--backend", "cpu"] + options)
      #expect(run.status == 0, "\(options): \(run.stderr)")
    }
    #expect(scratch.exists("sub/y.npy") && scratch.exists("y.npy"))
    try FileManager.default.removeItem(atPath: scratch.path("y.npy"))
    try FileManager.default.removeItem(atPath: scratch.path("sub/y.npy"))
    let refused: [[String]] = [
      ["-o", scratch.path("y.npy"), "--indices", scratch.path("./y.npy")],
      ["-o", scratch.path("y.npy"), "--indices", scratch.path("sub/../y.npy")],
      ["-o", scratch.path("y.npy"), "--indices", scratch.path("to-y.npy")],
    ]
    for options in refused {
      let run = try ClpoolRun.run(["pool", x, "--op", "max", "--backend", "cpu"] + options)
      #expect(run.status == 2 && run.stderr.contains("name the same file"), "\(options): \(run.stderr)")
    }
    #expect(!scratch.exists("y.npy"))
  }

  /// Between a header's tokens only Python's whitespace (space, tab, newlines, form feed), as
  /// `numpy.load` takes it: a vertical tab or a no-break space after the closing brace is refused.
  @Test func aHeaderTakesOnlyPythonsWhitespace() throws {
    let scratch = try Scratch()
    let header = [UInt8](NPYBytes.file(descr: "<f4", shape: [1, 1, 2], payload: NPYBytes.float32([1, 2])))
    let brace = try #require(header.firstIndex(of: UInt8(ascii: "}")))
    for (byte, accepted) in [(UInt8(0x0C), true), (UInt8(0x09), true), (UInt8(0x0B), false), (UInt8(0xA0), false), (UInt8(0x1C), false)] {
      var bytes = header
      bytes[brace + 1] = byte
      try Data(bytes).write(to: URL(fileURLWithPath: scratch.path("x.npy")))
      let run = try ClpoolRun.run(["pool", scratch.path("x.npy"), "-o", scratch.path("y.npy"), "--backend", "cpu"])
      if accepted {
        #expect(run.status == 0, "\(byte): \(run.stderr)")
      } else {
        #expect(run.status == 2 && run.stderrLines.count == 1 && run.stderr.contains("text after the closing '}'"), "\(byte): \(run.stderr)")
      }
    }
  }

  /// Outputs and inputs go to the kernel as given. Through `URL.path`, which standardizes as text,
  /// `dl/../d.npy` (dl a link into another folder) became `d.npy`, and `d.npy/` became `d.npy`:
  /// the check saw another file and dense, cam and ragged pool replaced their input, exit 0.
  @Test func pathsReachTheKernelAsGiven() throws {
    let scratch = try Scratch()
    let pooled = try scratch.save(try Tensor(shape: [2, 3], repeating: 1), "d.npy")
    _ = try scratch.save(try Tensor(shape: [3, 4], repeating: 0.5), "w.npy")
    _ = try scratch.save(try Tensor(shape: [3, 2, 2], repeating: 1), "c.npy")
    let x = try HostileCLITests.input(scratch)
    try FileManager.default.createDirectory(atPath: scratch.path("real/deep"), withIntermediateDirectories: true)
    try FileManager.default.createSymbolicLink(atPath: scratch.path("dl"), withDestinationPath: "real/deep")
    let before = try [pooled, x].map(HostileRound3Tests.bytes)
    let written: [(String, String)] = [
      ("\"$0\" dense d.npy --weight w.npy -o dl/../d.npy", "real/d.npy"),
      ("\"$0\" pool x.npy x.npy -o dl/../x.npy", "real/x.npy"),
      ("\"$0\" cam c.npy --weight w.npy --class 0 -o dl/../c.npy", "real/c.npy"),
    ]
    for (script, output) in written {
      let run = try Self.shell(script + " --backend cpu", scratch)
      #expect(run.status == 0 && scratch.exists(output), "\(script): \(run.stderr)")
    }
    for script in ["\"$0\" dense d.npy --weight w.npy -o d.npy/", "\"$0\" pool x.npy x.npy -o x.npy/."] {
      let run = try Self.shell(script + " --backend cpu", scratch)
      #expect(run.status == 2 && run.stderrLines.count == 1 && run.stderr.contains("Not a directory"), "\(script): \(run.stderr)")
    }
    #expect(try [pooled, x].map(HostileRound3Tests.bytes) == before, "an input was replaced")
  }

  /// A device given as a photo is refused by its first bytes, before a gigabyte of it is read.
  @Test func aDeviceAsAPhotoIsRefusedByItsSignature() throws {
    let scratch = try Scratch()
    let cam = try scratch.save(try Tensor(shape: [3, 2, 2], repeating: 1), "c.npy")
    let weight = try scratch.save(try Tensor(shape: [3, 4], repeating: 0.5), "w.npy")
    let run = try ClpoolRun.run(["cam", cam, "--weight", weight, "--class", "0", "--overlay", "/dev/zero", "-o", scratch.path("m.png")])
    #expect(run.status == 2 && run.stderrLines == ["clpool: /dev/zero: not a PNG or JPEG file"], "\(run.stderr)")
  }
}
