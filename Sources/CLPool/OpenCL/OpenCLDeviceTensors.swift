import COpenCL

/// Operations on device tensors: the same operations as on host tensors, validated the same way,
/// whose inputs and results stay in device memory. Each call enqueues its commands after the
/// inputs' own completion events and `waitingFor` (a caller's events), and returns without
/// waiting; the result's `completionEvent` tells when it is ready.
extension OpenCLBackend {
  /// Copies a host tensor into this backend's device memory, where later calls can use it
  /// without moving it again.
  public func upload<S: StorageScalar>(_ tensor: TypedTensor<S>) throws -> DeviceTensor {
    try checkSupport(S.scalarType)
    try checkAllocation(tensor.count * S.scalarType.byteWidth, what: "tensor \(Tensor.describe(tensor.shape))")
    let buffer = try tensor.scalars.withUnsafeBytes { bytes in
      try CLBuffer(
        context: context, bytes: bytes.count, flags: cl_mem_flags(CL_MEM_READ_WRITE),
        host: bytes.baseAddress.map { .copy($0) })
    }
    return DeviceTensor(shape: tensor.shape, scalarType: S.scalarType, buffer: buffer, owner: self, ready: nil)
  }

  /// Copies a device tensor back to the host, once the operations that produce it are done.
  public func download<S: StorageScalar>(_ tensor: DeviceTensor, as _: S.Type) throws -> TypedTensor<S> {
    try owns(tensor)
    guard tensor.scalarType == S.scalarType else {
      throw CLPoolError.invalidArgument(
        "a \(tensor.scalarType.rawValue) device tensor cannot be downloaded as \(S.scalarType.rawValue)")
    }
    var values = [S](repeating: 0, count: tensor.count)
    try hostCall(after: tensor.ready.map { [$0] } ?? []) { chain in
      try values.withUnsafeMutableBytes { try chain.read(tensor.buffer, offset: tensor.copyOffset, into: $0) }
    }
    return try TypedTensor(shape: tensor.shape, scalars: values)
  }

  /// A float32 device tensor back on the host.
  public func download(_ tensor: DeviceTensor) throws -> Tensor {
    try download(tensor, as: Float.self)
  }

  /// Global average pooling of a device tensor; the result stays on the device.
  public func globalAveragePool(
    _ input: DeviceTensor, layout: Layout = .channelsFirst, keepDims: Bool = false, waitingFor events: [cl_event] = []
  ) throws -> DeviceTensor {
    try devicePool(input, layout, keepDims, .average, events)
  }

  /// Global max pooling (values) of a device tensor; the result stays on the device.
  public func globalMaxPool(
    _ input: DeviceTensor, layout: Layout = .channelsFirst, keepDims: Bool = false, waitingFor events: [cl_event] = []
  ) throws -> DeviceTensor {
    try devicePool(input, layout, keepDims, .max, events)
  }

  private func devicePool(
    _ input: DeviceTensor, _ layout: Layout, _ keepDims: Bool, _ operation: PoolOperation, _ events: [cl_event]
  ) throws -> DeviceTensor {
    let geometry = try PoolGeometry(shape: input.shape, layout: layout)
    return try deviceResult(
      geometry.outputShape(keepDims: keepDims), input.scalarType, inputs: [input], waitingFor: events,
      empty: geometry.planes == 0
    ) { chain, buffers in
      try poolOnDevice(buffers[0], input.scalarType, geometry, operation, returnIndices: false, fresh: true, on: &chain).values
    }
  }

  /// A dense layer on device tensors (all of one storage type); the result stays on the device.
  public func dense(
    _ input: DeviceTensor, weight: DeviceTensor, bias: DeviceTensor? = nil, weightLayout: WeightLayout = .inOut,
    activation: Activation = .none, waitingFor events: [cl_event] = []
  ) throws -> DeviceTensor {
    let geometry = try DenseGeometry(input: input.shape, weight: weight.shape, bias: bias?.shape, weightLayout: weightLayout)
    return try deviceProduct(input, weight, bias, geometry, events) { chain, x, w, b in
      try denseOnDevice(x, w, b, input.scalarType, geometry, activation, fresh: true, on: &chain)
    }
  }

