import CLPool
import Foundation

// The functions of include/clpool.h. Each reads and checks its arguments, then calls the
// library's raw-buffer form of the operation on the caller's memory (no copy), inside
// `boundary`, which turns any error into a status code and this thread's message.

@c(clpool_backend_create)
public func backendCreate(
  _ backend: UnsafePointer<CChar>?, _ device: UnsafePointer<CChar>?, _ out: UnsafeMutablePointer<OpaquePointer?>?
) -> Int32 {
  boundary {
    guard let out else { throw CLPoolError.invalidArgument("clpool_backend_create needs somewhere to put the backend (out is NULL)") }
    out.pointee = nil
    let selection = try BackendSelection.resolve(
      backend: Argument.text(backend), device: Argument.text(device), names: ("backend", "device"))
    let handle = BackendHandle(try selection.makeBackend())
    out.pointee = OpaquePointer(Unmanaged.passRetained(handle).toOpaque())
  }
}

@c(clpool_backend_destroy)
public func backendDestroy(_ backend: OpaquePointer?) {
  guard let backend else { return }
  Unmanaged<BackendHandle>.fromOpaque(UnsafeRawPointer(backend)).release()
}

@c(clpool_backend_label)
public func backendLabel(_ backend: OpaquePointer?) -> UnsafePointer<CChar> {
  guard let handle = try? BackendHandle.from(backend) else { return StaticString("").cString }
  return UnsafePointer(handle.label)
}

@c(clpool_global_avg_pool)
public func globalAvgPool(
  _ backend: OpaquePointer?, _ type: Int32, _ input: UnsafeRawPointer?, _ shape: UnsafePointer<Int64>?, _ rank: Int32,
  _ layout: Int32, _ output: UnsafeMutableRawPointer?
) -> Int32 {
  boundary { try pool(backend, type, input, shape, rank, layout, .average, output, nil) }
}

@c(clpool_global_max_pool)
public func globalMaxPool(
  _ backend: OpaquePointer?, _ type: Int32, _ input: UnsafeRawPointer?, _ shape: UnsafePointer<Int64>?, _ rank: Int32,
  _ layout: Int32, _ output: UnsafeMutableRawPointer?, _ indices: UnsafeMutablePointer<Int64>?
) -> Int32 {
  boundary { try pool(backend, type, input, shape, rank, layout, .max, output, indices) }
}

private func pool(
  _ backend: OpaquePointer?, _ type: Int32, _ input: UnsafeRawPointer?, _ shape: UnsafePointer<Int64>?, _ rank: Int32,
  _ layout: Int32, _ operation: PoolOperation, _ output: UnsafeMutableRawPointer?, _ indices: UnsafeMutablePointer<Int64>?
) throws {
  let handle = try BackendHandle.from(backend)
  let type = try Argument.type(type), layout = try Argument.layout(layout)
  let shape = try Argument.shape(shape, rank: rank, "the pooling input")
  let geometry = try PoolGeometry(shape: shape, layout: layout)
  let positions = try indices.map { pointer in
    _ = try Argument.bytes(pointer, elements: geometry.planes, width: 8, "the indices")  // alignment
    return UnsafeMutableBufferPointer(start: pointer, count: geometry.planes)
  }
  try handle.backend.globalPool(
    try Argument.input(input, shape, type, "the pooling input"), type: type, shape: shape, layout: layout,
    operation: operation, into: try Argument.output(output, elements: geometry.planes, type, "the pooling output"),
    indices: positions)
}

@c(clpool_dense)
public func dense(
  _ backend: OpaquePointer?, _ type: Int32, _ input: UnsafeRawPointer?, _ inputShape: UnsafePointer<Int64>?,
  _ inputRank: Int32, _ weight: UnsafeRawPointer?, _ weightShape: UnsafePointer<Int64>?, _ weightRank: Int32,
  _ weightLayout: Int32, _ bias: UnsafeRawPointer?, _ activation: Int32, _ output: UnsafeMutableRawPointer?
) -> Int32 {
  boundary {
    let product = try ProductArguments("dense", backend, type, weightShape, weightRank, weightLayout, activation)
    let inputShape = try Argument.shape(inputShape, rank: inputRank, "the dense input")
    let geometry = try DenseGeometry(input: inputShape, weight: product.weightShape, bias: nil, weightLayout: product.weightLayout)
    try product.handle.backend.dense(
      try Argument.input(input, inputShape, product.type, "the dense input"), shape: inputShape,
      weight: try product.weight(weight), shape: product.weightShape, bias: try product.bias(bias, geometry),
      type: product.type, weightLayout: product.weightLayout, activation: product.activation,
      into: try product.output(output, geometry))
  }
}

@c(clpool_head)
public func head(
  _ backend: OpaquePointer?, _ type: Int32, _ features: UnsafeRawPointer?, _ shape: UnsafePointer<Int64>?, _ rank: Int32,
  _ layout: Int32, _ weight: UnsafeRawPointer?, _ weightShape: UnsafePointer<Int64>?, _ weightRank: Int32,
  _ weightLayout: Int32, _ bias: UnsafeRawPointer?, _ activation: Int32, _ output: UnsafeMutableRawPointer?
) -> Int32 {
  boundary {
    let product = try ProductArguments("head", backend, type, weightShape, weightRank, weightLayout, activation)
    let layout = try Argument.layout(layout)
    let shape = try Argument.shape(shape, rank: rank, "the head features")
    let (_, geometry) = try headGeometry(shape, layout, product.weightShape, nil, product.weightLayout)
    try product.handle.backend.head(
      try Argument.input(features, shape, product.type, "the head features"), shape: shape, layout: layout,
      weight: try product.weight(weight), shape: product.weightShape, bias: try product.bias(bias, geometry),
      type: product.type, weightLayout: product.weightLayout, activation: product.activation,
      into: try product.output(output, geometry))
  }
}

