/// What a `ChunkPipeline` computes on each chunk of a stream's samples.
public enum StreamedOperation {
  /// Global pooling in `layout`, with each plane's first-max position when `indices` (max only).
  case pool(PoolOperation, layout: Layout, indices: Bool)
  /// The fused head, once per activation of `activations` (an output each), with the weight
  /// (`weightShape`, in `weightLayout`) and bias in the stream's storage type. The weight and bias
  /// memory is the caller's and must stay valid until the pipeline is finished or gone.
  case head(
    layout: Layout, weight: UnsafeRawBufferPointer, weightShape: [Int], bias: UnsafeRawBufferPointer?,
    weightLayout: WeightLayout, activations: [Activation])
}

/// The results of one chunk, valid during the `deliver` call only.
public struct ChunkResults {
  /// Samples in the chunk.
  public let samples: Int
  /// One buffer per output, in the storage type: the pooled values, or the head's outputs in the
  /// order of its activations.
  public let outputs: [UnsafeRawBufferPointer]
  /// The first-max positions, when the pooling asked for them.
  public let indices: UnsafeBufferPointer<Int64>?
}

/// One operation over a stream of chunks of whole samples, submitted in order. On a device with
/// memory of its own (`OpenCLBackend` on a GPU), chunk k + 1 is uploaded while chunk k computes
/// and chunk k − 1's results come back, on separate queues; every other backend computes each
/// chunk as it is submitted. Either way the results reach `deliver` in submission order, bitwise
/// those of one call on the whole batch (batch invariance, SPEC), possibly after later chunks
/// were submitted; `finish` delivers the rest.
public final class ChunkPipeline {
  private let engine: any ChunkEngine

  /// - Parameters:
  ///   - backend: the backend that computes every chunk.
  ///   - operation: what to compute.
  ///   - type: the storage type of the chunks and results.
  ///   - sampleShape: one sample's shape (the stream's shape without its first axis).
  ///   - maxSamples: the most samples a chunk holds (buffers are sized for it).
  ///   - overlapTransfers: nil (the default) overlaps where the device has memory of its own;
  ///     true also on an OpenCL CPU device (whose kernels otherwise read the chunk in place);
  ///     false computes each chunk as it is submitted.
  ///   - deliver: takes each chunk's results, in order.
  /// - Throws: `CLPoolError` when the shapes or the type do not suit the operation or the backend.
  public init(
    backend: any Backend, operation: StreamedOperation, type: ScalarType, sampleShape: [Int], maxSamples: Int,
    overlapTransfers: Bool? = nil, deliver: @escaping (ChunkResults) throws -> Void
  ) throws {
    try backend.checkSupport(type)
    let request = try ChunkRequest(
      operation: operation, type: type, sampleShape: sampleShape, maxSamples: max(1, maxSamples), deliver: deliver)
    if overlapTransfers != false, let overlapping = backend as? any OverlappingTransfers,
      let engine = try overlapping.overlappingEngine(request, evenOnHostMemory: overlapTransfers == true)
    {
      self.engine = engine
    } else {
      engine = try SynchronousChunks(backend, request)
    }
  }

  /// True when transfers overlap compute (a device with memory of its own).
  public var overlapsTransfers: Bool { engine.overlapsTransfers }

  /// Starts `samples` samples (at most `maxSamples`, the elements of `samples` × `sampleShape`);
  /// `elements` may be released once this returns. After an error from the computation or from
  /// `deliver`, the pipeline refuses further chunks.
  public func submit(_ elements: UnsafeRawBufferPointer, samples: Int) throws {
    let request = engine.request
    guard samples >= 1, samples <= request.maxSamples else {
      throw CLPoolError.invalidArgument("a chunk holds 1 to \(request.maxSamples) samples, got \(samples)")
    }
    try Buffers.check(elements.count, holds: samples * request.sampleElements, request.type, "the chunk")
    try running { try engine.submit(UnsafeRawBufferPointer(rebasing: elements[..<(samples * request.sampleBytes)]), samples: samples) }
  }

  /// Delivers the results still outstanding.
  public func finish() throws { try running { try engine.finish() } }

  /// Set by an error from the computation or from `deliver`: a chunk may still be in flight, and
  /// its results would be lost, so the stream ends there.
  private var stopped = false

  private func running(_ body: () throws -> Void) throws {
    if stopped { throw CLPoolError.invalidArgument("this stream stopped at an earlier error; start a new ChunkPipeline") }
    do {
      try body()
    } catch {
      stopped = true
      throw error
    }
  }
}

/// A pipeline's parameters, checked once.
struct ChunkRequest {
  let operation: StreamedOperation
  let type: ScalarType
  let sampleShape: [Int]
  let maxSamples: Int
  let deliver: (ChunkResults) throws -> Void
  let sampleElements: Int
  /// Elements of each output per sample.
  let outputElements: Int
  let outputCount: Int
  let wantsIndices: Bool

  var sampleBytes: Int { sampleElements * type.byteWidth }

