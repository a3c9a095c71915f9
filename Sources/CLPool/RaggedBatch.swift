/// A batch of feature maps whose spatial sizes differ per sample (images of different sizes
/// through a fully convolutional network), packed in one buffer: sample n starts at element
/// `offsets[n]` and has spatial shape `extents[n]` (1 to 3 axes) and `channels` channels, in
/// `layout` ([C, spatial...] or [spatial..., C]). Pooling it gives [N, C], each sample pooled over
/// its own extent, in one launch on OpenCL.
public struct RaggedBatch<Scalar: StorageScalar>: Sendable {
  public let scalars: [Scalar]
  public let channels: Int
  public let extents: [[Int]]
  public let offsets: [Int]
  public let layout: Layout
  /// Positions per sample: the product of its extent.
  public let spatialSizes: [Int]

  /// Packs samples one after another.
  /// - Parameters:
  ///   - samples: each [C, spatial...] (`.channelsFirst`) or [spatial..., C], with one C.
  ///   - layout: where the channels are in every sample.
  public init(samples: [TypedTensor<Scalar>], layout: Layout = .channelsFirst) throws {
    guard let first = samples.first else {
      throw CLPoolError.invalidShape("a ragged batch needs at least one sample (or use init(packed:) with no extents and a channel count)")
    }
    let channels = layout == .channelsFirst ? first.shape.first ?? 0 : first.shape.last ?? 0
    var extents: [[Int]] = []
    for (n, sample) in samples.enumerated() {
      let sampleChannels = layout == .channelsFirst ? sample.shape.first : sample.shape.last
      guard sample.rank >= 2, sampleChannels == channels else {
        throw CLPoolError.invalidShape(
          "ragged sample \(n) is \(Tensor.describe(sample.shape)): every sample must be [C, spatial...] (\(layout.rawValue)) with the first sample's C = \(channels)")
      }
      extents.append(layout == .channelsFirst ? Array(sample.shape.dropFirst()) : Array(sample.shape.dropLast()))
    }
    try self.init(packed: samples.flatMap(\.scalars), channels: channels, extents: extents, layout: layout)
  }

  /// Wraps an already packed buffer.
  /// - Parameters:
  ///   - packed: the samples' elements, each sample in `layout`.
  ///   - channels: C, the same for every sample.
  ///   - extents: each sample's spatial shape, 1 to 3 axes, none empty.
  ///   - offsets: each sample's first element in `packed`; nil packs the samples back to back,
  ///     in which case `packed` must hold exactly their elements.
  ///   - layout: where the channels are in every sample.
  public init(
    packed: [Scalar], channels: Int, extents: [[Int]], offsets: [Int]? = nil, layout: Layout = .channelsFirst
  ) throws {
    guard channels >= 0 else { throw CLPoolError.invalidShape("a ragged batch's channel count must be ≥ 0, got \(channels)") }
    var sizes: [Int] = []
    for (n, extent) in extents.enumerated() {
      guard (1...3).contains(extent.count) else {
        throw CLPoolError.invalidShape("ragged sample \(n) has \(extent.count) spatial axes (\(Tensor.describe(extent))); pooling takes 1, 2 or 3")
      }
      let size = try Tensor.elementCount(of: extent)
      guard size > 0 else {
        throw CLPoolError.invalidShape("cannot pool ragged sample \(n) over an empty spatial extent \(Tensor.describe(extent))")
      }
      _ = try Tensor.elementCount(of: [size, channels])
      sizes.append(size)
    }
    var starts: [Int] = []
    if let offsets {
      guard offsets.count == extents.count else {
        throw CLPoolError.invalidShape("a ragged batch needs one offset per sample: \(extents.count) extents, \(offsets.count) offsets")
      }
      for (n, offset) in offsets.enumerated() {
        let (end, overflow) = offset.addingReportingOverflow(sizes[n] * channels)
        guard offset >= 0, !overflow, end <= packed.count else {
          throw CLPoolError.invalidShape(
            "ragged sample \(n) (offset \(offset), \(sizes[n] * channels) elements) lies outside the packed buffer of \(packed.count) elements")
        }
      }
      // Samples may overlap, but the output may not outgrow the input (N·C ≤ the buffer), so a
      // few offsets cannot ask for an output larger than what the caller holds.
      guard extents.count * channels <= packed.count else {
        throw CLPoolError.invalidShape(
          "\(extents.count) samples of \(channels) channels would pool into more elements than the packed buffer's \(packed.count)")
      }
      starts = offsets
    } else {
      var next = 0
      for size in sizes {
        starts.append(next)
        let (end, overflow) = next.addingReportingOverflow(size * channels)
        guard !overflow else { throw CLPoolError.invalidShape("a ragged batch has more elements than Int holds") }
        next = end
      }
      guard next == packed.count else {
        throw CLPoolError.invalidShape(
          "the extents and \(channels) channels describe \(next) elements, but the packed buffer holds \(packed.count)")
      }
    }
    scalars = packed
    self.channels = channels
    self.extents = extents
    self.offsets = starts
    self.layout = layout
    spatialSizes = sizes
  }

  /// Number of samples, N.
  public var count: Int { extents.count }
  /// [N, C].
  public var outputShape: [Int] { [count, channels] }

  /// Sample n (in 0..<count) as a one-sample pooling geometry ([1, C, extent...] or
  /// [1, extent..., C]).
  func geometry(of n: Int) throws -> PoolGeometry {
    let shape = layout == .channelsFirst ? [1, channels] + extents[n] : [1] + extents[n] + [channels]
    return try PoolGeometry(shape: shape, layout: layout)
  }
}
