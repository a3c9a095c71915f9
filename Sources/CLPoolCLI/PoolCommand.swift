import ArgumentParser
import CLPool
import Foundation

struct PoolCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "pool", abstract: "Global average or max pooling of .npy feature-map arrays.",
    discussion: """
      One input streams through the backend a chunk of samples at a time and the output is \
      written as it goes, so it may be larger than memory; under mpirun every rank pools its \
      share of the samples into the one output file.

      With several inputs, their spatial sizes may differ (a ragged batch): each is a batch \
      [N_i,C,spatial_i...] with the same C and layout, and the output is [sum of N_i, C], every \
      sample pooled over its own extent, in one launch.

      Examples:
        clpool pool features.npy -o gap.npy
        clpool pool features.npy -o gmp.npy --op max --indices argmax.npy
        clpool pool nhwc.npy --layout nhwc --dtype float16 -o gap.npy
        clpool pool small.npy large.npy -o ragged.npy
      """)

  @Argument(help: "Input .npy, rank 3-5: [N,C,L], [N,C,H,W], [N,C,D,H,W] (or channels-last); several for a ragged batch.")
  var inputs: [String]

  @OptionGroup var outputOptions: OutputOptionGroup

  @Option(help: "avg or max.")
  var op: PoolOperation = .average

  @Option(help: LayoutArgument.help)
  var layout: LayoutArgument = .channelsFirst

  @Flag(help: "Keep the spatial axes as 1s (one input only).")
  var keepdims = false

  @Option(help: "With --op max: also write the first-max flat spatial indices (int64 .npy, [N,C]).")
  var indices: String?

  @OptionGroup var storage: StorageOptionGroup

  @OptionGroup var backendOptions: BackendOptionGroup

  @OptionGroup var streamOptions: StreamOptionGroup

  func validate() throws {
    if inputs.isEmpty { throw ValidationError("pool needs an input .npy") }
    if indices != nil && op != .max { throw ValidationError("--indices needs --op max") }
    if keepdims && inputs.count > 1 { throw ValidationError("--keepdims needs a single input: a ragged batch has no common spatial shape") }
    if let indices, OutputFile.sameFile(indices, outputOptions.output) {
      throw ValidationError("--indices and -o name the same file (\(indices)); give each its own")
    }
    try checkOutputs([("-o", outputOptions.output), ("--indices", indices)], replaceNoneOf: inputs)
  }

  func run() throws {
    if inputs.count == 1 { return try runStreamed(storage.dtype) }
    try runRagged(storage.dtype.staticType)
  }

  private func runStreamed(_ type: ScalarType) throws {
    let job = try Job()
    defer { job.finish() }
    let (stream, geometry, backend) = try job.step { () -> (SampleStream, PoolGeometry, any Backend) in
      let stream = try SampleStream(path: inputs[0], type: type, chunkBytes: streamOptions.chunkBytes)
      try layout.check(stream.shape, of: inputs[0])
      let geometry = try about(inputs) { try PoolGeometry(shape: stream.shape, layout: layout.layout) }
      let selected = try backendOptions.makeBackend(requiring: type)
      return (stream, geometry, selected.backend(for: .pool(elements: try Tensor.elementCount(of: stream.shape))))
    }
    let mine = job.samples(of: geometry.batch)
    let channels = geometry.channels
    // Each writer is its own step: under MPI, creating one is a collective call.
    let indicesFile = try job.step {
      try indices.map {
        try job.writer($0, shape: geometry.outputShape(keepDims: false), indices: true, elementsPerSample: channels, samples: mine)
      }
    }
    let valuesFile = try job.step {
      try job.writer(
        outputOptions.output, shape: geometry.outputShape(keepDims: keepdims), elementsPerSample: channels, samples: mine)
    }
    let progress = ProgressLine(
      "pool", samples: mine.count, sampleBytes: channels * geometry.spatialSize * type.byteWidth, quiet: outputOptions.quiet,
      job: job)
    let seconds = try job.step {
      try streamChunks(
        stream, job: job, samples: mine, progress: progress, backend: backend,
        .pool(op, layout: layout.layout, indices: indicesFile != nil)
      ) { results in
        try valuesFile.append(results.outputs[0], count: results.samples * channels, type: type)
        if let indicesFile, let positions = results.indices { try indicesFile.append(indices: positions) }
      }
    }
    // Indices first, as in one call: if the values fail to appear, the indices are removed.
    try job.commit(
      (indicesFile.map { [($0, indices!)] } ?? []) + [(valuesFile, outputOptions.output)])
    guard job.isLeader else { return }
    try RunSummary(
      "pool", inputs: [stream.shape], output: geometry.outputShape(keepDims: keepdims), path: outputOptions.output,
      backend: backend, seconds: seconds, ranks: job.world?.size
    ).print(json: outputOptions.json)
  }

  private func runRagged<S: StorageScalar>(_: S.Type) throws {
    let arrays = try inputs.map { try readNPY($0, as: S.self) }
    var geometries: [PoolGeometry] = []
    for (path, array) in zip(inputs, arrays) {
      try layout.check(array.shape, of: path)
      geometries.append(try about([path]) { try PoolGeometry(shape: array.shape, layout: layout.layout) })
    }
    let selected = try backendOptions.makeBackend(requiring: S.scalarType)
    let backend = selected.backend(for: .pool(elements: arrays.reduce(0) { $0 + $1.count }))
    let batch = try raggedBatch(arrays, geometries)
    let ((values, maxIndices), seconds) = try timed { () -> (TypedTensor<S>, [Int64]?) in
      switch op {
      case .average:
        return (try backend.globalAveragePool(batch), nil)
      case .max:
        let result = try backend.globalMaxPool(batch, returnIndices: indices != nil)
        return (result.values, result.indices)
      }
    }
    // Indices first: if either write fails, nothing of this run is left behind.
    if let indices, let maxIndices {
      try NPY.write(indices: maxIndices, shape: batch.outputShape, toPath: indices)
    }
    do {
      try writeNPY(values, outputOptions.output)
    } catch {
      if let indices { try? FileManager.default.removeItem(atPath: indices) }
      throw error
    }
    try RunSummary(
      "pool", inputs: arrays.map(\.shape), output: values.shape, path: outputOptions.output, backend: backend, seconds: seconds
    ).print(json: outputOptions.json)
  }

  /// Every sample of every file, back to back: each file is a batch of one spatial shape.
  private func raggedBatch<S: StorageScalar>(_ arrays: [TypedTensor<S>], _ geometries: [PoolGeometry]) throws
    -> RaggedBatch<S>
  {
    for (path, geometry) in zip(inputs, geometries) where geometry.channels != geometries[0].channels {
      throw CLPoolError.invalidInput("\(path): has \(geometry.channels) channels but \(inputs[0]) has \(geometries[0].channels)")
    }
    let extents = geometries.flatMap { Array(repeating: $0.spatialShape, count: $0.batch) }
    return try RaggedBatch(
      packed: arrays.flatMap(\.scalars), channels: geometries[0].channels, extents: extents, layout: layout.layout)
  }
}
