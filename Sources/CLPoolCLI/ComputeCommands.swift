import ArgumentParser
import CLPool
import Foundation

// `clpool pool | dense | head | cam`: .npy in, .npy (or .png) out. Each command reads its inputs,
// calls one library operation on the selected backend, and writes its outputs whole (temporary
// file + rename), so a failure leaves no partial file.

extension Layout: ExpressibleByArgument {
  public init?(argument: String) { self.init(name: argument) }
  public static var allValueStrings: [String] {
    ["channels-first", "channels-last", "nchw", "nhwc", "ncl", "nlc", "ncdhw", "ndhwc"]
  }
  public static var allValueDescriptions: [String: String] {
    Dictionary(uniqueKeysWithValues: allValueStrings.map { ($0, $0) })
  }
}
extension PoolOperation: ExpressibleByArgument {}
extension ScalarType: ExpressibleByArgument {}

/// `--dtype`, shared by pool, dense and head.
struct StorageOptionGroup: ParsableArguments {
  @Option(
    help: ArgumentHelp(
      "Storage type to compute in: float16 (float32 arithmetic, half storage), float32, or float64 (on OpenCL, needs cl_khr_fp64).",
      discussion: "Inputs are rounded once from their .npy type into this one (beyond ±65504 a float16 is ±Inf); the output is float32 (<f4) either way."))
  var dtype: ScalarType = .float32

  /// Calls `body` with the storage type as a static type.
  func with<Result>(_ body: (any StorageScalar.Type) throws -> Result) rethrows -> Result {
    switch dtype {
    case .float16: return try body(Float16.self)
    case .float32: return try body(Float.self)
    case .float64: return try body(Double.self)
    }
  }
}
extension WeightLayout: ExpressibleByArgument {}
extension Activation: ExpressibleByArgument {}

/// The dense-layer inputs (and storage type) shared by `dense` and `head`.
struct DenseOptionGroup: ParsableArguments {
  @Option(help: "Weight .npy: [K,M] with --weight-layout in-out, [M,K] with out-in.")
  var weight: String

  @Option(help: "Bias .npy, [M].")
  var bias: String?

  @Option(help: "in-out (Keras, [K,M]) or out-in (PyTorch, [M,K]).")
  var weightLayout: WeightLayout = .inOut

  @Option(help: "none, relu, sigmoid or softmax.")
  var activation: Activation = .none

  @OptionGroup var storage: StorageOptionGroup

  /// Reads the input, weight and bias in `storage`'s type, runs dense (`poolLayout` nil) or the
  /// head on the selected backend, writes the result and reports: the whole of `clpool dense`
  /// and `clpool head`.
  func run(
    _ command: String, input: String, output: String, poolLayout: Layout?, backendOptions: BackendOptionGroup,
    json: Bool
  ) throws {
    func run<S: StorageScalar>(_ type: S.Type) throws {
      let x = try readNPY(input, as: type)
      let (weights, biases) = (try readNPY(weight, as: type), try bias.map { try readNPY($0, as: type) })
      let backend = try backendOptions.selection().makeBackend(requiring: S.scalarType)
      let (y, seconds) = try timed {
        guard let poolLayout else {
          return try backend.dense(x, weight: weights, bias: biases, weightLayout: weightLayout, activation: activation)
        }
        return try backend.head(
          x, layout: poolLayout, weight: weights, bias: biases, weightLayout: weightLayout, activation: activation)
      }
      try writeNPY(Tensor(converting: y), output)
      try RunSummary(command, inputs: [x.shape], output: y.shape, path: output, backend: backend, seconds: seconds)
        .print(json: json)
    }
    try storage.with { try run($0) }
  }
}

func readNPY(_ path: String) throws -> Tensor {
  try NPY.readTensor(at: URL(fileURLWithPath: path))
}

func readNPY<S: StorageScalar>(_ path: String, as type: S.Type) throws -> TypedTensor<S> {
  try NPY.readTensor(at: URL(fileURLWithPath: path), as: type)
}

func writeNPY(_ tensor: Tensor, _ path: String) throws {
  try NPY.write(tensor, to: URL(fileURLWithPath: path))
}

/// One line of JSON describing a finished command.
struct RunSummary: Encodable {
  let command: String
  /// The input's shape; several inputs (a ragged `pool`) give `inputShapes` instead.
  let inputShape: [Int]?
  let inputShapes: [[Int]]?
  let outputShape: [Int]
  let output: String
  let backend: String
  let device: String
  let seconds: Double

  init(_ command: String, inputs: [[Int]], output: [Int], path: String, backend: any Backend, seconds: Double) {
    self.command = command
    (inputShape, inputShapes) = inputs.count == 1 ? (inputs[0], nil) : (nil, inputs)
    outputShape = output
    self.output = path
    self.backend = backend.kind.rawValue
    device = backend.deviceName
    self.seconds = seconds
  }

