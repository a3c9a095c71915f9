import ArgumentParser
import CLPool
import Foundation

struct PoolCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "pool", abstract: "Global average or max pooling of .npy feature-map arrays.",
    discussion: """
      With several inputs, their spatial sizes may differ (a ragged batch): each is a batch [N_i,C,spatial_i...] with the same C and layout, and the output is [sum of N_i, C], every sample pooled over its own extent, in one launch.
      """)

  @Argument(help: "Input .npy, rank 3-5: [N,C,L], [N,C,H,W], [N,C,D,H,W] (or channels-last); several for a ragged batch.")
  var inputs: [String]

  @OptionGroup var outputOptions: OutputOptionGroup

  @Option(help: "avg or max.")
  var op: PoolOperation = .average

  @Option(help: "channels-first (nchw, ncl, ncdhw) or channels-last (nhwc, nlc, ndhwc).")
  var layout: LayoutArgument = .channelsFirst

  @Flag(help: "Keep the spatial axes as 1s (one input only).")
  var keepdims = false

  @Option(help: "With --op max: also write the first-max flat spatial indices (int64 .npy, [N,C]).")
  var indices: String?

  @OptionGroup var storage: StorageOptionGroup

  @OptionGroup var backendOptions: BackendOptionGroup

  func validate() throws {
    if inputs.isEmpty { throw ValidationError("pool needs an input .npy") }
    if indices != nil && op != .max { throw ValidationError("--indices needs --op max") }
    if keepdims && inputs.count > 1 { throw ValidationError("--keepdims needs a single input: a ragged batch has no common spatial shape") }
    if let indices, OutputFile.sameFile(indices, outputOptions.output) {
      throw ValidationError("--indices and -o name the same file (\(indices)); give each its own")
    }
  }

  func run() throws {
    try run(storage.dtype.staticType)
  }

  private func run<S: StorageScalar>(_: S.Type) throws {
    let arrays = try inputs.map { try readNPY($0, as: S.self) }
    var geometries: [PoolGeometry] = []
    for (path, array) in zip(inputs, arrays) {
      try layout.check(array.shape, of: path)
      geometries.append(try about([path]) { try PoolGeometry(shape: array.shape, layout: layout.layout) })
    }
    let selected = try backendOptions.makeBackend(requiring: S.scalarType)
    let backend = selected.backend(for: .pool(elements: arrays.reduce(0) { $0 + $1.count }))
    let batch = arrays.count == 1 ? nil : try raggedBatch(arrays, geometries)
    let wantIndices = indices != nil
    let ((values, maxIndices), seconds) = try timed { () -> (TypedTensor<S>, [Int64]?) in
      switch (op, batch) {
      case (.average, nil):
        return (try backend.globalAveragePool(arrays[0], layout: layout.layout, keepDims: keepdims), nil)
      case (.max, nil):
        let result = try backend.globalMaxPool(arrays[0], layout: layout.layout, keepDims: keepdims, returnIndices: wantIndices)
        return (result.values, result.indices)
      case (.average, let batch?):
        return (try backend.globalAveragePool(batch), nil)
      case (.max, let batch?):
        let result = try backend.globalMaxPool(batch, returnIndices: wantIndices)
        return (result.values, result.indices)
      }
    }
    // Indices first: if either write fails, nothing of this run is left behind (SPEC: indices
    // are [N, C] whatever --keepdims does to the values).
    let pooledShape = batch?.outputShape ?? geometries[0].outputShape(keepDims: false)
    if let indices, let maxIndices {
      try NPY.write(indices: maxIndices, shape: pooledShape, to: URL(fileURLWithPath: indices))
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
