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
extension WeightLayout: ExpressibleByArgument {}
extension Activation: ExpressibleByArgument {}

/// The dense-layer inputs shared by `dense` and `head`.
struct DenseOptionGroup: ParsableArguments {
  @Option(help: "Weight .npy: [K,M] with --weight-layout in-out, [M,K] with out-in.")
  var weight: String

  @Option(help: "Bias .npy, [M].")
  var bias: String?

  @Option(help: "in-out (Keras, [K,M]) or out-in (PyTorch, [M,K]).")
  var weightLayout: WeightLayout = .inOut

  @Option(help: "none, relu, sigmoid or softmax.")
  var activation: Activation = .none

  /// Reads the input, weight and bias, runs `compute` on the selected backend, writes the
  /// result and reports: the whole of `clpool dense` and `clpool head` but the operation.
  func run(
    _ command: String, input: String, output: String, backendOptions: BackendOptionGroup, json: Bool,
    _ compute: (any Backend, Tensor, Tensor, Tensor?) throws -> Tensor
  ) throws {
    let x = try readNPY(input)
    let (weights, biases) = (try readNPY(weight), try bias.map(readNPY))
    let backend = try backendOptions.selection().makeBackend()
    let (y, seconds) = try timed { try compute(backend, x, weights, biases) }
    try writeNPY(y, output)
    try RunSummary(command, input: x, output: y, path: output, backend: backend, seconds: seconds).print(json: json)
  }
}

func readNPY(_ path: String) throws -> Tensor {
  try NPY.readTensor(at: URL(fileURLWithPath: path))
}

func writeNPY(_ tensor: Tensor, _ path: String) throws {
  try NPY.write(tensor, to: URL(fileURLWithPath: path))
}

/// One line of JSON describing a finished command.
struct RunSummary: Encodable {
  let command: String
  let inputShape: [Int]
  let outputShape: [Int]
  let output: String
  let backend: String
  let device: String
  let seconds: Double

  init(_ command: String, input: Tensor, output: Tensor, path: String, backend: any Backend, seconds: Double) {
    self.command = command
    inputShape = input.shape
    outputShape = output.shape
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
    commandName: "pool", abstract: "Global average or max pooling of a .npy feature-map array.")

  @Argument(help: "Input .npy, rank 3-5: [N,C,L], [N,C,H,W], [N,C,D,H,W] (or channels-last).")
  var input: String

  @Option(name: .shortAndLong, help: "Output .npy (float32).")
  var output: String

  @Option(help: "avg or max.")
  var op: PoolOperation = .average

  @Option(help: "channels-first (nchw, ncl, ncdhw) or channels-last (nhwc, nlc, ndhwc).")
  var layout: Layout = .channelsFirst

  @Flag(help: "Keep the spatial axes as 1s.")
  var keepdims = false

  @Option(help: "With --op max: also write the first-max flat spatial indices (int64 .npy).")
  var indices: String?

  @OptionGroup var backendOptions: BackendOptionGroup

  @Flag(help: "Print a one-line JSON summary.")
  var json = false

  func validate() throws {
    if indices != nil && op != .max { throw ValidationError("--indices needs --op max") }
  }

  func run() throws {
    let x = try readNPY(input)
    let backend = try backendOptions.selection().makeBackend()
    let (result, seconds) = try timed { () -> MaxPoolResult in
      switch op {
      case .average:
        return MaxPoolResult(values: try backend.globalAveragePool(x, layout: layout, keepDims: keepdims), indices: nil)
      case .max:
        return try backend.globalMaxPool(x, layout: layout, keepDims: keepdims, returnIndices: indices != nil)
      }
    }
    // Indices first: if either write fails, nothing of this run is left behind (SPEC: indices
    // are [N, C] whatever --keepdims does to the values).
    if let indices, let values = result.indices {
      let shape = try PoolGeometry(shape: x.shape, layout: layout).outputShape(keepDims: false)
      try NPY.write(indices: values, shape: shape, to: URL(fileURLWithPath: indices))
    }
    do {
      try writeNPY(result.values, output)
    } catch {
      if let indices { try? FileManager.default.removeItem(atPath: indices) }
      throw error
    }
    try RunSummary("pool", input: x, output: result.values, path: output, backend: backend, seconds: seconds).print(json: json)
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
    try dense.run("dense", input: input, output: output, backendOptions: backendOptions, json: json) {
      backend, x, weight, bias in
      try backend.dense(x, weight: weight, bias: bias, weightLayout: dense.weightLayout, activation: dense.activation)
    }
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
    try dense.run("head", input: input, output: output, backendOptions: backendOptions, json: json) {
      backend, x, weight, bias in
      try backend.head(
        x, layout: layout, weight: weight, bias: bias, weightLayout: dense.weightLayout, activation: dense.activation)
    }
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
    try RunSummary("cam", input: features, output: map, path: output, backend: backend, seconds: seconds).print(json: json)
  }
}
