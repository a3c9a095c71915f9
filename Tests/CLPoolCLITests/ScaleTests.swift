import CLPool
import Foundation
import TestSupport
import Testing

/// Issue 14's guarantee, end to end: `clpool pool` and `clpool head` give the bits of one
/// in-memory library call whether the file is streamed in chunks of any size, sharded over
/// several devices, or split over MPI ranks.
@Suite struct ScaleTests {
  typealias Scratch = ComputeCommandTests.Scratch

  static func bits(_ values: [Float]) -> [UInt32] { values.map(\.bitPattern) }

  /// A feature-map batch with ties, NaN and ±Inf in some planes, and a dense layer for it.
  static func inputs(_ scratch: Scratch, layout: Layout, samples: Int = 23) throws
    -> (x: Tensor, path: String, weight: Tensor, bias: Tensor)
  {
    var random = SplitMix64(seed: TestEnvironment.seed ^ 0x5CA1E)
    let x = try TestData.poolInput([samples, 13, 5, 7], layout: layout, special: .forMax, random: &random)
    let weight = try TestData.uniform([13, 11], in: -1..<1, random: &random)
    let bias = try TestData.uniform([11], in: -1..<1, random: &random)
    let path = try scratch.save(x, "x-\(layout.rawValue).npy")
    _ = try scratch.save(weight, "w.npy")
    _ = try scratch.save(bias, "b.npy")
    return (x, path, weight, bias)
  }

  /// The in-memory results the CLI must reproduce: one library call on the backend `name` selects.
  static func reference(_ backendName: String, _ x: Tensor, _ layout: Layout, _ weight: Tensor, _ bias: Tensor) throws
    -> (mean: [Float], maxima: [Float], indices: [Int64], head: [Float])
  {
    let backend = try BackendSelection.resolve(backend: backendName, environment: [:]).makeBackend()
    let maxima = try backend.globalMaxPool(x, layout: layout, keepDims: false, returnIndices: true)
    return (
      try backend.globalAveragePool(x, layout: layout).scalars, maxima.values.scalars, maxima.indices ?? [],
      try backend.head(x, layout: layout, weight: weight, bias: bias, activation: .softmax).scalars
    )
  }

  /// Runs pool (avg), pool (max with indices) and head with `arguments` added, through `launcher`
  /// (nil: clpool itself), and checks every output against `expected`, bit for bit.
  static func expectSameBits(
    _ scratch: Scratch, _ path: String, layout: Layout, _ expected: (mean: [Float], maxima: [Float], indices: [Int64], head: [Float]),
    _ arguments: [String], environment: [String: String] = [:], launcher: [String]? = nil, _ label: String
  ) throws {
    func run(_ command: [String]) throws {
      let result =
        try launcher.map { launcher in
          try Self.oneMPIJobAtATime {
            try ClpoolRun.program(URL(fileURLWithPath: launcher[0]), Array(launcher.dropFirst()) + [ClpoolRun.executable.path] + command, environment: environment)
          }
        }
        ?? ClpoolRun.run(command, environment: environment)
      #expect(result.status == 0, "\(label): clpool \(command.joined(separator: " ")): \(result.stderr)")
    }
    let layoutArguments = ["--layout", layout == .channelsFirst ? "nchw" : "nhwc"]
    try run(["pool", path, "-o", scratch.path("mean.npy")] + layoutArguments + arguments)
    try run(["pool", path, "--op", "max", "--indices", scratch.path("indices.npy"), "-o", scratch.path("max.npy")] + layoutArguments + arguments)
    try run(["head", path, "--weight", scratch.path("w.npy"), "--bias", scratch.path("b.npy"), "--activation", "softmax", "-o", scratch.path("head.npy")] + layoutArguments + arguments)
    #expect(bits(try scratch.load("mean.npy").scalars) == bits(expected.mean), "\(label): avg")
    #expect(bits(try scratch.load("max.npy").scalars) == bits(expected.maxima), "\(label): max")
    #expect(try ComputeCommandTests.loadIndices(scratch.path("indices.npy")) == expected.indices, "\(label): indices")
    #expect(bits(try scratch.load("head.npy").scalars) == bits(expected.head), "\(label): head")
  }

