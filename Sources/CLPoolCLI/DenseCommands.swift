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
    let x = try readNPY(input, as: S.self)
    let parameters = try DenseParameters<S>(dense)
    let geometry = try about([input] + parameters.paths) {
      try DenseGeometry(input: x.shape, weight: parameters.weight.shape, bias: parameters.bias?.shape, weightLayout: dense.weightLayout)
    }
    let backend = try dense.backendOptions.makeBackend(requiring: S.scalarType).backend(for: .dense(geometry))
    let (y, seconds) = try timed {
      try backend.dense(
        x, weight: parameters.weight, bias: parameters.bias, weightLayout: dense.weightLayout, activation: dense.activation)
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
      The input streams through the backend a chunk of samples at a time and the output is written as it goes, so it may be larger than memory; under mpirun every rank computes its share of the samples into the one output file.
      """)

  @Argument(help: "Input .npy feature maps, as for pool.")
  var input: String

  @Option(help: "channels-first (nchw, ncl, ncdhw) or channels-last (nhwc, nlc, ndhwc).")
  var layout: LayoutArgument = .channelsFirst

  @OptionGroup var dense: DenseOptionGroup

  @OptionGroup var streamOptions: StreamOptionGroup

  func run() throws {
    try run(dense.storage.dtype.staticType)
  }

  private func run<S: StorageScalar>(_: S.Type) throws {
    let type = S.scalarType
    let job = try Job()
    defer { job.finish() }
    let (stream, parameters, pool, geometry, backend) = try job.step {
      () -> (SampleStream, DenseParameters<S>, PoolGeometry, DenseGeometry, any Backend) in
      let stream = try SampleStream(path: input, type: type, chunkBytes: streamOptions.chunkBytes)
      try layout.check(stream.shape, of: input)
      let parameters = try DenseParameters<S>(dense)
      let (pool, geometry) = try about([input] + parameters.paths) {
        try headGeometry(stream.shape, layout.layout, parameters.weight.shape, parameters.bias?.shape, dense.weightLayout)
      }
      let backend = try dense.backendOptions.makeBackend(requiring: type).backend(for: .head(pool, geometry))
      return (stream, parameters, pool, geometry, backend)
    }
    let mine = job.samples(of: pool.batch)
    let outputs = geometry.outputs
    let file = try job.step {
      try job.writer(dense.outputOptions.output, shape: geometry.outputShape, elementsPerSample: outputs, samples: mine)
    }
    let progress = ProgressLine(
      "head", samples: mine.count, sampleBytes: pool.channels * pool.spatialSize * type.byteWidth,
      quiet: dense.outputOptions.quiet, job: job)
    let chunkRows = min(stream.samplesPerChunk, max(1, mine.count))
    let seconds = try job.step {
      try withScratch(bytes: chunkRows * outputs * type.byteWidth) { y in
        try parameters.weight.scalars.withUnsafeBytes { weight in
          try (parameters.bias?.scalars ?? []).withUnsafeBytes { bias in
            try streamChunks(stream, job: job, samples: mine, progress: progress) { shape, elements in
              let count = shape[0] * outputs
              try backend.head(
                elements, shape: shape, layout: layout.layout, weight: weight, shape: parameters.weight.shape,
                bias: parameters.bias == nil ? nil : bias, type: type, weightLayout: dense.weightLayout,
                activation: dense.activation, into: UnsafeMutableRawBufferPointer(rebasing: y[..<(count * type.byteWidth)]))
              try file.append(UnsafeRawBufferPointer(y), count: count, type: type)
            }
          }
        }
      }
    }
    try job.commit([(file, dense.outputOptions.output)])
    guard job.isLeader else { return }
    try RunSummary(
      "head", inputs: [stream.shape], output: geometry.outputShape, path: dense.outputOptions.output, backend: backend,
      seconds: seconds, ranks: job.world?.size
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
    weight = try readNPY(dense.weight, as: S.self)
    bias = try dense.bias.map { try readNPY($0, as: S.self) }
    paths = [dense.weight] + (dense.bias.map { [$0] } ?? [])
  }
}
