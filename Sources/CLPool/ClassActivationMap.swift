/// The sizes of a class activation map: one sample's features [C, H, W] (or [1, C, H, W];
/// channels-last [H, W, C] or [1, H, W, C]) against a head weight of `classes` columns.
public struct MapGeometry: Equatable, Sendable {
  public let channels: Int
  public let height: Int
  public let width: Int
  public let weight: DenseGeometry

  /// - Throws: `CLPoolError.invalidShape` for another rank, a batch other than 1, an empty
  ///   spatial extent or a weight that does not match C.
  public init(features shape: [Int], layout: Layout, weight: [Int], weightLayout: WeightLayout) throws {
    var sample = shape
    if sample.count == 4 {
      guard sample[0] == 1 else {
        throw CLPoolError.invalidShape(
          "a class activation map takes one sample ([C,H,W] or [1,C,H,W]), got batch \(sample[0]) in \(Tensor.describe(shape))")
      }
      sample.removeFirst()
    }
    guard sample.count == 3 else {
      throw CLPoolError.invalidShape(
        "a class activation map takes [C,H,W] or [1,C,H,W] features (channels-last: [H,W,C]), got \(Tensor.describe(shape))")
    }
    _ = try Tensor.elementCount(of: sample)
    channels = layout == .channelsFirst ? sample[0] : sample[2]
    (height, width) = layout == .channelsFirst ? (sample[1], sample[2]) : (sample[0], sample[1])
    guard height > 0, width > 0 else {
      throw CLPoolError.invalidShape("a class activation map needs a non-empty spatial extent, got \(Tensor.describe(shape))")
    }
    self.weight = try DenseGeometry(input: [1, channels], weight: weight, bias: nil, weightLayout: weightLayout)
  }

  public var positions: Int { height * width }
  public var classes: Int { weight.outputs }
}

extension Backend {
  /// The class activation map of one sample on the caller's memory (no copy of the features):
  /// cam[h, w] = Σ_c W[c, k] · x[c, h, w], bias excluded, into `output` ([H, W] of `type`). Only
  /// class k's C weights are gathered; the product runs on the backend's dense operation.
  /// - Throws: `CLPoolError` as `classActivationMap(_:layout:weight:weightLayout:classIndex:)`
  ///   does, and `.invalidArgument` when a buffer is smaller than its shape needs.
  public func classActivationMap(
    _ features: UnsafeRawBufferPointer, shape: [Int], layout: Layout, weight: UnsafeRawBufferPointer,
    shape weightShape: [Int], type: ScalarType, weightLayout: WeightLayout = .inOut, classIndex: Int,
    into output: UnsafeMutableRawBufferPointer
  ) throws {
    try checkSupport(type)
    let geometry = try MapGeometry(features: shape, layout: layout, weight: weightShape, weightLayout: weightLayout)
    let (channels, classes) = (geometry.channels, geometry.classes)
    guard (0..<classes).contains(classIndex) else {
      throw CLPoolError.invalidArgument(
        "class \(classIndex) is out of range: the weight has \(classes) classes\(classes > 0 ? " (0...\(classes - 1))" : "")")
    }
    try Buffers.check(features.count, holds: channels * geometry.positions, type, "the class activation map features")
    try Buffers.check(weight.count, holds: channels * classes, type, "the class activation map weight")
    try Buffers.check(output.count, holds: geometry.positions, type, "the class activation map")
    // Class k's weights, W[·, k]: a strided column in-out, a contiguous row out-in.
    let width = type.byteWidth
    var column = [UInt8](repeating: 0, count: channels * width)
    column.withUnsafeMutableBytes { column in
      for c in 0..<channels {
        let element = weightLayout == .inOut ? c * classes + classIndex : classIndex * channels + c
        column.baseAddress!.advanced(by: c * width).copyMemory(from: weight.baseAddress! + element * width, byteCount: width)
      }
    }
    guard channels > 0 else {  // an empty sum: the map is zero
      output.initializeMemory(as: UInt8.self, repeating: 0)
      return
    }
    try column.withUnsafeBytes { column in
      let positions = geometry.positions
      if layout == .channelsFirst {
        // [1, C] · [C, H·W]: the class's weights against every position.
        try dense(column, shape: [1, channels], weight: features, shape: [channels, positions], bias: nil, type: type, into: output)
      } else {
        // [H·W, C] · [C, 1].
        try dense(features, shape: [positions, channels], weight: column, shape: [channels, 1], bias: nil, type: type, into: output)
      }
    }
  }
}
