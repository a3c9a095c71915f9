import ArgumentParser
import CLPool
import Foundation

struct DenseCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "dense", abstract: "A dense layer: activation(x·W + b) on a .npy [N,K] input.",
    usage: "clpool dense <input> --weight <weight> --output <output> [<options>]",
    discussion: """
      Example: softmax probabilities from pooled features and a weight [K,M]:
        clpool dense gap.npy --weight w.npy --bias b.npy --activation softmax -o p.npy
      """)

  @Argument(help: "Input .npy, [N,K].")
  var input: String

  @OptionGroup var dense: DenseOptionGroup

  func validate() throws {
    try checkOutputs([("-o", dense.outputOptions.output)], replaceNoneOf: [input] + dense.weights.paths)
  }

  func run() throws {
    try run(dense.storage.dtype.staticType)
  }

  private func run<S: StorageScalar>(_: S.Type) throws {
    let x = try readNPY(input, as: S.self)
    let parameters = try DenseParameters<S>(dense)
    let geometry = try about([input] + parameters.paths) {
      try DenseGeometry(input: x.shape, weight: parameters.weight.shape, bias: parameters.bias?.shape, weightLayout: dense.weights.weightLayout)
    }
    let backend = try dense.backendOptions.makeBackend(requiring: S.scalarType).backend(for: .dense(geometry))
    let (y, seconds) = try timed {
      try backend.dense(
        x, weight: parameters.weight, bias: parameters.bias, weightLayout: dense.weights.weightLayout, activation: dense.activation)
    }
    try writeNPY(y, dense.outputOptions.output)
    try RunSummary("dense", inputs: [x.shape], output: y.shape, path: dense.outputOptions.output, backend: backend, seconds: seconds)
      .print(json: dense.outputOptions.json)
  }
}

struct HeadCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "head", abstract: "Global average pooling followed by a dense layer, in one call.",
    discussion: """
      The input streams through the backend a chunk of samples at a time and the output is written \
      as it goes, so it may be larger than memory; under mpirun every rank computes its share of \
      the samples into the one output file.

      With --top K, each sample's K most probable classes are printed too: the softmax of the \
      logits in float64, ties to the lower class index. It needs --activation none (the output \
      is the logits) or softmax, and one process.

      Examples:
        clpool head x.npy --weight w.npy --bias b.npy -o logits.npy
        clpool head x.npy --weight w.npy -o logits.npy --top 5 --labels labels.txt
      """)

  @Argument(help: "Input .npy feature maps, as for pool.")
  var input: String

  @Option(help: LayoutArgument.help)
  var layout: LayoutArgument = .channelsFirst

  @OptionGroup var dense: DenseOptionGroup

  @OptionGroup var streamOptions: StreamOptionGroup

  @OptionGroup var topOptions: TopClassesOptionGroup

  func validate() throws {
    if topOptions.top != nil && dense.activation != .none && dense.activation != .softmax {
      throw ValidationError(
        "--top ranks softmax probabilities of the logits: it needs --activation none or softmax, not \(dense.activation.rawValue)")
    }
    let labels = topOptions.labels.map { [$0] } ?? []
    try checkOutputs([("-o", dense.outputOptions.output)], replaceNoneOf: [input] + dense.weights.paths + labels)
  }

  func run() throws {
    try run(dense.storage.dtype.staticType)
  }

  private func run<S: StorageScalar>(_: S.Type) throws {
    let type = S.scalarType
    let job = try Job()
    defer { job.finish() }
    let (stream, parameters, pool, geometry, backend, labels) = try job.step {
      () -> (SampleStream, DenseParameters<S>, PoolGeometry, DenseGeometry, any Backend, [String]?) in
      let stream = try SampleStream(path: input, type: type, chunkBytes: streamOptions.chunkBytes)
      try layout.check(stream.shape, of: input)
      let parameters = try DenseParameters<S>(dense)
      let (pool, geometry) = try about([input] + parameters.paths) {
        try headGeometry(stream.shape, layout.layout, parameters.weight.shape, parameters.bias?.shape, dense.weights.weightLayout)
      }
      let labels = try topOptions.readLabels(classes: geometry.outputs)
      if topOptions.top != nil, let world = job.world, world.size > 1 {
        throw CLPoolError.invalidArgument("--top prints every sample's ranking from one process; run it without mpirun (\(world.size) ranks)")
      }
      let backend = try dense.backendOptions.makeBackend(requiring: type).backend(for: .head(pool, geometry))
      return (stream, parameters, pool, geometry, backend, labels)
    }
    var ranking = topOptions.top.map { TopClassesCollector(k: $0, labels: labels) }
    let mine = job.samples(of: pool.batch)
    let outputs = geometry.outputs
    let file = try job.step {
      try job.writer(dense.outputOptions.output, shape: geometry.outputShape, elementsPerSample: outputs, samples: mine)
    }
    let progress = ProgressLine(
      "head", samples: mine.count, sampleBytes: pool.channels * pool.spatialSize * type.byteWidth,
      quiet: dense.outputOptions.quiet, job: job)
    // The ranking needs the logits: the output itself with --activation none, else a second
    // output of each chunk.
    let activations = [dense.activation] + (ranking != nil && dense.activation != .none ? [.none] : [])
    let seconds = try job.step {
      try parameters.weight.scalars.withUnsafeBytes { weight in
        try (parameters.bias?.scalars ?? []).withUnsafeBytes { bias in
          try streamChunks(
            stream, job: job, samples: mine, progress: progress, backend: backend,
            .head(
              layout: layout.layout, weight: weight, weightShape: parameters.weight.shape,
              bias: parameters.bias == nil ? nil : bias, weightLayout: dense.weights.weightLayout, activations: activations)
          ) { results in
            try file.append(results.outputs[0], count: results.samples * outputs, type: type)
            ranking?.add(logits: results.outputs.last!, as: S.self, rows: results.samples, classes: outputs)
          }
        }
      }
    }
    try job.commit([(file, dense.outputOptions.output)])
    guard job.isLeader else { return }
    if let ranking, !dense.outputOptions.json { ranking.printTable() }
    try RunSummary(
      "head", inputs: [stream.shape], output: geometry.outputShape, path: dense.outputOptions.output, backend: backend,
      seconds: seconds, ranks: job.world?.size, top: ranking?.samples
    ).print(json: dense.outputOptions.json)
  }
}

/// The weight and bias files of dense and head, in storage type S.
private struct DenseParameters<S: StorageScalar> {
  let weight: TypedTensor<S>
  let bias: TypedTensor<S>?
  /// For messages about their shapes.
  let paths: [String]

  init(_ dense: DenseOptionGroup) throws {
    weight = try readNPY(dense.weights.weight, as: S.self)
    bias = try dense.weights.bias.map { try readNPY($0, as: S.self) }
    paths = dense.weights.paths
  }
}