  /// The fused head on device tensors (all of one storage type); the result stays on the device.
  public func head(
    _ features: DeviceTensor, layout: Layout = .channelsFirst, weight: DeviceTensor, bias: DeviceTensor? = nil,
    weightLayout: WeightLayout = .inOut, activation: Activation = .none, waitingFor events: [cl_event] = []
  ) throws -> DeviceTensor {
    let (pool, geometry) = try headGeometry(features.shape, layout, weight.shape, bias?.shape, weightLayout)
    return try deviceProduct(features, weight, bias, geometry, events) { chain, x, w, b in
      try headOnDevice(x, w, b, features.scalarType, pool, geometry, activation, fresh: true, on: &chain)
    }
  }

  /// Dense and head on device tensors: one storage type, the kernels' size limits, then `enqueue`.
  private func deviceProduct(
    _ x: DeviceTensor, _ weight: DeviceTensor, _ bias: DeviceTensor?, _ geometry: DenseGeometry, _ events: [cl_event],
    _ enqueue: (inout CommandChain, CLBuffer, CLBuffer, CLBuffer?) throws -> CLBuffer
  ) throws -> DeviceTensor {
    let inputs = [x, weight] + (bias.map { [$0] } ?? [])
    try checkSameType(inputs)
    try checkDense(geometry, x.scalarType, input: 0, weight: 0)
    return try deviceResult(
      geometry.outputShape, x.scalarType, inputs: inputs, waitingFor: events, empty: geometry.rows == 0 || geometry.outputs == 0
    ) { chain, buffers in
      try enqueue(&chain, buffers[0], buffers[1], bias == nil ? nil : buffers[2])
    }
  }

  /// Enqueues `enqueue` after the inputs' and the caller's events, without waiting, and wraps the
  /// buffer it returns (an empty result gets a placeholder buffer, since OpenCL has no zero-size
  /// buffers).
  private func deviceResult(
    _ shape: [Int], _ type: ScalarType, inputs: [DeviceTensor], waitingFor events: [cl_event], empty: Bool,
    _ enqueue: (inout CommandChain, [CLBuffer]) throws -> CLBuffer
  ) throws -> DeviceTensor {
    try inputs.forEach(owns)
    try checkSupport(type)
    guard !empty else {
      return DeviceTensor(shape: shape, scalarType: type, buffer: try freshBuffer(bytes: 4), owner: self, ready: nil)
    }
    let prerequisites = try events.map { try CLEvent(retaining: $0) } + inputs.compactMap(\.ready)
    let (buffer, chain) = try deviceCall(after: prerequisites) { chain in
      try enqueue(&chain, try inputs.map { try readable($0, on: &chain) })
    }
    return DeviceTensor(shape: shape, scalarType: type, buffer: buffer, owner: self, ready: chain.completion)
  }

  /// The tensor's memory from its first element: its buffer, or a device-side copy of a caller's
  /// buffer from an offset no sub-buffer can start at.
  private func readable(_ tensor: DeviceTensor, on chain: inout CommandChain) throws -> CLBuffer {
    guard tensor.copyOffset > 0 else { return tensor.buffer }
    let copy = try freshBuffer(bytes: tensor.bytes)
    try chain.copy(tensor.buffer, offset: tensor.copyOffset, to: copy, bytes: tensor.bytes)
    return copy
  }

  private func checkSameType(_ tensors: [DeviceTensor]) throws {
    guard let first = tensors.first, tensors.allSatisfy({ $0.scalarType == first.scalarType }) else {
      throw CLPoolError.invalidArgument(
        "device tensors of one call must share a storage type, got " + tensors.map(\.scalarType.rawValue).joined(separator: ", "))
    }
  }

  func owns(_ tensor: DeviceTensor) throws {
    guard tensor.owner === self else {
      throw CLPoolError.invalidArgument(
        "a \(Tensor.describe(tensor.shape)) device tensor belongs to another OpenCL backend; download it and upload it to this one")
    }
  }
}