  @Test(arguments: ComputeCommandTests.backends)
  func streamedChunksOfAnySizeGiveOneCallsBits(_ backend: String) throws {
    let scratch = try Scratch()
    for layout in Layout.allCases {
      let (x, path, weight, bias) = try Self.inputs(scratch, layout: layout)
      let expected = try Self.reference(backend, x, layout, weight, bias)
      let sampleBytes = x.count / x.shape[0] * 4
      // One sample per chunk, a prime number of samples, and the whole file in one chunk.
      for chunk in [1, 7 * sampleBytes, 1 << 30] {
        try Self.expectSameBits(scratch, path, layout: layout, expected, ["--backend", backend, "--chunk-bytes", "\(chunk)"],
          "\(backend) \(layout) chunk \(chunk)")
      }
      // Read and converted rather than mapped: the same array as big-endian float64.
      let bigEndian = scratch.path("x-be.npy")
      try NPYBytes.file(descr: ">f8", shape: x.shape, payload: NPYBytes.float64(x.scalars.map(Double.init), bigEndian: true))
        .write(to: URL(fileURLWithPath: bigEndian))
      try Self.expectSameBits(scratch, bigEndian, layout: layout, expected, ["--backend", backend, "--chunk-bytes", "\(3 * sampleBytes)"],
        "\(backend) \(layout) big-endian float64 file")
      // Fortran order: read whole, one chunk.
      let fortran = scratch.path("x-f.npy")
      try NPYBytes.file(descr: "<f4", fortran: true, shape: x.shape, payload: NPYBytes.float32(Self.fortranOrder(x)))
        .write(to: URL(fileURLWithPath: fortran))
      try Self.expectSameBits(scratch, fortran, layout: layout, expected, ["--backend", backend], "\(backend) \(layout) Fortran order")
    }
  }

  /// Outputs written around the page cache (`CLPOOL_DIRECT_IO=on`, what outputs of 16 MiB or more
  /// get by default) hold the same bits: chunks of 7 samples append less than a block each.
  @Test func directWritesGiveOneCallsBits() throws {
    let scratch = try Scratch()
    let (x, path, weight, bias) = try Self.inputs(scratch, layout: .channelsLast, samples: 401)
    let expected = try Self.reference("cpu", x, .channelsLast, weight, bias)
    try Self.expectSameBits(
      scratch, path, layout: .channelsLast, expected, ["--backend", "cpu", "--chunk-bytes", "\(7 * x.count / x.shape[0] * 4)"],
      environment: ["CLPOOL_DIRECT_IO": "on"], "direct writes")
  }

  /// A C-order tensor's elements in Fortran (column-major) order.
  static func fortranOrder(_ x: Tensor) -> [Float] {
    var strides = [Int](repeating: 1, count: x.rank)
    for axis in stride(from: x.rank - 2, through: 0, by: -1) { strides[axis] = strides[axis + 1] * x.shape[axis + 1] }
    var out = [Float](repeating: 0, count: x.count)
    for f in 0..<x.count {
      var rest = f, c = 0
      for axis in 0..<x.rank {
        c += (rest % x.shape[axis]) * strides[axis]
        rest /= x.shape[axis]
      }
      out[f] = x.scalars[c]
    }
    return out
  }

