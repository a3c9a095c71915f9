import COpenCL

extension OpenCLBackend: OverlappingTransfers {
  /// Overlapped streaming on a device with memory of its own. A CPU device's kernels read host
  /// memory in place (`upload`), so there is no transfer to overlap unless asked; a chunk larger
  /// than one allocation is left to the synchronous path, which computes it in parts.
  func overlappingEngine(_ request: ChunkRequest, evenOnHostMemory: Bool) throws -> (any ChunkEngine)? {
    guard evenOnHostMemory || device.type != .cpu,
      UInt64(request.maxSamples * request.sampleBytes) <= allocationLimit
    else { return nil }
    return try OverlappedChunks(self, request)
  }
}

/// A stream on an OpenCL device, double-buffered: each chunk is uploaded on a queue of its own,
/// computed on the backend's queue and downloaded on a third, chained by events, so chunk k + 1's
/// upload overlaps chunk k's kernels and chunk k − 1's download. Two slots alternate, each with
/// a device input buffer and host result buffers; a slot is reused only after its results were
/// delivered. The head's weight and bias are uploaded once for the whole stream.
final class OverlappedChunks: ChunkEngine {
  let request: ChunkRequest
  private let backend: OpenCLBackend
  private let uploads: CLQueue
  private let downloads: CLQueue
  private let parameters: (weight: CLBuffer, bias: CLBuffer?)?
  private let slots: [Slot]
  private var next = 0
  /// The slot whose results are not delivered yet.
  private var pending: Slot?

  private final class Slot {
    let input: CLBuffer
    let host: ChunkOutputs
    var samples = 0
    /// The chunk's device results (kept until delivered) and their downloads.
    var results: [CLBuffer] = []
    var downloaded: [CLEvent] = []

    init(_ input: CLBuffer, _ host: ChunkOutputs) {
      self.input = input
      self.host = host
    }
  }

  var overlapsTransfers: Bool { true }

  init(_ backend: OpenCLBackend, _ request: ChunkRequest) throws {
    self.backend = backend
    self.request = request
    let device = backend.device.handles.device
    uploads = try CLQueue(context: backend.context, device: device)
    downloads = try CLQueue(context: backend.context, device: device)
    let inputBytes = request.maxSamples * request.sampleBytes
    if case .head(_, let weight, _, let bias, _, _) = request.operation {
      let dense = try request.headGeometry(request.maxSamples).dense
      try backend.checkDense(dense, request.type, input: 0, weight: dense.inputs * dense.outputs)
      parameters = (try backend.upload(weight), try bias.map { try backend.upload($0) })
    } else {
      parameters = nil
    }
    slots = try (0..<2).map { _ in Slot(try backend.freshBuffer(bytes: inputBytes), ChunkOutputs(request)) }
  }

  deinit {
    // The host result buffers go with the slots, and on a CPU device the kernels read the
    // caller's weight in place: nothing may still be running.
    try? downloads.finish()
    try? backend.queue.finish()
    try? uploads.finish()
  }

  /// After an error here a slot may still be in flight: `ChunkPipeline` takes no more chunks.
  func submit(_ elements: UnsafeRawBufferPointer, samples: Int) throws {
    let slot = slots[next]
    let uploaded = try uploads.startWriting(elements, to: slot.input)
    // `elements` is the caller's again once this returns, also when a later step throws.
    defer { _ = try? uploaded.wait() }
    try uploads.flush()
    let ((results, indices), chain) = try backend.deviceCall(after: [uploaded]) { chain in
      try compute(slot.input, samples, on: &chain)
    }
    try backend.queue.flush()
    let elementsOut = samples * request.outputElements
    slot.results = results + (indices.map { [$0] } ?? [])
    slot.downloaded = try results.indices.map {
      try downloads.startReading(
        results[$0], into: slot.host.output($0, elements: elementsOut, request.type), after: [chain.completion!])
    }
    if let indices, let host = slot.host.indices(elements: elementsOut) {
      slot.downloaded.append(
        try downloads.startReading(indices, into: UnsafeMutableRawBufferPointer(host), after: [chain.completion!]))
    }
    try downloads.flush()
    slot.samples = samples
    try uploaded.wait()
    if let earlier = pending {
      pending = nil
      try deliver(earlier)
    }
    pending = slot
    next = 1 - next
  }

  func finish() throws {
    guard let last = pending else { return }
    pending = nil
    try deliver(last)
  }

  private func deliver(_ slot: Slot) throws {
    for event in slot.downloaded { try event.wait() }
    slot.downloaded = []
    slot.results = []
    try request.deliver(slot.host.results(slot.samples, request))
  }

  /// Enqueues the operation on chunk buffer `x` of `samples` samples; every buffer is new, since
  /// the commands run after the lock is released.
  private func compute(_ x: CLBuffer, _ samples: Int, on chain: inout CommandChain) throws -> ([CLBuffer], CLBuffer?) {
    let type = request.type
    switch request.operation {
    case .pool(let operation, let layout, let indices):
      let geometry = try PoolGeometry(shape: request.shape(samples), layout: layout)
      let output = try backend.poolOnDevice(x, type, geometry, operation, returnIndices: indices, fresh: true, on: &chain)
      return ([output.values], output.indices)
    case .head(_, _, _, _, _, let activations):
      let (pool, dense) = try request.headGeometry(samples)
      let (weight, biasBuffer) = parameters!
      let outputs = try activations.map {
        try backend.headOnDevice(x, weight, biasBuffer, type, pool, dense, $0, fresh: true, on: &chain)
      }
      return (outputs, nil)
    }
  }

}