/// What clpool_dense and clpool_head read alike: the backend, the storage type, the weight's shape
/// and layout, the activation; the weight, bias and output buffers, checked against the product.
private struct ProductArguments {
  let operation: String
  let handle: BackendHandle
  let type: ScalarType
  let weightShape: [Int]
  let weightLayout: WeightLayout
  let activation: Activation

  init(
    _ operation: String, _ backend: OpaquePointer?, _ type: Int32, _ weightShape: UnsafePointer<Int64>?, _ weightRank: Int32,
    _ weightLayout: Int32, _ activation: Int32
  ) throws {
    self.operation = operation
    handle = try BackendHandle.from(backend)
    self.type = try Argument.type(type)
    self.weightLayout = try Argument.weightLayout(weightLayout)
    self.activation = try Argument.activation(activation)
    self.weightShape = try Argument.shape(weightShape, rank: weightRank, "the \(operation) weight")
  }

  func weight(_ pointer: UnsafeRawPointer?) throws -> UnsafeRawBufferPointer {
    try Argument.input(pointer, weightShape, type, "the \(operation) weight")
  }

  func bias(_ pointer: UnsafeRawPointer?, _ geometry: DenseGeometry) throws -> UnsafeRawBufferPointer? {
    try pointer.map { try Argument.input($0, [geometry.outputs], type, "the \(operation) bias") }
  }

  func output(_ pointer: UnsafeMutableRawPointer?, _ geometry: DenseGeometry) throws -> UnsafeMutableRawBufferPointer {
    try Argument.output(pointer, elements: geometry.rows * geometry.outputs, type, "the \(operation) output")
  }
}

@c(clpool_class_activation_map)
public func classActivationMap(
  _ backend: OpaquePointer?, _ type: Int32, _ features: UnsafeRawPointer?, _ shape: UnsafePointer<Int64>?, _ rank: Int32,
  _ layout: Int32, _ weight: UnsafeRawPointer?, _ weightShape: UnsafePointer<Int64>?, _ weightRank: Int32,
  _ weightLayout: Int32, _ classIndex: Int64, _ output: UnsafeMutableRawPointer?
) -> Int32 {
  boundary {
    let handle = try BackendHandle.from(backend)
    let type = try Argument.type(type), layout = try Argument.layout(layout)
    let weightLayout = try Argument.weightLayout(weightLayout)
    let shape = try Argument.shape(shape, rank: rank, "the class activation map features")
    let weightShape = try Argument.shape(weightShape, rank: weightRank, "the class activation map weight")
    let geometry = try MapGeometry(features: shape, layout: layout, weight: weightShape, weightLayout: weightLayout)
    try handle.backend.classActivationMap(
      try Argument.input(features, shape, type, "the class activation map features"), shape: shape, layout: layout,
      weight: try Argument.input(weight, weightShape, type, "the class activation map weight"), shape: weightShape,
      type: type, weightLayout: weightLayout, classIndex: Int(classIndex),
      into: try Argument.output(output, elements: geometry.positions, type, "the class activation map"))
  }
}

/// One device of `clpool_devices`' JSON array.
private struct DeviceEntry: Encodable {
  let index: Int
  let name: String
  let platform: String
  let type: String
  let storage_types: [String]
  let global_memory_bytes: UInt64
}

@c(clpool_devices)
public func devices(_ buffer: UnsafeMutablePointer<CChar>?, _ capacity: UInt, _ length: UnsafeMutablePointer<UInt>?) -> Int32 {
  boundary {
    guard let length else { throw CLPoolError.invalidArgument("clpool_devices needs somewhere to put the length (length is NULL)") }
    guard capacity == 0 || buffer != nil else { throw CLPoolError.invalidArgument("clpool_devices: buffer is NULL but capacity is \(capacity)") }
    // Without an OpenCL loader or platform there are no devices: an empty list, not an error.
    let entries = ((try? OpenCLDevice.all()) ?? []).map {
      DeviceEntry(
        index: $0.index, name: $0.name, platform: $0.platformName, type: $0.type.rawValue,
        storage_types: $0.storageTypes.map(\.rawValue), global_memory_bytes: $0.globalMemoryBytes)
    }
    let json = Array(try JSONEncoder().encode(entries))
    length.pointee = UInt(json.count)
    guard let buffer, capacity > UInt(json.count) else { return }
    json.withUnsafeBufferPointer { UnsafeMutableRawPointer(buffer).copyMemory(from: $0.baseAddress!, byteCount: json.count) }
    buffer[json.count] = 0
  }
}

@c(clpool_last_error)
public func lastError() -> UnsafePointer<CChar> { LastError.message }

@c(clpool_status_name)
public func statusName(_ status: Int32) -> UnsafePointer<CChar> {
  Status(rawValue: status)?.name.cString ?? StaticString("CLPOOL_ERROR_UNKNOWN").cString
}
