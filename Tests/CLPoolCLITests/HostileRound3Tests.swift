import CLPool
import Foundation
import TestSupport
import Testing

/// Hostile input, round 3: outputs that name an input, empty arrays, signals mid-run, files the
/// user may not replace, and text read from a file (labels, headers, photos). Every refusal is
/// exit 2 and one line on stderr; nothing is left behind or replaced.
@Suite struct HostileRound3Tests {
  typealias Scratch = ComputeCommandTests.Scratch

  static func bytes(_ path: String) throws -> Data { try Data(contentsOf: URL(fileURLWithPath: path)) }

  /// An output naming an input (its path, another spelling, a link to it) would be renamed over
  /// it: refused, and every input stays as it was.
  @Test func anOutputThatNamesAnInputIsRefused() throws {
    let scratch = try Scratch()
    let x = try HostileCLITests.input(scratch)
    let weight = try scratch.save(try Tensor(shape: [3, 4], repeating: 0.5), "w.npy")
    let cam = try scratch.save(try Tensor(shape: [3, 2, 2], repeating: 1), "c.npy")
    let pooled = try scratch.save(try Tensor(shape: [2, 3], repeating: 1), "p.npy")
    try Data("a\nb\nc\nd\n".utf8).write(to: URL(fileURLWithPath: scratch.path("labels.txt")))
    try FileManager.default.createSymbolicLink(atPath: scratch.path("link.npy"), withDestinationPath: "x.npy")
    let before = try scratch.files().map { try Self.bytes(scratch.path($0)) }
    let cases: [([String], String)] = [
      (["pool", x, "-o", x], "-o \(x) names the input \(x)"),
      (["pool", x, "-o", "./x.npy"], "names the input"),
      (["pool", x, "-o", scratch.path("link.npy")], "names the input"),
      (["pool", x, "--op", "max", "--indices", x, "-o", scratch.path("y.npy")], "--indices \(x) names the input"),
      (["dense", pooled, "--weight", weight, "-o", weight], "names the input \(weight)"),
      (["head", x, "--weight", weight, "--top", "1", "--labels", scratch.path("labels.txt"), "-o", scratch.path("labels.txt")],
       "names the input"),
      (["cam", cam, "--weight", weight, "--class", "0", "-o", cam], "names the input \(cam)"),
    ]
    for (arguments, message) in cases {
      let run = try ClpoolRun.run(arguments + ["--backend", "cpu"], directory: scratch.url)
      #expect(run.status == 2 && run.stderrLines.count == 1 && run.stderr.contains(message), "\(arguments): \(run.stderr)")
    }
    #expect(try scratch.files().map { try Self.bytes(scratch.path($0)) } == before, "an input changed")
  }

  /// Empty arrays read whole (dense and head inputs and weights, a ragged batch's member) give
  /// empty results rather than a trap.
  @Test(arguments: ComputeCommandTests.backends)
  func emptyArraysGiveEmptyResults(_ backend: String) throws {
    let scratch = try Scratch()
    let x = try HostileCLITests.input(scratch)
    let noRows = try scratch.save(try Tensor(shape: [0, 3], scalars: []), "n0.npy")
    let noOutputs = try scratch.save(try Tensor(shape: [3, 0], scalars: []), "m0.npy")
    let weight = try scratch.save(try Tensor(shape: [3, 5], repeating: 0.25), "w.npy")
    let pooled = try scratch.save(try Tensor(shape: [4, 3], repeating: 1), "p.npy")
    let noSamples = try scratch.save(try Tensor(shape: [0, 3, 1, 1], scalars: []), "s0.npy")
    let cases: [([String], [Int])] = [
      (["dense", noRows, "--weight", weight], [0, 5]),
      (["dense", pooled, "--weight", noOutputs], [4, 0]),
      (["head", x, "--weight", noOutputs], [2, 0]),
      (["pool", noSamples, x], [2, 3]),
    ]
    for (arguments, shape) in cases {
      let output = scratch.path("y.npy")
      let run = try ClpoolRun.run(arguments + ["-o", output, "--backend", backend])
      #expect(run.status == 0, "\(arguments): \(run.stderr)")
      #expect(try scratch.load("y.npy").shape == shape, "\(arguments)")
      try FileManager.default.removeItem(atPath: output)
    }
  }