  func print(json: Bool) throws {
    guard json else { return }
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    Swift.print(String(decoding: try encoder.encode(self), as: UTF8.self))
  }
}

/// Runs `body` and returns its result with the seconds it took.
func timed<Result>(_ body: () throws -> Result) rethrows -> (Result, Double) {
  let start = DispatchTime.now().uptimeNanoseconds
  let result = try body()
  return (result, Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9)
}

struct PoolCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "pool", abstract: "Global average or max pooling of .npy feature-map arrays.",
    discussion: """
      With several inputs, their spatial sizes may differ (a ragged batch): each is a batch
      [N_i,C,spatial_i...] with the same C and layout, and the output is [sum of N_i, C], every
      sample pooled over its own extent, in one launch.
      """)

  @Argument(help: "Input .npy, rank 3-5: [N,C,L], [N,C,H,W], [N,C,D,H,W] (or channels-last); several for a ragged batch.")
  var inputs: [String]

  @Option(name: .shortAndLong, help: "Output .npy (float32).")
  var output: String

  @Option(help: "avg or max.")
  var op: PoolOperation = .average

  @Option(help: "channels-first (nchw, ncl, ncdhw) or channels-last (nhwc, nlc, ndhwc).")
  var layout: Layout = .channelsFirst

  @Flag(help: "Keep the spatial axes as 1s (one input only).")
  var keepdims = false

  @Option(help: "With --op max: also write the first-max flat spatial indices (int64 .npy).")
  var indices: String?

  @OptionGroup var storage: StorageOptionGroup

  @OptionGroup var backendOptions: BackendOptionGroup

  @Flag(help: "Print a one-line JSON summary.")
  var json = false

  func validate() throws {
    if inputs.isEmpty { throw ValidationError("pool needs an input .npy") }
    if indices != nil && op != .max { throw ValidationError("--indices needs --op max") }
    if keepdims && inputs.count > 1 { throw ValidationError("--keepdims needs a single input: a ragged batch has no common spatial shape") }
  }

  func run() throws {
    try storage.with { try run($0) }
  }

  private func run<S: StorageScalar>(_ type: S.Type) throws {
    let arrays = try inputs.map { try readNPY($0, as: type) }
    let backend = try backendOptions.selection().makeBackend(requiring: S.scalarType)
    let input: Pooled<S> = arrays.count == 1 ? .whole(arrays[0]) : .ragged(try raggedBatch(arrays))
    let (result, seconds) = try timed { () -> MaxPoolResult<S> in
      switch (op, input) {
      case (.average, .whole(let x)):
        return MaxPoolResult(values: try backend.globalAveragePool(x, layout: layout, keepDims: keepdims), indices: nil)
      case (.max, .whole(let x)):
        return try backend.globalMaxPool(x, layout: layout, keepDims: keepdims, returnIndices: indices != nil)
      case (.average, .ragged(let batch)):
        return MaxPoolResult(values: try backend.globalAveragePool(batch), indices: nil)
      case (.max, .ragged(let batch)):
        return try backend.globalMaxPool(batch, returnIndices: indices != nil)
      }
    }
    // Indices first: if either write fails, nothing of this run is left behind (SPEC: indices
    // are [N, C] whatever --keepdims does to the values).
    let pooledShape: [Int]  // [N, C]
    switch input {
    case .whole(let x): pooledShape = try PoolGeometry(shape: x.shape, layout: layout).outputShape(keepDims: false)
    case .ragged(let batch): pooledShape = batch.outputShape
    }
    if let indices, let values = result.indices {
      try NPY.write(indices: values, shape: pooledShape, to: URL(fileURLWithPath: indices))
    }
    do {
      try writeNPY(Tensor(converting: result.values), output)
    } catch {
      if let indices { try? FileManager.default.removeItem(atPath: indices) }
      throw error
    }
    try RunSummary("pool", inputs: arrays.map(\.shape), output: result.values.shape, path: output, backend: backend, seconds: seconds)
      .print(json: json)
  }

  private enum Pooled<S: StorageScalar> {
    case whole(TypedTensor<S>)
    case ragged(RaggedBatch<S>)
  }

  /// Every sample of every file, back to back: each file is a batch of one spatial shape.
  private func raggedBatch<S: StorageScalar>(_ arrays: [TypedTensor<S>]) throws -> RaggedBatch<S> {
    var extents: [[Int]] = []
    var channels: Int?
    for (path, array) in zip(inputs, arrays) {
      do {
        let geometry = try PoolGeometry(shape: array.shape, layout: layout)
        if let channels, geometry.channels != channels {
          throw CLPoolError.invalidShape("has \(geometry.channels) channels but \(inputs[0]) has \(channels)")
        }
        channels = geometry.channels
        extents += Array(repeating: geometry.spatialShape, count: geometry.batch)
      } catch let error as CLPoolError {
        throw CLPoolError.invalidInput("\(path): \(error.description)")
      }
    }
    return try RaggedBatch(packed: arrays.flatMap(\.scalars), channels: channels ?? 0, extents: extents, layout: layout)
  }
}