  init(
    operation: StreamedOperation, type: ScalarType, sampleShape: [Int], maxSamples: Int,
    deliver: @escaping (ChunkResults) throws -> Void
  ) throws {
    (self.operation, self.type, self.sampleShape, self.maxSamples, self.deliver) =
      (operation, type, sampleShape, maxSamples, deliver)
    sampleElements = try Tensor.elementCount(of: [maxSamples] + sampleShape) / maxSamples
    switch operation {
    case .pool(let pooling, let layout, let indices):
      let geometry = try PoolGeometry(shape: [maxSamples] + sampleShape, layout: layout)
      if indices, pooling != .max {
        throw CLPoolError.invalidArgument("indices are the positions of maxima: they need max pooling")
      }
      (outputElements, outputCount, wantsIndices) = (geometry.channels, 1, indices)
    case .head(_, let weight, _, let bias, _, let activations):
      let (_, dense) = try Self.headGeometry(operation, [maxSamples] + sampleShape)
      try Buffers.check(weight.count, holds: dense.inputs * dense.outputs, type, "the head weight")
      if let bias { try Buffers.check(bias.count, holds: dense.outputs, type, "the head bias") }
      guard !activations.isEmpty else { throw CLPoolError.invalidArgument("a streamed head needs an activation") }
      (outputElements, outputCount, wantsIndices) = (dense.outputs, activations.count, false)
    }
    // Two chunks' results at a time where transfers overlap.
    try HostMemory.check(
      elements: maxSamples * outputElements, 2 * (outputCount + (wantsIndices ? 1 : 0)), width: max(8, type.byteWidth),
      what: "a streamed chunk's results")
  }

  /// The shape of a chunk of `samples` samples.
  func shape(_ samples: Int) -> [Int] { [samples] + sampleShape }

  /// The head's geometry on a chunk of `samples` samples (the operation is a head).
  func headGeometry(_ samples: Int) throws -> (pool: PoolGeometry, dense: DenseGeometry) {
    try Self.headGeometry(operation, shape(samples))
  }

  private static func headGeometry(_ operation: StreamedOperation, _ shape: [Int]) throws
    -> (pool: PoolGeometry, dense: DenseGeometry)
  {
    guard case .head(let layout, _, let weightShape, let bias, let weightLayout, _) = operation else {
      preconditionFailure("a pooling stream has no head geometry")
    }
    return try CLPool.headGeometry(
      shape, layout, weightShape, bias == nil ? nil : [weightOutputs(weightShape, weightLayout)], weightLayout)
  }
}

/// How a pipeline computes: `SynchronousChunks`, or a backend's own (`OverlappingTransfers`).
protocol ChunkEngine: AnyObject {
  var request: ChunkRequest { get }
  var overlapsTransfers: Bool { get }
  func submit(_ elements: UnsafeRawBufferPointer, samples: Int) throws
  func finish() throws
}

/// A backend that can overlap a stream's transfers with its compute.
protocol OverlappingTransfers {
  /// The engine for `request`, or nil when it cannot overlap, or when the device computes on
  /// host memory in place and not `evenOnHostMemory`.
  func overlappingEngine(_ request: ChunkRequest, evenOnHostMemory: Bool) throws -> (any ChunkEngine)?
}

/// Host buffers for one chunk's results, sized for the largest chunk.
final class ChunkOutputs {
  let outputs: [UnsafeMutableRawBufferPointer]
  let indices: UnsafeMutableBufferPointer<Int64>?

  init(_ request: ChunkRequest) {
    let elements = max(1, request.maxSamples * request.outputElements)
    // Filled with NaN bits (and index -1), so that an element nothing wrote cannot pass for a result.
    outputs = (0..<request.outputCount).map { _ in
      let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: elements * request.type.byteWidth, alignment: 64)
      buffer.initializeMemory(as: UInt8.self, repeating: 0xFF)
      return buffer
    }
    indices = request.wantsIndices ? .allocate(capacity: elements) : nil
    indices?.initialize(repeating: -1)
  }

  deinit {
    outputs.forEach { $0.deallocate() }
    indices?.deallocate()
  }

  /// Output `index`'s first `elements` elements of `type`.
  func output(_ index: Int, elements: Int, _ type: ScalarType) -> UnsafeMutableRawBufferPointer {
    UnsafeMutableRawBufferPointer(rebasing: outputs[index][..<(elements * type.byteWidth)])
  }

  func indices(elements: Int) -> UnsafeMutableBufferPointer<Int64>? {
    indices.map { UnsafeMutableBufferPointer(rebasing: $0[..<elements]) }
  }

  /// The first `samples` samples' results, for `deliver`.
  func results(_ samples: Int, _ request: ChunkRequest) -> ChunkResults {
    let elements = samples * request.outputElements
    return ChunkResults(
      samples: samples, outputs: outputs.indices.map { UnsafeRawBufferPointer(output($0, elements: elements, request.type)) },
      indices: indices(elements: elements).map { UnsafeBufferPointer($0) })
  }
}

/// Each chunk computed by one call of the backend as it is submitted, and delivered at once.
final class SynchronousChunks: ChunkEngine {
  let request: ChunkRequest
  private let backend: any Backend
  private let buffers: ChunkOutputs

  init(_ backend: any Backend, _ request: ChunkRequest) throws {
    self.backend = backend
    self.request = request
    buffers = ChunkOutputs(request)
  }

  var overlapsTransfers: Bool { false }

  func submit(_ elements: UnsafeRawBufferPointer, samples: Int) throws {
    let (type, shape, elementsOut) = (request.type, request.shape(samples), samples * request.outputElements)
    switch request.operation {
    case .pool(let operation, let layout, _):
      try backend.globalPool(
        elements, type: type, shape: shape, layout: layout, operation: operation,
        into: buffers.output(0, elements: elementsOut, type), indices: buffers.indices(elements: elementsOut))
    case .head(let layout, let weight, let weightShape, let bias, let weightLayout, let activations):
      for (index, activation) in activations.enumerated() {
        try backend.head(
          elements, shape: shape, layout: layout, weight: weight, shape: weightShape, bias: bias, type: type,
          weightLayout: weightLayout, activation: activation, into: buffers.output(index, elements: elementsOut, type))
      }
    }
    try request.deliver(buffers.results(samples, request))
  }

  func finish() throws {}
}
