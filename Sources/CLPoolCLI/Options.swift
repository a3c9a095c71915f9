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

  init?(argument: String) {
    guard let layout = Layout(name: argument) else { return nil }
    self.layout = layout
    name = argument.lowercased()
    rank = ["ncl": 3, "nlc": 3, "nchw": 4, "nhwc": 4, "ncdhw": 5, "ndhwc": 5][name]
  }

  static var allValueStrings: [String] { ["channels-first", "channels-last", "nchw", "nhwc", "ncl", "nlc", "ncdhw", "ndhwc"] }
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

/// The dense-layer inputs, and the output, storage and backend options, of `dense` and `head`.
struct DenseOptionGroup: ParsableArguments {
  @Option(help: "Weight .npy: [K,M] with --weight-layout in-out, [M,K] with out-in.")
  var weight: String

  @Option(help: "Bias .npy, [M].")
  var bias: String?

  @Option(help: "in-out (Keras, [K,M]) or out-in (PyTorch, [M,K]).")
  var weightLayout: WeightLayout = .inOut

  @Option(help: "none, relu, sigmoid or softmax.")
  var activation: Activation = .none

  @OptionGroup var outputOptions: OutputOptionGroup

  @OptionGroup var storage: StorageOptionGroup

  @OptionGroup var backendOptions: BackendOptionGroup
}