struct DenseCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "dense", abstract: "A dense layer: activation(x·W + b) on a .npy [N,K] input.")

  @Argument(help: "Input .npy, [N,K].")
  var input: String

  @OptionGroup var dense: DenseOptionGroup

  @Option(name: .shortAndLong, help: "Output .npy (float32), [N,M].")
  var output: String

  @OptionGroup var backendOptions: BackendOptionGroup

  @Flag(help: "Print a one-line JSON summary.")
  var json = false

  func run() throws {
    try dense.run("dense", input: input, output: output, poolLayout: nil, backendOptions: backendOptions, json: json)
  }
}

struct HeadCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "head", abstract: "Global average pooling followed by a dense layer, in one call.")

  @Argument(help: "Input .npy feature maps, as for pool.")
  var input: String

  @OptionGroup var dense: DenseOptionGroup

  @Option(help: "channels-first (nchw, ncl, ncdhw) or channels-last (nhwc, nlc, ndhwc).")
  var layout: Layout = .channelsFirst

  @Option(name: .shortAndLong, help: "Output .npy (float32), [N,M].")
  var output: String

  @OptionGroup var backendOptions: BackendOptionGroup

  @Flag(help: "Print a one-line JSON summary.")
  var json = false

  func run() throws {
    try dense.run("head", input: input, output: output, poolLayout: layout, backendOptions: backendOptions, json: json)
  }
}

struct CamCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "cam",
    abstract: "The class activation map of one sample's feature maps, as .npy or a PNG heat map.")

  @Argument(help: "Input .npy: [C,H,W] or [1,C,H,W] (channels-last: [H,W,C] or [1,H,W,C]).")
  var input: String

  @Option(help: "The head's dense weight .npy: [C,M] (in-out) or [M,C] (out-in).")
  var weight: String

  @Option(help: "in-out (Keras, [C,M]) or out-in (PyTorch, [M,C]).")
  var weightLayout: WeightLayout = .inOut

  @Option(name: .customLong("class"), help: "The class index k.")
  var classIndex: Int

  @Option(help: "channels-first or channels-last.")
  var layout: Layout = .channelsFirst

  @Option(name: .shortAndLong, help: "OUT.npy for the raw [H,W] map, OUT.png for a heat map.")
  var output: String

  @Option(help: "PNG size WxH (default: the map scaled so its longer side is 256 pixels).")
  var size: String?

  @OptionGroup var backendOptions: BackendOptionGroup

  @Flag(help: "Print a one-line JSON summary.")
  var json = false

  private var isPNG: Bool { output.lowercased().hasSuffix(".png") }

  func validate() throws {
    guard isPNG || output.lowercased().hasSuffix(".npy") else {
      throw ValidationError("--output must end in .png or .npy, got '\(output)'")
    }
    if size != nil {
      guard isPNG else { throw ValidationError("--size applies to .png output only") }
      _ = try parsedSize()
    }
  }

  private func parsedSize() throws -> (width: Int, height: Int)? {
    guard let size else { return nil }
    let parts = size.lowercased().split(separator: "x")
    guard parts.count == 2, let width = Int(parts[0]), let height = Int(parts[1]), width > 0, height > 0,
      width <= 16_384, height <= 16_384
    else { throw ValidationError("--size must be WxH with 1 <= W, H <= 16384, got '\(size)'") }
    return (width, height)
  }

  func run() throws {
    let features = try readNPY(input)
    let weights = try readNPY(weight)
    let backend = try backendOptions.selection().makeBackend()
    let (map, seconds) = try timed {
      try backend.classActivationMap(features, layout: layout, weight: weights, weightLayout: weightLayout, classIndex: classIndex)
    }
    if isPNG {
      let (height, width) = (map.shape[0], map.shape[1])
      let scale = 256.0 / Double(max(height, width))
      let target = try parsedSize() ?? (max(1, Int((Double(width) * scale).rounded())), max(1, Int((Double(height) * scale).rounded())))
      let pixels = try HeatMap.render(map, width: target.width, height: target.height)
      try HeatMap.writePNG(rgb: pixels, width: target.width, height: target.height, to: URL(fileURLWithPath: output))
    } else {
      try writeNPY(map, output)
    }
    try RunSummary("cam", inputs: [features.shape], output: map.shape, path: output, backend: backend, seconds: seconds)
      .print(json: json)
  }
}