  /// A signal that ends a process by default (SIGQUIT aside: it may dump a core into the folder)
  /// while a stream runs: the process ends by that signal, and neither the temporary file nor the
  /// output is left. The input is a FIFO that stops after a few samples, so the run is surely in
  /// progress when the signal comes.
  @Test(arguments: [SIGINT, SIGTERM, SIGHUP, SIGPIPE, SIGALRM, SIGUSR1, SIGUSR2, SIGXCPU])
  func aSignalLeavesNoTemporaryFile(_ signal: Int32) throws {
    let scratch = try Scratch()
    let input = scratch.path("in.npy")
    #expect(mkfifo(input, 0o600) == 0)
    let process = Process()
    process.executableURL = ClpoolRun.executable
    process.arguments = ["pool", input, "-o", scratch.path("y.npy"), "--backend", "cpu", "--chunk-bytes", "1024"]
    process.standardError = FileHandle.nullDevice
    try process.run()
    let writer = open(input, O_WRONLY)  // returns once clpool has opened the FIFO
    #expect(writer >= 0)
    defer { close(writer) }
    let samples = NPYBytes.file(descr: "<f4", shape: [1000, 16, 4, 4], payload: [UInt8](repeating: 0, count: 8 * 1024))
    _ = samples.withUnsafeBytes { write(writer, $0.baseAddress, $0.count) }
    let deadline = Date().addingTimeInterval(30)
    while try !scratch.files().contains(where: { $0.hasSuffix(".tmp") }) && Date() < deadline { usleep(10_000) }
    #expect(try scratch.files().contains { $0.hasSuffix(".tmp") }, "the run never created its temporary file")
    kill(process.processIdentifier, signal)
    let stop = Date().addingTimeInterval(30)
    while process.isRunning && Date() < stop { usleep(10_000) }
    if process.isRunning {
      Issue.record("signal \(signal) did not end clpool within 30 s")
      kill(process.processIdentifier, SIGKILL)
    }
    process.waitUntilExit()
    #expect(process.terminationReason == .uncaughtSignal && process.terminationStatus == signal,
      "ended with \(process.terminationReason) \(process.terminationStatus)")
    let left = try scratch.files()
    #expect(left == ["in.npy"], "left behind: \(left)")
  }

  /// A file the user may not write (read-only, or another user's in a folder anyone may write) is
  /// refused as `cp` refuses it, not replaced; root may replace a read-only file, as with `cp`.
  /// Runs as nobody through setpriv when the tests run as root.
  @Test func aFileTheUserMayNotWriteIsNotReplaced() throws {
    let scratch = try Scratch()
    let folder = scratch.path("shared")
    try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: false)
    chmod(scratch.url.path, 0o755)
    chmod(folder, 0o777)
    let x = try scratch.save(try Tensor(shape: [2, 3, 2, 2], repeating: 1), "shared/x.npy")
    chmod(x, 0o644)
    var launcher: [String] = []
    if geteuid() == 0 {
      let setpriv = "/usr/bin/setpriv"
      guard FileManager.default.isExecutableFile(atPath: setpriv) || missing("running as root without \(setpriv) (util-linux)", for: "read-only output test")
      else { return }
      // nobody cannot reach the build folder (a CI clone is 0700): run a copy from the scratch.
      let copy = scratch.path("clpool")
      try FileManager.default.copyItem(atPath: ClpoolRun.executable.path, toPath: copy)
      launcher = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", copy]
    }
    let readOnly = folder + "/read-only.npy", foreign = folder + "/foreign.npy"
    try Data("keep".utf8).write(to: URL(fileURLWithPath: readOnly))
    try Data("keep".utf8).write(to: URL(fileURLWithPath: foreign))
    chmod(readOnly, 0o444)
    if geteuid() == 0 { chmod(foreign, 0o644) }  // root's own, which nobody may not write
    for target in geteuid() == 0 ? [readOnly, foreign] : [readOnly] {
      let arguments = ["pool", x, "-o", target, "--backend", "cpu"]
      let run =
        launcher.isEmpty
        ? try ClpoolRun.run(arguments)
        : try ClpoolRun.program(URL(fileURLWithPath: launcher[0]), Array(launcher.dropFirst()) + arguments)
      #expect(run.status == 2 && run.stderrLines.count == 1 && run.stderr.contains("Permission denied"), "\(target): \(run.stderr)")
      #expect(try Self.bytes(target) == Data("keep".utf8), "\(target) was replaced")
    }
    #expect(try FileManager.default.contentsOfDirectory(atPath: folder).sorted() == ["foreign.npy", "read-only.npy", "x.npy"])
    if geteuid() == 0 {
      let run = try ClpoolRun.run(["pool", x, "-o", readOnly, "--backend", "cpu"])
      #expect(run.status == 0, "root replaces a read-only file, as cp does: \(run.stderr)")
    }
  }

  /// A device named that is not there is a mistake under `auto` too, not a reason to fall back
  /// to the CPU.
  @Test(.enabled(if: ComputeCommandTests.backends.contains("opencl")))
  func aMissingDeviceIsAnErrorUnderAuto() throws {
    let scratch = try Scratch()
    let x = try HostileCLITests.input(scratch)
    for (arguments, environment) in [(["--device", "99"], [:]), ([], ["CLPOOL_DEVICE": "no such device"])] {
      let run = try ClpoolRun.run(["pool", x, "-o", scratch.path("y.npy")] + arguments, environment: environment)
      #expect(run.status == 2 && run.stderrLines.count == 1 && run.stderr.contains("no OpenCL device with"), "\(arguments) \(environment): \(run.stderr)")
      #expect(!scratch.exists("y.npy"))
    }
  }

  /// Shards must compute the same bits, or the bits would depend on the split: a list that mixes
  /// OpenCL implementations (PoCL and rusticl) is refused, and `all` keeps the preferred device's
  /// implementation, noting the others, with one device's bits.
  @Test(.enabled(if: ComputeCommandTests.backends.contains("opencl")))
  func devicesThatComputeOtherBitsAreNotShardsOfOneBatch() throws {
    let environment = ["RUSTICL_ENABLE": "llvmpipe", "POCL_DEVICES": "pthread pthread"]
    let listing = try ClpoolRun.run(["devices", "--json"], environment: environment)
    let object = try JSONSerialization.jsonObject(with: Data(listing.stdout.utf8)) as? [String: Any]
    let devices = (object?["devices"] as? [[String: Any]]) ?? []
    let platform = { (device: [String: Any]) in device["platform"] as? String ?? "" }
    let pocl = devices.filter { platform($0).contains("Portable Computing Language") }.compactMap { $0["index"] as? Int }
    let found = devices.first(where: { platform($0) == "rusticl" })?["index"] as? Int
    guard let rusticl = found, pocl.count == 2
      || missing("RUSTICL_ENABLE=llvmpipe POCL_DEVICES=\"pthread pthread\" gave \(devices.count) devices, not two PoCL and rusticl's llvmpipe", for: "mixed-driver shard test")
    else { return }
    let scratch = try Scratch()
    let x = try scratch.save(try Tensor(shape: [41, 5, 3, 3], scalars: (0..<(41 * 45)).map { Float(($0 * 7919) % 1013) / 97 }), "x.npy")
    func pool(_ device: String, _ output: String) throws -> ClpoolRun {
      try ClpoolRun.run(["pool", x, "-o", scratch.path(output), "--backend", "opencl", "--device", device], environment: environment)
    }
    let mixed = try pool("\(pocl[0]),\(rusticl)", "mixed.npy")
    #expect(mixed.status == 2 && mixed.stderrLines.count == 1 && mixed.stderr.contains("compute different bits"), "\(mixed.stderr)")
    #expect(!scratch.exists("mixed.npy"))
    let all = try pool("all", "all.npy")
    #expect(all.status == 0 && all.stderrLines.count == 1 && all.stderr.contains("--device all leaves out \(rusticl) "), "\(all.stderr)")
    #expect(try pool("\(pocl[0])", "one.npy").status == 0)
    #expect(try Self.bytes(scratch.path("all.npy")) == (try Self.bytes(scratch.path("one.npy"))))
  }

  /// Labels with CRLF line ends are one label a line; control characters in a label are printed
  /// escaped, so a label file cannot send escape sequences to the terminal.
  @Test func labelsAreReadAsLinesAndPrintedEscaped() throws {
    let scratch = try Scratch()
    let x = try scratch.save(try Tensor(shape: [1, 3, 1, 1], scalars: [1, 0, 0]), "x.npy")
    let weight = try scratch.save(try Tensor(shape: [3, 3], scalars: [9, 0, 0, 0, 0, 0, 0, 0, 0]), "w.npy")
    try Data("\u{1B}[31mred\r\nb\r\nc\r\n".utf8).write(to: URL(fileURLWithPath: scratch.path("labels.txt")))
    let run = try ClpoolRun.run(
      ["head", x, "--weight", weight, "--top", "1", "--labels", scratch.path("labels.txt"), "-o", scratch.path("y.npy"), "--backend", "cpu"])
    #expect(run.status == 0, "\(run.stderr)")
    #expect(run.stdout.contains("\\u{1B}[31mred") && !run.stdout.contains("\u{1B}") && !run.stdout.contains("\r"), "\(run.stdout.debugDescription)")
  }

  /// Files that are not what an option wants: one line naming the file and the reason.
  @Test func filesThatAreNotWhatAnOptionWantsAreOneLineErrors() throws {
    let scratch = try Scratch()
    let cam = try scratch.save(try Tensor(shape: [3, 2, 2], repeating: 1), "c.npy")
    let weight = try scratch.save(try Tensor(shape: [3, 4], repeating: 0.5), "w.npy")
    let x = try HostileCLITests.input(scratch)
    // A header with text after its closing brace, which numpy refuses too.
    var trailing = [UInt8](NPYBytes.file(descr: "<f4", shape: [1, 1, 2], payload: NPYBytes.float32([1, 2])))
    let brace = try #require(trailing.firstIndex(of: UInt8(ascii: "}")))
    trailing[brace + 1] = UInt8(ascii: "x")
    try Data(trailing).write(to: URL(fileURLWithPath: scratch.path("trailing.npy")))
    let png = scratch.path("map.png")
    let cases: [([String], String)] = [
      (["pool", scratch.path("trailing.npy"), "-o", scratch.path("y.npy")], "text after the closing '}'"),
      (["cam", cam, "--weight", weight, "--class", "0", "-o", png, "--overlay", scratch.url.path], "cannot read: it is a directory"),
      (["cam", cam, "--weight", weight, "--class", "0", "-o", png, "--overlay", "/dev/null"], "/dev/null: not a PNG or JPEG file"),
      (["cam", cam, "--weight", weight, "--class", "0", "-o", png, "--overlay", scratch.path("none.png")], "No such file or directory"),
      (["cam", cam, "--weight", weight, "--class", "0", "-o", png, "--layout", "ncl"], "--layout ncl has one spatial axis"),
      (["cam", cam, "--weight", weight, "--class", "0", "-o", png, "--layout", "ndhwc"], "three spatial axes"),
      (["head", x, "--weight", weight, "--top", "1", "--labels", "/dev/zero", "-o", scratch.path("y.npy")], "/dev/zero: cannot read: larger than"),
      (["help", "nosuch"], "no subcommand 'nosuch'"),
    ]
    for (arguments, message) in cases {
      let run = try ClpoolRun.run(arguments + (arguments[0] == "help" ? [] : ["--backend", "cpu"]))
      #expect(run.status == 2 && run.stderrLines.count == 1 && run.stderr.contains(message), "\(arguments): \(run.stderr)")
      #expect(!scratch.exists("y.npy") && !scratch.exists("map.png"), "\(arguments) wrote its output")
    }
  }
}
