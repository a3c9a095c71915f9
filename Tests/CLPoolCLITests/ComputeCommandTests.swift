import CLPool
import Foundation
import TestSupport
import Testing

/// `clpool pool | dense | head | cam` on .npy files, as a user runs them, on every backend, checked
/// against the float64 reference (and against numpy itself where it is installed).
@Suite struct ComputeCommandTests {

  /// "cpu", plus "opencl" when a device exists (always in CI, where a missing device must fail).
  static let backends: [String] = {
    let hasDevice = (try? OpenCLDevice.all().isEmpty == false) ?? false
    if !hasDevice && !TestEnvironment.isCI { print("note: OpenCL CLI tests skipped: no OpenCL device") }
    return ["cpu"] + (hasDevice || TestEnvironment.isCI ? ["opencl"] : [])
  }()

  /// A scratch folder per test.
  final class Scratch {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("clpool-cli-\(UUID())")
    init() throws { try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true) }
    deinit { try? FileManager.default.removeItem(at: url) }
    func path(_ name: String) -> String { url.appendingPathComponent(name).path }
    func save(_ tensor: Tensor, _ name: String) throws -> String {
      try NPY.write(tensor, to: url.appendingPathComponent(name))
      return path(name)
    }
    func load(_ name: String) throws -> Tensor { try NPY.readTensor(at: url.appendingPathComponent(name)) }
    func exists(_ name: String) -> Bool { FileManager.default.fileExists(atPath: path(name)) }
    /// Every file in the folder (to prove a failed command left nothing behind).
    func files() throws -> [String] { try FileManager.default.contentsOfDirectory(atPath: url.path).sorted() }
  }

  /// Reads an `<i8` .npy written by clpool (the library reads float arrays only).
  static func loadIndices(_ path: String) throws -> [Int64] {
    let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
    #expect(String(decoding: bytes.prefix(60), as: UTF8.self).contains("'descr': '<i8'"))
    let dataStart = 10 + Int(bytes[8]) + (Int(bytes[9]) << 8)
    var indices: [Int64] = []
    bytes.withUnsafeBytes { raw in
      for offset in stride(from: dataStart, to: raw.count, by: 8) {
        indices.append(Int64(littleEndian: raw.loadUnaligned(fromByteOffset: offset, as: Int64.self)))
      }
    }
    return indices
  }

  static let poolShapes: [(rank: Int, shape: [Int])] = [(3, [2, 5, 11]), (4, [2, 5, 3, 7]), (5, [2, 3, 2, 3, 5])]

  @Test(arguments: backends)
  func poolMatchesTheReferenceForEveryRankAndLayout(_ backend: String) throws {
    let scratch = try Scratch()
    var random = SplitMix64(seed: TestEnvironment.seed)
    for (rank, channelsFirstShape) in Self.poolShapes {
      for layout in Layout.allCases {
        let x = try TestData.poolInput(channelsFirstShape, layout: layout, special: .forMax, random: &random)
        let input = try scratch.save(x, "x\(rank)\(layout).npy")
        let geometry = try PoolGeometry(shape: x.shape, layout: layout)
        let layoutName = layout == .channelsFirst ? ["ncl", "nchw", "ncdhw"][rank - 3] : ["nlc", "nhwc", "ndhwc"][rank - 3]

        let avg = try ClpoolRun.run(["pool", input, "-o", scratch.path("avg.npy"), "--layout", layoutName, "--backend", backend])
        #expect(avg.status == 0, "\(avg.stderr)")
        let mean = try scratch.load("avg.npy")
        #expect(mean.shape == [geometry.batch, geometry.channels])
        let meanCheck = CrossCheck.averagePool(mean.scalars, reference: Float64Reference.averagePool(x.scalars, geometry))
        #expect(meanCheck.passed, "\(backend) rank \(rank) \(layout): \(meanCheck.mismatch ?? "")")

        let max = try ClpoolRun.run([
          "pool", input, "-o", scratch.path("max.npy"), "--op", "max", "--layout", layout.rawValue, "--keepdims",
          "--indices", scratch.path("idx.npy"), "--backend", backend,
        ])
        #expect(max.status == 0, "\(max.stderr)")
        let maxima = try scratch.load("max.npy")
        #expect(maxima.shape == geometry.outputShape(keepDims: true))
        let maxCheck = CrossCheck.maxPool(
          maxima.scalars, indices: try Self.loadIndices(scratch.path("idx.npy")),
          reference: Float64Reference.maxPool(x.scalars, geometry))
        #expect(maxCheck.passed, "\(backend) rank \(rank) \(layout): \(maxCheck.mismatch ?? "")")
      }
    }
  }

  @Test(arguments: backends)
  func denseAndHeadMatchTheReference(_ backend: String) throws {
    let scratch = try Scratch()
    var random = SplitMix64(seed: TestEnvironment.seed)
    let (n, k, m) = (5, 37, 11)
    let x = try TestData.uniform([n, k], in: -1..<1, random: &random)
    let wInOut = try TestData.uniform([k, m], in: -1..<1, random: &random)
    let wOutIn = try Tensor(shape: [m, k], scalars: (0..<(m * k)).map { wInOut.scalars[($0 % k) * m + $0 / k] })
    let bias = try TestData.uniform([m], in: -1..<1, random: &random)
    let (input, inOut, outIn, biasPath) = (try scratch.save(x, "x.npy"), try scratch.save(wInOut, "w.npy"), try scratch.save(wOutIn, "wt.npy"), try scratch.save(bias, "b.npy"))
    let geometry = try DenseGeometry(input: [n, k], weight: [k, m], bias: [m], weightLayout: .inOut)
    for activation in Activation.allCases {
      let expected = Float64Reference.dense(x.scalars.map(Double.init), wInOut.scalars, bias.scalars, geometry, activation)
      for (weight, layout) in [(inOut, "in-out"), (outIn, "out-in")] {
        let run = try ClpoolRun.run([
          "dense", input, "--weight", weight, "--weight-layout", layout, "--bias", biasPath,
          "--activation", activation.rawValue, "-o", scratch.path("y.npy"), "--backend", backend,
        ])
        #expect(run.status == 0, "\(run.stderr)")
        let check = CrossCheck.dense(try scratch.load("y.npy").scalars, reference: expected)
        #expect(check.passed, "\(backend) \(layout) \(activation): \(check.mismatch ?? "")")
      }
    }
    for layout in Layout.allCases {
      let features = try TestData.poolInput([3, k, 4, 5], layout: layout, special: nil, random: &random)
      let featuresPath = try scratch.save(features, "f.npy")
      let pooled = Float64Reference.averagePool(features.scalars, try PoolGeometry(shape: features.shape, layout: layout)).mean
      let expected = Float64Reference.dense(pooled, wInOut.scalars, bias.scalars, try DenseGeometry(input: [3, k], weight: [k, m], bias: [m], weightLayout: .inOut), .softmax)
      let run = try ClpoolRun.run([
        "head", featuresPath, "--layout", layout.rawValue, "--weight", outIn, "--weight-layout", "out-in",
        "--bias", biasPath, "--activation", "softmax", "-o", scratch.path("h.npy"), "--backend", backend, "--json",
      ])
      #expect(run.status == 0, "\(run.stderr)")
      #expect(run.stdout.split(separator: "\n").count == 1 && run.stdout.contains("\"command\":\"head\""))
      let check = CrossCheck.dense(try scratch.load("h.npy").scalars, reference: expected)
      #expect(check.passed, "\(backend) head \(layout): \(check.mismatch ?? "")")
    }
  }

  @Test(arguments: backends)
  func camWritesTheMapAndAHeatMap(_ backend: String) throws {
    let scratch = try Scratch()
    var random = SplitMix64(seed: TestEnvironment.seed)
    let (c, h, w, classes) = (6, 5, 7, 4)
    let features = try TestData.uniform([c, h, w], in: -1..<1, random: &random)
    let weight = try TestData.uniform([c, classes], in: -1..<1, random: &random)
    let (featuresPath, weightPath) = (try scratch.save(features, "f.npy"), try scratch.save(weight, "w.npy"))
    let run = try ClpoolRun.run(["cam", featuresPath, "--weight", weightPath, "--class", "2", "-o", scratch.path("cam.npy"), "--backend", backend])
    #expect(run.status == 0, "\(run.stderr)")
    let map = try scratch.load("cam.npy")
    #expect(map.shape == [h, w])
    // cam[y, x] = Σ_c W[c, 2] · f[c, y, x], in float64.
    let expected = (0..<(h * w)).map { p in (0..<c).reduce(0.0) { $0 + Double(weight.scalars[$1 * classes + 2]) * Double(features.scalars[$1 * h * w + p]) } }
    #expect(CrossCheck.dense(map.scalars, reference: expected).passed)
    // Channels-last, batch-of-one input gives the same map.
    var lastValues = [Float](repeating: 0, count: c * h * w)
    for ch in 0..<c { for p in 0..<(h * w) { lastValues[p * c + ch] = features.scalars[ch * h * w + p] } }
    let last = try scratch.save(try Tensor(shape: [1, h, w, c], scalars: lastValues), "last.npy")
    let lastRun = try ClpoolRun.run(["cam", last, "--layout", "nhwc", "--weight", weightPath, "--class", "2", "-o", scratch.path("cam2.npy"), "--backend", backend])
    #expect(lastRun.status == 0, "\(lastRun.stderr)")
    #expect(CrossCheck.dense(try scratch.load("cam2.npy").scalars, reference: expected).passed)

    let png = try ClpoolRun.run(["cam", featuresPath, "--weight", weightPath, "--class", "3", "-o", scratch.path("cam.png"), "--size", "64x48", "--backend", backend])
    #expect(png.status == 0, "\(png.stderr)")
    let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: scratch.path("cam.png"))))
    #expect(Array(bytes.prefix(8)) == [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])
    let width = bytes[16..<20].reduce(0) { $0 << 8 | Int($1) }, height = bytes[20..<24].reduce(0) { $0 << 8 | Int($1) }
    #expect((width, height) == (64, 48))
  }

  /// Several inputs of different spatial sizes pool as one ragged batch: [sum of N_i, C], each
  /// sample over its own extent, in either layout; a channel mismatch or --keepdims is refused.
  @Test(arguments: backends)
  func severalInputsPoolAsARaggedBatch(_ backend: String) throws {
    let scratch = try Scratch()
    var random = SplitMix64(seed: TestEnvironment.seed)
    for layout in Layout.allCases {
      var paths: [String] = []
      var (mean, meanAbs, maxima, indices): ([Double], [Double], [Double], [Int64]) = ([], [], [], [])
      for (i, shape) in [[2, 9, 3, 4], [1, 9, 7, 2], [3, 9, 1, 1]].enumerated() {
        let x = try TestData.poolInput(shape, layout: layout, special: .forMax, random: &random)
        paths.append(try scratch.save(x, "r\(i).npy"))
        let geometry = try PoolGeometry(shape: x.shape, layout: layout)
        let average = Float64Reference.averagePool(x.scalars, geometry), max = Float64Reference.maxPool(x.scalars, geometry)
        (mean, meanAbs, maxima, indices) = (mean + average.mean, meanAbs + average.meanAbs, maxima + max.values, indices + max.indices)
      }
      let avg = try ClpoolRun.run(["pool"] + paths + ["-o", scratch.path("avg.npy"), "--layout", layout.rawValue, "--backend", backend])
      #expect(avg.status == 0, "\(avg.stderr)")
      let pooled = try scratch.load("avg.npy")
      #expect(pooled.shape == [6, 9])
      #expect(CrossCheck.averagePool(pooled.scalars, reference: (mean, meanAbs)).passed, "\(backend) \(layout)")
      let max = try ClpoolRun.run(
        ["pool"] + paths + ["-o", scratch.path("max.npy"), "--op", "max", "--indices", scratch.path("idx.npy"), "--layout", layout.rawValue, "--backend", backend])
      #expect(max.status == 0, "\(max.stderr)")
      let check = CrossCheck.maxPool(
        try scratch.load("max.npy").scalars, indices: try Self.loadIndices(scratch.path("idx.npy")), reference: (maxima, indices))
      #expect(check.passed, "\(backend) \(layout): \(check.mismatch ?? "")")
    }
    let other = try scratch.save(try TestData.uniform([1, 4, 2, 2], in: -1..<1, random: &random), "other.npy")
    let before = try scratch.files()
    let mismatch = try ClpoolRun.run(["pool", scratch.path("r0.npy"), other, "-o", scratch.path("bad.npy"), "--backend", backend])
    #expect(mismatch.status == 2 && mismatch.stderr.contains("other.npy") && mismatch.stderr.contains("4 channels"), "\(mismatch.stderr)")
    let keep = try ClpoolRun.run(["pool", scratch.path("r0.npy"), scratch.path("r1.npy"), "-o", scratch.path("bad.npy"), "--keepdims"])
    #expect(keep.status == 2 && keep.stderr.contains("--keepdims"), "\(keep.stderr)")
    #expect(try scratch.files() == before)
  }

  /// --dtype: float64 keeps what float32 sums lose; float16 rounds the inputs to half first.
  @Test(arguments: backends)
  func dtypeSelectsTheStorageType(_ backend: String) throws {
    let scratch = try Scratch()
    // One plane of float64 values [1e8, 1, -1e8]: float32 loses the 1 (mean 0), float64 keeps it.
    var data = NPYBytes.file(descr: "<f8", shape: [1, 1, 3], bytes: 0)
    for value in [1e8, 1.0, -1e8] { withUnsafeBytes(of: value.bitPattern.littleEndian) { data.append(contentsOf: $0) } }
    try data.write(to: URL(fileURLWithPath: scratch.path("wide.npy")))
    let wide = try ClpoolRun.run(["pool", scratch.path("wide.npy"), "-o", scratch.path("m64.npy"), "--dtype", "float64", "--backend", backend])
    #expect(wide.status == 0, "\(wide.stderr)")
    #expect(try scratch.load("m64.npy").scalars == [Float(1.0 / 3)], "\(backend)")
    #expect(try ClpoolRun.run(["pool", scratch.path("wide.npy"), "-o", scratch.path("m32.npy"), "--backend", backend]).status == 0)
    #expect(try scratch.load("m32.npy").scalars == [0], "\(backend): float32 should lose the 1 (else this test proves nothing)")
    // 1 + 2^-12 is not a half: stored as float16 it is 1.
    let narrow = try scratch.save(try Tensor(shape: [1, 2, 1], scalars: [1 + 0x1p-12, 1 + 0x1p-12]), "narrow.npy")
    let half = try ClpoolRun.run(["pool", narrow, "-o", scratch.path("m16.npy"), "--dtype", "float16", "--backend", backend])
    #expect(half.status == 0, "\(half.stderr)")
    #expect(try scratch.load("m16.npy").scalars == [1, 1], "\(backend)")
    let weight = try scratch.save(try Tensor(shape: [1, 1], scalars: [3]), "w.npy")
    let head = try ClpoolRun.run(["head", scratch.path("wide.npy"), "--weight", weight, "-o", scratch.path("h64.npy"), "--dtype", "float64", "--backend", backend])
    #expect(head.status == 0, "\(head.stderr)")
    #expect(try scratch.load("h64.npy").scalars == [1], "\(backend)")
    let bad = try ClpoolRun.run(["pool", narrow, "-o", scratch.path("x.npy"), "--dtype", "float128"])
    #expect(bad.status == 2 && bad.stderr.contains("float16"), "\(bad.stderr)")
  }

  /// Files written by numpy itself (float16 big-endian, Fortran-order float64), checked against
  /// numpy's own results.
  @Test func numpyFilesMatchNumpy() throws {
    let probe = Process()
    probe.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    probe.arguments = ["python3", "-c", "import numpy"]
    probe.standardError = FileHandle.nullDevice
    guard (try? probe.run()) != nil, ({ probe.waitUntilExit(); return probe.terminationStatus == 0 })() else {
      print("note: numpy cross-check skipped: python3 with numpy not found")
      return
    }
    let scratch = try Scratch()
    let script = """
      import numpy as np, sys
      d = sys.argv[1]
      rng = np.random.default_rng()
      x = (rng.standard_normal((3, 4, 5, 6)) + 1).astype(np.float32)
      np.save(d + '/x16.npy', x.astype('>f2'))
      np.save(d + '/xf.npy', np.asfortranarray(x.astype(np.float64)))
      np.save(d + '/ref_avg16.npy', x.astype('>f2').astype(np.float64).mean(axis=(2, 3)))
      np.save(d + '/ref_max.npy', x.max(axis=(2, 3)).astype(np.float64))
      np.save(d + '/ref_idx.npy', x.reshape(3, 4, -1).argmax(-1).astype('<f8'))
      """
    let generator = Process()
    generator.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    generator.arguments = ["python3", "-c", script, scratch.url.path]
    try generator.run()
    generator.waitUntilExit()
    try #require(generator.terminationStatus == 0)
    for backend in Self.backends {
      let avg = try ClpoolRun.run(["pool", scratch.path("x16.npy"), "-o", scratch.path("avg.npy"), "--backend", backend])
      #expect(avg.status == 0, "\(avg.stderr)")
      let reference = try scratch.load("ref_avg16.npy").scalars.map(Double.init)
      let meanAbs = [Double](repeating: 1, count: reference.count)  // |x| is O(1) here
      #expect(CrossCheck.averagePool(try scratch.load("avg.npy").scalars, reference: (reference, meanAbs)).passed, "\(backend)")
      let max = try ClpoolRun.run(["pool", scratch.path("xf.npy"), "-o", scratch.path("max.npy"), "--op", "max", "--indices", scratch.path("idx.npy"), "--backend", backend])
      #expect(max.status == 0, "\(max.stderr)")
      #expect(try scratch.load("max.npy").scalars == scratch.load("ref_max.npy").scalars, "\(backend)")
      #expect(try Self.loadIndices(scratch.path("idx.npy")) == scratch.load("ref_idx.npy").scalars.map { Int64($0) }, "\(backend)")
    }
  }

  /// Every malformed input exits 2 with one line naming the file, and writes nothing.
  @Test func malformedInputsExitTwoAndWriteNothing() throws {
    let scratch = try Scratch()
    let cases: [(String, Data, String)] = [
      ("truncated.npy", NPYBytes.file(descr: "<f4", shape: [2, 3, 4], bytes: 40), "bytes of data follow"),
      ("magic.npy", Data("not a numpy file at all".utf8), "not a .npy file"),
      ("lying.npy", NPYBytes.file(descr: "<f4", shape: [9, 9, 9], bytes: 96), "header says shape 9x9x9"),
      ("int32.npy", NPYBytes.file(descr: "<i4", shape: [2, 3, 4], bytes: 96), "unsupported dtype '<i4'"),
      ("object.npy", NPYBytes.file(descr: "|O", shape: [2, 3, 4], bytes: 192), "object arrays"),
    ]
    for (name, data, message) in cases {
      try data.write(to: scratch.url.appendingPathComponent(name))
      let before = try scratch.files()
      let run = try ClpoolRun.run(["pool", scratch.path(name), "-o", scratch.path("out.npy"), "--backend", "cpu"])
      #expect(run.status == 2, "\(name)")
      #expect(run.stderrLines.count == 1 && run.stderr.contains(name) && run.stderr.contains(message), "\(name): \(run.stderr)")
      #expect(try scratch.files() == before, "\(name) left a file behind")
    }
    // A failed second output (the indices) leaves neither file.
    let sample = try scratch.save(try Tensor(shape: [1, 2, 2, 2], scalars: [1, 2, 3, 4, 5, 6, 7, 8]), "sample.npy")
    let before = try scratch.files()
    let unwritable = try ClpoolRun.run(["pool", sample, "-o", scratch.path("v.npy"), "--op", "max", "--indices", "/nonexistent/i.npy", "--backend", "cpu"])
    #expect(unwritable.status == 2 && unwritable.stderrLines.count == 1 && unwritable.stderr.contains("/nonexistent/i.npy"))
    #expect(try scratch.files() == before)
    let good = try scratch.save(try Tensor(shape: [2, 3], repeating: 1), "rank2.npy")
    let weight = try scratch.save(try Tensor(shape: [4, 2], repeating: 1), "w.npy")
    let usage: [([String], String)] = [
      (["pool", good, "-o", scratch.path("o.npy")], "rank 2"),
      (["pool", good, "-o", scratch.path("o.npy"), "--indices", scratch.path("i.npy")], "--indices needs --op max"),
      (["pool", good, "-o", scratch.path("o.npy"), "--layout", "nwhc"], "nwhc"),
      (["pool", scratch.path("missing.npy"), "-o", scratch.path("o.npy")], "missing.npy: cannot read"),
      (["dense", good, "--weight", weight, "-o", scratch.path("o.npy")], "does not match input 2x3"),
      (["dense", good, "--weight", weight, "--activation", "tanh", "-o", scratch.path("o.npy")], "tanh"),
      (["cam", good, "--weight", weight, "--class", "0", "-o", scratch.path("o.jpg")], "must end in .png or .npy"),
      (["cam", try scratch.save(try Tensor(shape: [4, 2, 2], repeating: 1), "f.npy"), "--weight", weight, "--class", "2", "-o", scratch.path("o.npy")], "class 2 is out of range"),
    ]
    for (arguments, message) in usage {
      let run = try ClpoolRun.run(arguments + ["--backend", "cpu"])
      #expect(run.status == 2, "\(arguments)")
      #expect(run.stderrLines.count == 1 && run.stderr.contains(message), "\(arguments): \(run.stderr)")
      #expect(!scratch.exists("o.npy") && !scratch.exists("o.jpg") && !scratch.exists("i.npy"))
    }
  }
}