  /// The PoCL devices `POCL_DEVICES=kinds` gives a clpool process, by index (other drivers
  /// the machine has may be listed too, so the test names PoCL's own).
  static func poclDevices(_ kinds: String) throws -> [(index: Int, name: String)] {
    let run = try ClpoolRun.run(["devices", "--json"], environment: ["POCL_DEVICES": kinds])
    guard run.status == 0, let object = try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any],
      let devices = object["devices"] as? [[String: Any]]
    else { return [] }
    return devices.compactMap { device in
      guard (device["platform"] as? String)?.contains("Portable Computing Language") == true,
        let index = device["index"] as? Int, let name = device["name"] as? String
      else { return nil }
      return (index, name)
    }
  }

  /// `--device 0,1` over two PoCL devices gives one device's bits: two of one kind
  /// (pthread pthread) and two of different kinds (basic pthread).
  @Test func twoDevicesGiveOneDevicesBits() throws {
    let scratch = try Scratch()
    for kinds in ["pthread pthread", "basic pthread"] {
      let devices = try Self.poclDevices(kinds)
      guard devices.count == 2 || missing("POCL_DEVICES=\"\(kinds)\" gave \(devices.count) PoCL devices, not 2", for: "multi-device test")
      else { return }
      let environment = ["POCL_DEVICES": kinds]
      for layout in Layout.allCases {
        let (_, path, _, _) = try Self.inputs(scratch, layout: layout, samples: 41)
        var single: [String: [UInt8]] = [:]
        for device in [devices[1].index, devices[0].index] {
          let outputs = try Self.outputs(scratch, path, layout, ["--backend", "opencl", "--device", "\(device)"], environment)
          if single.isEmpty { single = outputs }
          // Devices of one kind run one compiler: the same bits; PoCL's basic and pthread do too.
          #expect(outputs == single, "POCL_DEVICES=\"\(kinds)\" device \(device) vs \(devices[1].index), \(layout)")
        }
        let list = "\(devices[0].index),\(devices[1].index)"
        for chunk in ["1", "\(1 << 30)"] {
          let sharded = try Self.outputs(scratch, path, layout, ["--backend", "opencl", "--device", list, "--chunk-bytes", chunk, "--json"], environment)
          #expect(sharded == single, "POCL_DEVICES=\"\(kinds)\" --device \(list) chunk \(chunk), \(layout)")
        }
      }
    }
  }

  /// Every output file of pool avg, pool max + indices and head, as bytes.
  static func outputs(_ scratch: Scratch, _ path: String, _ layout: Layout, _ arguments: [String], _ environment: [String: String])
    throws -> [String: [UInt8]]
  {
    let layoutArguments = ["--layout", layout == .channelsFirst ? "nchw" : "nhwc"]
    let commands: [[String]] = [
      ["pool", path, "-o", scratch.path("mean.npy")],
      ["pool", path, "--op", "max", "--indices", scratch.path("indices.npy"), "-o", scratch.path("max.npy")],
      ["head", path, "--weight", scratch.path("w.npy"), "--bias", scratch.path("b.npy"), "-o", scratch.path("head.npy")],
    ]
    for command in commands {
      let run = try ClpoolRun.run(command + layoutArguments + arguments, environment: environment)
      #expect(run.status == 0, "clpool \((command + arguments).joined(separator: " ")): \(run.stderr)")
      if arguments.contains("--json") { #expect(run.stdout.contains("%, 1: "), "two shards named: \(run.stdout)") }
    }
    var files: [String: [UInt8]] = [:]
    for name in ["mean.npy", "max.npy", "indices.npy", "head.npy"] {
      files[name] = [UInt8](try Data(contentsOf: URL(fileURLWithPath: scratch.path(name))))
    }
    return files
  }

  static let mpirun: String? = ["/usr/bin/mpirun", "/usr/local/bin/mpirun"].first { FileManager.default.isExecutableFile(atPath: $0) }
  static let mpiLauncher = ["--oversubscribe", "--allow-run-as-root", "-n", "3"]

  /// Two mpirun starting at once race to create Open MPI's session folder (/tmp/ompi.HOST.UID:
  /// "mkdir … File exists", orte_init failed), so the tests run one job at a time.
  private static let mpiJobs = NSLock()
  static func oneMPIJobAtATime<Result>(_ body: () throws -> Result) rethrows -> Result {
    mpiJobs.lock()
    defer { mpiJobs.unlock() }
    return try body()
  }

  static func mpiAvailable() -> Bool {
    mpirun != nil || missing("no mpirun (scripts/setup installs openmpi-bin)", for: "MPI tests")
  }

  /// `mpirun -n 3 clpool …` writes the one file a single process writes.
  @Test(arguments: ComputeCommandTests.backends)
  func threeMPIRanksGiveOneProcesssBits(_ backend: String) throws {
    guard Self.mpiAvailable(), let mpirun = Self.mpirun else { return }
    let scratch = try Scratch()
    for layout in Layout.allCases {
      let (x, path, weight, bias) = try Self.inputs(scratch, layout: layout, samples: 29)
      let expected = try Self.reference(backend, x, layout, weight, bias)
      for chunk in ["1", "\(1 << 30)"] {
        try Self.expectSameBits(
          scratch, path, layout: layout, expected, ["--backend", backend, "--chunk-bytes", chunk],
          launcher: [mpirun] + Self.mpiLauncher, "mpirun -n 3, \(backend) \(layout) chunk \(chunk)")
      }
      // Fortran order: every rank reads the file whole and computes its own share of it.
      let fortran = scratch.path("x-f.npy")
      try NPYBytes.file(descr: "<f4", fortran: true, shape: x.shape, payload: NPYBytes.float32(Self.fortranOrder(x)))
        .write(to: URL(fileURLWithPath: fortran))
      try Self.expectSameBits(
        scratch, fortran, layout: layout, expected, ["--backend", backend],
        launcher: [mpirun] + Self.mpiLauncher, "mpirun -n 3, \(backend) \(layout) Fortran order")
    }
    // Fewer samples than ranks: a rank with none still takes part.
    let (x, path, weight, bias) = try Self.inputs(scratch, layout: .channelsFirst, samples: 2)
    try Self.expectSameBits(
      scratch, path, layout: .channelsFirst, try Self.reference(backend, x, .channelsFirst, weight, bias), ["--backend", backend],
      launcher: [mpirun] + Self.mpiLauncher, "mpirun -n 3, 2 samples")
  }

  /// A failure on any rank is one line from clpool, the usage status, and no file left behind.
  @Test func anMPIJobFailsWithOneLineAndNoLitter() throws {
    guard Self.mpiAvailable(), let mpirun = Self.mpirun else { return }
    let scratch = try Scratch()
    let (_, path, _, _) = try Self.inputs(scratch, layout: .channelsFirst)
    let before = try scratch.files()
    // The last: --top prints every sample's ranking, which one rank alone does not have.
    for arguments in [["pool", scratch.path("missing.npy"), "-o", scratch.path("y.npy")], ["pool", path, "-o", "/dev/null"],
                      ["head", path, "--weight", path, "-o", scratch.path("y.npy")],
                      ["head", path, "--weight", scratch.path("w.npy"), "-o", scratch.path("y.npy"), "--top", "1"]] {
      let run = try Self.oneMPIJobAtATime {
        try ClpoolRun.program(URL(fileURLWithPath: mpirun), Self.mpiLauncher + [ClpoolRun.executable.path] + arguments)
      }
      // mpirun forwards the ranks' stderr while it prints its own banner, so clpool's line may
      // not start a line of the merged stream: count clpool's messages wherever they are.
      let lines = run.stderr.components(separatedBy: "clpool: ").dropFirst()
      #expect(run.status == 2, "\(arguments): status \(run.status)")
      #expect(lines.count == 1, "\(arguments): \(run.stderr)")
      #expect(try scratch.files() == before, "\(arguments) left files")
    }
  }

  /// On a terminal a progress line shows samples, GB/s and ETA; --quiet and a non-terminal
  /// stderr show none.
  @Test func progressLineOnlyOnATerminal() throws {
    let script = "/usr/bin/script"
    guard FileManager.default.isExecutableFile(atPath: script) || missing("no \(script) (util-linux)", for: "progress-line test")
    else { return }
    let scratch = try Scratch()
    let (_, path, _, _) = try Self.inputs(scratch, layout: .channelsFirst)
    let command = "'\(ClpoolRun.executable.path)' pool '\(path)' -o '\(scratch.path("y.npy"))' --backend cpu --chunk-bytes 1"
    let terminal = try ClpoolRun.program(URL(fileURLWithPath: script), ["-qec", command, "/dev/null"])
    #expect(terminal.status == 0, "\(terminal.stderr)")
    #expect(terminal.stdout.contains("pool: 23/23 samples, "), "\(terminal.stdout.debugDescription)")
    #expect(terminal.stdout.contains("GB/s, ETA "))
    let quiet = try ClpoolRun.program(URL(fileURLWithPath: script), ["-qec", command + " --quiet", "/dev/null"])
    #expect(quiet.status == 0 && !quiet.stdout.contains("samples"), "\(quiet.stdout.debugDescription)")
    let plain = try ClpoolRun.run(["pool", path, "-o", scratch.path("y.npy"), "--backend", "cpu", "--chunk-bytes", "1"])
    #expect(plain.status == 0 && plain.stderr.isEmpty, "\(plain.stderr.debugDescription)")
  }
}
