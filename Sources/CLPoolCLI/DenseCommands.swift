import ArgumentParser
import CLPool
import Foundation

struct DenseCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "dense", abstract: "A dense layer: activation(x·W + b) on a .npy [N,K] input.")

  @Argument(help: "Input .npy, [N,K].")
  var input: String

  @OptionGroup var dense: DenseOptionGroup

  func run() throws {
    try run(dense.storage.dtype.staticType)
  }

  private func run<S: StorageScalar>(_: S.Type) throws {
    let inputs = try DenseInputs<S>(input, dense)
    let geometry = try about(inputs.paths) {
      try DenseGeometry(input: inputs.x.shape, weight: inputs.weight.shape, bias: inputs.bias?.shape, weightLayout: dense.weightLayout)
    }
    let backend = try dense.backendOptions.makeBackend(requiring: S.scalarType).backend(for: .dense(geometry))
    let (y, seconds) = try timed {
      try backend.dense(
        inputs.x, weight: inputs.weight, bias: inputs.bias, weightLayout: dense.weightLayout, activation: dense.activation)
    }
    try inputs.finish("dense", y, dense.outputOptions, backend, seconds)
  }
}

struct HeadCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "head", abstract: "Global average pooling followed by a dense layer, in one call.")

  @Argument(help: "Input .npy feature maps, as for pool.")
  var input: String

  @Option(help: "channels-first (nchw, ncl, ncdhw) or channels-last (nhwc, nlc, ndhwc).")
  var layout: LayoutArgument = .channelsFirst

  @OptionGroup var dense: DenseOptionGroup

  func run() throws {
    try run(dense.storage.dtype.staticType)
  }

  private func run<S: StorageScalar>(_: S.Type) throws {
    let inputs = try DenseInputs<S>(input, dense)
    try layout.check(inputs.x.shape, of: input)
    let (pool, geometry) = try about(inputs.paths) {
      try headGeometry(inputs.x.shape, layout.layout, inputs.weight.shape, inputs.bias?.shape, dense.weightLayout)
    }
    let backend = try dense.backendOptions.makeBackend(requiring: S.scalarType).backend(for: .head(pool, geometry))
    let (y, seconds) = try timed {
      try backend.head(
        inputs.x, layout: layout.layout, weight: inputs.weight, bias: inputs.bias, weightLayout: dense.weightLayout,
        activation: dense.activation)
    }
    try inputs.finish("head", y, dense.outputOptions, backend, seconds)
  }
}

/// The input, weight and bias files of dense and head, in storage type S.
private struct DenseInputs<S: StorageScalar> {
  let x: TypedTensor<S>
  let weight: TypedTensor<S>
  let bias: TypedTensor<S>?
  /// For messages about their shapes.
  let paths: [String]

  init(_ input: String, _ dense: DenseOptionGroup) throws {
    x = try readNPY(input, as: S.self)
    weight = try readNPY(dense.weight, as: S.self)
    bias = try dense.bias.map { try readNPY($0, as: S.self) }
    paths = [input, dense.weight] + (dense.bias.map { [$0] } ?? [])
  }

  /// Writes the result and reports.
  func finish(_ command: String, _ y: TypedTensor<S>, _ output: OutputOptionGroup, _ backend: any Backend, _ seconds: Double)
    throws
  {
    try writeNPY(y, output.output)
    try RunSummary(command, inputs: [x.shape], output: y.shape, path: output.output, backend: backend, seconds: seconds)
      .print(json: output.json)
  }
}
