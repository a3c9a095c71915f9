import ArgumentParser
import CLPool
import Foundation

struct DenseCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "dense", abstract: "A dense layer: activation(x·W + b) on a .npy [N,K] input.")

  @Argument(help: "Input .npy, [N,K].")
  var input: String

  @OptionGroup var dense: DenseOptionGroup

  @OptionGroup var outputOptions: OutputOptionGroup

  @OptionGroup var storage: StorageOptionGroup

  @OptionGroup var backendOptions: BackendOptionGroup

  func run() throws {
    try run(storage.dtype.staticType)
  }

  private func run<S: StorageScalar>(_: S.Type) throws {
    let (x, weight, bias) = try readDenseInputs(input, dense, as: S.self)
    let paths = [input, dense.weight] + (dense.bias.map { [$0] } ?? [])
    let geometry = try about(paths) {
      try DenseGeometry(input: x.shape, weight: weight.shape, bias: bias?.shape, weightLayout: dense.weightLayout)
    }
    let backend = try backendOptions.makeBackend(requiring: S.scalarType).backend(for: .dense(geometry))
    let (y, seconds) = try timed {
      try backend.dense(x, weight: weight, bias: bias, weightLayout: dense.weightLayout, activation: dense.activation)
    }
    try writeNPY(y, outputOptions.output)
    try RunSummary("dense", inputs: [x.shape], output: y.shape, path: outputOptions.output, backend: backend, seconds: seconds)
      .print(json: outputOptions.json)
  }
}

struct HeadCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "head", abstract: "Global average pooling followed by a dense layer, in one call.")

  @Argument(help: "Input .npy feature maps, as for pool.")
  var input: String

  @OptionGroup var dense: DenseOptionGroup

  @Option(help: "channels-first (nchw, ncl, ncdhw) or channels-last (nhwc, nlc, ndhwc).")
  var layout: LayoutArgument = .channelsFirst

  @OptionGroup var outputOptions: OutputOptionGroup

  @OptionGroup var storage: StorageOptionGroup

  @OptionGroup var backendOptions: BackendOptionGroup

  func run() throws {
    try run(storage.dtype.staticType)
  }

  private func run<S: StorageScalar>(_: S.Type) throws {
    let (x, weight, bias) = try readDenseInputs(input, dense, as: S.self)
    try layout.check(x.shape, of: input)
    let paths = [input, dense.weight] + (dense.bias.map { [$0] } ?? [])
    let (pool, geometry) = try about(paths) {
      try headGeometry(x.shape, layout.layout, weight.shape, bias?.shape, dense.weightLayout)
    }
    let backend = try backendOptions.makeBackend(requiring: S.scalarType).backend(for: .head(pool, geometry))
    let (y, seconds) = try timed {
      try backend.head(
        x, layout: layout.layout, weight: weight, bias: bias, weightLayout: dense.weightLayout, activation: dense.activation)
    }
    try writeNPY(y, outputOptions.output)
    try RunSummary("head", inputs: [x.shape], output: y.shape, path: outputOptions.output, backend: backend, seconds: seconds)
      .print(json: outputOptions.json)
  }
}

/// The input, weight and bias files of dense and head, in storage type S.
private func readDenseInputs<S: StorageScalar>(_ input: String, _ dense: DenseOptionGroup, as _: S.Type) throws
  -> (TypedTensor<S>, TypedTensor<S>, TypedTensor<S>?)
{
  (try readNPY(input, as: S.self), try readNPY(dense.weight, as: S.self), try dense.bias.map { try readNPY($0, as: S.self) })
}
