import ArgumentParser
import CLPool

// The option groups the commands share. They hold data only; each command has its own `run`.

extension PoolOperation: ExpressibleByArgument {}
extension ScalarType: ExpressibleByArgument {}
extension WeightLayout: ExpressibleByArgument {}
extension Activation: ExpressibleByArgument {}

/// `--layout`: the canonical names and the framework spellings, which also say how many spatial
/// axes the input has (`nchw`: two, so rank 4), checked against each input.
struct LayoutArgument: ExpressibleByArgument, Equatable {
  let layout: Layout
  /// The input rank the spelling implies: ncl/nlc 3, nchw/nhwc 4, ncdhw/ndhwc 5; nil for
  /// channels-first/channels-last, which take any pooling rank.
  let rank: Int?
  let name: String

  static let channelsFirst = LayoutArgument(argument: "channels-first")!

  /// The help of every `--layout`; the values are listed below it with the shape each means.
  static let help = ArgumentHelp("How the feature maps are stored.")

  init?(argument: String) {
    guard let layout = Layout(name: argument) else { return nil }
    let name = argument.lowercased()
    self.layout = layout
    self.name = name
    rank = Self.spatialRanks.first { layout.name(spatialRank: $0) == name }.map { $0 + 2 }
  }

  private static let spatialRanks = 1...3
  private static let axes = ["L", "H,W", "D,H,W"]

  static var allValueStrings: [String] {
    Layout.allCases.map(\.rawValue) + spatialRanks.flatMap { rank in Layout.allCases.map { $0.name(spatialRank: rank) } }
  }

  static var allValueDescriptions: [String: String] {
    var descriptions = [
      Layout.channelsFirst.rawValue: "[N,C,spatial...], 1 to 3 spatial axes",
      Layout.channelsLast.rawValue: "[N,spatial...,C], 1 to 3 spatial axes",
    ]
    for rank in spatialRanks {
      let spatial = axes[rank - 1]
      descriptions[Layout.channelsFirst.name(spatialRank: rank)] = "[N,C,\(spatial)]"
      descriptions[Layout.channelsLast.name(spatialRank: rank)] = "[N,\(spatial),C]"
    }
    return descriptions
  }

  var defaultValueDescription: String { name }

  /// Throws, naming the file, when `shape`'s rank is not the one the spelling implies.
  func check(_ shape: [Int], of path: String) throws {
    guard let rank, shape.count != rank else { return }
    throw CLPoolError.invalidInput(
      "\(path): --layout \(name) takes a rank-\(rank) input, got rank \(shape.count) (\(Tensor.describe(shape)))")
  }
}

/// `--backend` / `--device`, shared by every subcommand that computes.
struct BackendOptionGroup: ParsableArguments {
  @Option(help: "auto, cpu or opencl (default: $CLPOOL_BACKEND, else auto).")
  var backend: String?

  @Option(
    help: ArgumentHelp(
      "OpenCL device: an index, a name substring, several indices (0,1) or all (default: $CLPOOL_DEVICE).",
      discussion: "Several devices share every batch in proportion to their measured speed; the result is the one each gives alone."))
  var device: String?

  @Flag(help: "On a failed OpenCL build, print the device's whole build log after the one-line error.")
  var verbose = false
}

/// `-o` and `--json`, shared by the commands that write a result file.
struct OutputOptionGroup: ParsableArguments {
  @Option(name: .shortAndLong, help: "Output file: .npy (little-endian float32); cam also writes .png. Written whole or not at all.")
  var output: String

  @Flag(help: "Print a one-line JSON summary.")
  var json = false

  @Flag(help: "No progress line on stderr (there is none anyway when stderr is not a terminal).")
  var quiet = false
}

/// `--dtype`, shared by pool, dense and head.
struct StorageOptionGroup: ParsableArguments {
  @Option(
    help: ArgumentHelp(
      "Storage type to compute in: float16 (float32 arithmetic, half storage), float32, or float64 (on OpenCL, needs cl_khr_fp64).",
      discussion: "Inputs are rounded once from their .npy type into this one (beyond ±65504 a float16 is ±Inf); the output is float32 (<f4) either way."))
  var dtype: ScalarType = .float32
}

/// The dense layer's weight, bias and weight layout: of `dense`, `head` and `cam`.
struct WeightOptionGroup: ParsableArguments {
  @Option(help: "Weight .npy: [K,M] with --weight-layout in-out, [M,K] with out-in (for head and cam, K is the channels C).")
  var weight: String

  @Option(help: "Bias .npy, [M] (cam uses it only to rank the classes for --class top).")
  var bias: String?

  @Option(help: "in-out (Keras, [K,M]) or out-in (PyTorch, [M,K]).")
  var weightLayout: WeightLayout = .inOut

  /// The weight's path, then the bias's: the files a failure may be about.
  var paths: [String] { [weight] + (bias.map { [$0] } ?? []) }
}

/// The dense-layer inputs, and the output, storage and backend options, of `dense` and `head`.
struct DenseOptionGroup: ParsableArguments {
  @OptionGroup var weights: WeightOptionGroup

  @Option(help: "none, relu, sigmoid or softmax.")
  var activation: Activation = .none

  @OptionGroup var outputOptions: OutputOptionGroup

  @OptionGroup var storage: StorageOptionGroup

  @OptionGroup var backendOptions: BackendOptionGroup
}
