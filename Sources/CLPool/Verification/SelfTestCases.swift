/// The factories of `SelfTestCase`: one per operation, each fixing how the case draws its data (in
/// float32, stored in the case's type: rounded for float16, given low-order bits float32 cannot
/// hold for float64), computes the float64 reference on the stored values, and checks a backend.
/// The storage type becomes a static type in one place, `ScalarType.staticType`.
extension SelfTestCase {
  /// Global average or max pooling of `shape` ([N, C, spatial...], stored in `layout`); with
  /// `special`, planes of ties, NaN and ±Inf.
  public static func pool(
    _ operation: PoolOperation, _ layout: Layout, _ shape: [Int], special: Bool = false, type: ScalarType = .float32
  ) -> SelfTestCase {
    SelfTestCase(
      operation.rawValue, layout.name(spatialRank: shape.count - 2), shape, scalarType: type, special: special
    ) { random in
      func prepare<S: StorageScalar>(_: S.Type) throws -> Check {
        let drawn = try TestData.poolInput(shape, layout: layout, special: specialData(operation, special), random: &random)
        let x = try TestData.stored(drawn, as: S.self, keepGrid: special, random: &random)
        let geometry = try PoolGeometry(shape: x.shape, layout: layout)
        guard operation == .average else {
          let reference = Float64Reference.maxPool(x.scalars, geometry)
          return { backend in
            try checkMax(reference) { try backend.globalMaxPool(x, layout: layout, keepDims: false, returnIndices: $0) }
          }
        }
        let reference = Float64Reference.averagePool(x.scalars, geometry)
        return { backend in
          CrossCheck.averagePool(try backend.globalAveragePool(x, layout: layout).scalars, reference: reference, type: S.scalarType)
        }
      }
      return try prepare(type.staticType)
    }
  }

  /// Pooling of a ragged batch of `channels` channels, one sample per extent.
  public static func ragged(
    _ operation: PoolOperation, _ layout: Layout, channels: Int, extents: [[Int]], special: Bool = false,
    type: ScalarType = .float32
  ) -> SelfTestCase {
    SelfTestCase(
      "\(operation.rawValue) ragged", layout == .channelsFirst ? "nc*" : "n*c", [extents.count, channels], extents: extents,
      scalarType: type, special: special
    ) { random in
      func prepare<S: StorageScalar>(_: S.Type) throws -> Check {
        // Each sample drawn as a batch of one, then stored without the batch axis.
        let samples = try extents.map { extent in
          let sample = try TestData.poolInput([1, channels] + extent, layout: layout, special: specialData(operation, special), random: &random)
          let stored = try TestData.stored(sample, as: S.self, keepGrid: special, random: &random)
          return try stored.reshaped(Array(sample.shape.dropFirst()))
        }
        let batch = try RaggedBatch(samples: samples, layout: layout)
        let geometries = try samples.map { try PoolGeometry(shape: [1] + $0.shape, layout: layout) }
        guard operation == .average else {
          let parts = zip(samples, geometries).map { Float64Reference.maxPool($0.scalars, $1) }
          let reference = (values: parts.flatMap(\.values), indices: parts.flatMap(\.indices))
          return { backend in try checkMax(reference) { try backend.globalMaxPool(batch, returnIndices: $0) } }
        }
        let parts = zip(samples, geometries).map { Float64Reference.averagePool($0.scalars, $1) }
        let reference = (mean: parts.flatMap(\.mean), meanAbs: parts.flatMap(\.meanAbs))
        return { backend in
          CrossCheck.averagePool(try backend.globalAveragePool(batch).scalars, reference: reference, type: S.scalarType)
        }
      }
      return try prepare(type.staticType)
    }
  }

  /// A dense layer [N, K] × W → [N, M] (`shape` [N, K, M]).
  public static func dense(
    _ weightLayout: WeightLayout, _ activation: Activation, bias: Bool, _ shape: [Int], type: ScalarType = .float32
  ) -> SelfTestCase {
    SelfTestCase(
      "dense", "\(weightLayout.rawValue) \(activation.rawValue)" + (bias ? " +bias" : ""), shape, scalarType: type
    ) { random in
      func prepare<S: StorageScalar>(_: S.Type) throws -> Check {
        let (n, k, m) = (shape[0], shape[1], shape[2])
        func draw(_ shape: [Int]) throws -> TypedTensor<S> {
          try TestData.stored(try TestData.uniform(shape, in: -1..<1, random: &random), as: S.self, keepGrid: false, random: &random)
        }
        let x = try draw([n, k])
        let w = try draw(weightLayout == .inOut ? [k, m] : [m, k])
        let b = bias ? try draw([m]) : nil
        let geometry = try DenseGeometry(input: x.shape, weight: w.shape, bias: b?.shape, weightLayout: weightLayout)
        let reference = Float64Reference.dense(x.scalars.map(Double.init), w.scalars, b?.scalars, geometry, activation)
        return { backend in
          let y = try backend.dense(x, weight: w, bias: b, weightLayout: weightLayout, activation: activation)
          return CrossCheck.dense(y.scalars, reference: reference, type: S.scalarType)
        }
      }
      return try prepare(type.staticType)
    }
  }

  /// The fused head (`shape` [N, C, spatial..., M]) with bias, W scaled like a trained layer.
  public static func head(_ layout: Layout, _ activation: Activation, _ shape: [Int], type: ScalarType = .float32)
    -> SelfTestCase
  {
    SelfTestCase(
      "head", "\(layout.name(spatialRank: shape.count - 3)) \(activation.rawValue)", shape, scalarType: type
    ) { random in
      func prepare<S: StorageScalar>(_: S.Type) throws -> Check {
        let poolShape = Array(shape.dropLast())
        let (c, m) = (poolShape[1], shape.last!)
        let x = try TestData.stored(
          try TestData.poolInput(poolShape, layout: layout, special: nil, random: &random), as: S.self, keepGrid: false,
          random: &random)
        // Scaled like a trained layer (≈ 1/√C) so softmax is not saturated.
        let scale = Float(1 / Double(c).squareRoot())
        let w = try TestData.stored(try TestData.uniform([c, m], in: -scale..<scale, random: &random), as: S.self, keepGrid: false, random: &random)
        let b = try TestData.stored(try TestData.uniform([m], in: -0.1..<0.1, random: &random), as: S.self, keepGrid: false, random: &random)
        let (pool, geometry) = try headGeometry(x.shape, layout, w.shape, b.shape, .inOut)
        let pooled = Float64Reference.averagePool(x.scalars, pool).mean
        let reference = Float64Reference.dense(pooled, w.scalars, b.scalars, geometry, activation)
        return { backend in
          let y = try backend.head(x, layout: layout, weight: w, bias: b, weightLayout: .inOut, activation: activation)
          return CrossCheck.dense(y.scalars, reference: reference, type: S.scalarType)
        }
      }
      return try prepare(type.staticType)
    }
  }

  /// The backward pass of global average or max pooling (float32), checked bit for bit: each
  /// gradient element is one rounding of the exact value.
  public static func poolBackward(_ operation: PoolOperation, _ layout: Layout, _ shape: [Int]) -> SelfTestCase {
    let special = operation == .max
    return SelfTestCase(
      "\(operation.rawValue) backward", layout.name(spatialRank: shape.count - 2), shape, special: special
    ) { random in
      let x = try TestData.poolInput(shape, layout: layout, special: special ? .forMax : nil, random: &random)
      let geometry = try PoolGeometry(shape: x.shape, layout: layout)
      let dz = try TestData.uniform([geometry.batch, geometry.channels], in: -1..<1, random: &random)
      guard operation == .max else {
        let reference = Float64Reference.averagePoolBackward(dz.scalars, geometry)
        return { backend in
          CrossCheck.exact(try backend.globalAveragePoolBackward(dz, inputShape: x.shape, layout: layout).scalars, reference: reference)
        }
      }
      let indices = Float64Reference.maxPool(x.scalars, geometry).indices
      let reference = Float64Reference.maxPoolBackward(dz.scalars, indices: indices, geometry)
      return { backend in
        let dx = try backend.globalMaxPoolBackward(dz, indices: indices, inputShape: x.shape, layout: layout)
        return CrossCheck.exact(dx.scalars, reference: reference)
      }
    }
  }

  /// dx, dW, db of the linear part of a dense layer (float32); `shape` [N, K, M].
  public static func denseBackward(_ weightLayout: WeightLayout, _ shape: [Int]) -> SelfTestCase {
    SelfTestCase("dense backward", weightLayout.rawValue, shape) { random in
      let (n, k, m) = (shape[0], shape[1], shape[2])
      let x = try TestData.uniform([n, k], in: -1..<1, random: &random)
      let w = try TestData.uniform(weightLayout == .inOut ? [k, m] : [m, k], in: -1..<1, random: &random)
      let dy = try TestData.uniform([n, m], in: -1..<1, random: &random)
      let geometry = try DenseGeometry(input: x.shape, weight: w.shape, bias: nil, weightLayout: weightLayout)
      let gradients = Float64Reference.denseBackward(dy.scalars, x.scalars, w.scalars, geometry)
      let reference = gradients.input + gradients.weight + gradients.bias
      return { backend in
        let result = try backend.denseBackward(dy, input: x, weight: w, weightLayout: weightLayout)
        return CrossCheck.dense(result.input.scalars + result.weight.scalars + result.bias.scalars, reference: reference)
      }
    }
  }

  /// Class activation maps (float32) of `samples` samples (nil: one sample, [C,H,W] in, [H,W] out;
  /// else a batch, [N,C,H,W] in, [N,H,W] out), each for a random class; `shape` is [C, H, W, M].
  public static func classActivationMap(
    _ layout: Layout, _ weightLayout: WeightLayout, _ shape: [Int], samples: Int? = nil
  ) -> SelfTestCase {
    let (c, h, w, m) = (shape[0], shape[1], shape[2], shape[3])
    return SelfTestCase(
      samples == nil ? "cam" : "cam batch", "\(layout.name(spatialRank: 2)) \(weightLayout.rawValue)",
      (samples.map { [$0] } ?? []) + shape
    ) { random in
      let n = samples ?? 1
      let features = try TestData.poolInput([n, c, h, w], layout: layout, special: nil, random: &random)
      let weight = try TestData.uniform(weightLayout == .inOut ? [c, m] : [m, c], in: -1..<1, random: &random)
      let classes = (0..<n).map { _ in Int(random.next() % UInt64(m)) }
      let sampleCount = c * h * w
      func referenceMaps(_ x: [Float], _ w: [Float]) -> [Double] {
        classes.enumerated().flatMap { sample, k in
          Float64Reference.classActivationMap(
            Array(x[(sample * sampleCount)..<((sample + 1) * sampleCount)]), channels: c, layout: layout, weight: w,
            weightLayout: weightLayout, classes: m, classIndex: k)
        }
      }
      let reference = referenceMaps(features.scalars, weight.scalars)
      let magnitudes = referenceMaps(features.scalars.map(\.magnitude), weight.scalars.map(\.magnitude))
      let sample = samples == nil ? try features.reshaped(Array(features.shape.dropFirst())) : features
      return { backend in
        let maps =
          samples == nil
          ? try backend.classActivationMap(sample, layout: layout, weight: weight, weightLayout: weightLayout, classIndex: classes[0])
          : try backend.classActivationMaps(features, layout: layout, weight: weight, weightLayout: weightLayout, classIndices: classes)
        return CrossCheck.dense(maps.scalars, reference: reference, magnitudes: magnitudes)
      }
    }
  }

  /// The operations a batch-invariance case runs.
  public enum BatchedOperation: String, Sendable {
    case average = "avg", max, dense, head
  }

  /// Batch invariance, bit for bit: `operation` on a batch, then samples 0, 1, the middle and the
  /// last alone, whose outputs must be their rows of the batch's. The data carry NaNs of many
  /// payloads and infinities (`TestData.withNaNs`): pooling about one NaN a plane (a quarter of the
  /// planes two or more), a product about half a NaN term an output (two in one of ten outputs),
  /// so NaN outputs are checked too; data without both kinds of output fail. A NaN in x makes its
  /// whole row NaN and one in w its whole column, so x carries 0.2 NaNs a row and w 0.3 a column:
  /// with at least 7 rows and 20 columns, all outputs are NaN, or none, in under 1 of 10^4 draws
  /// (at 0.6 each, 1 in 300 draws of [7, 97, 150] gave nothing but NaN).
  /// `shape` as the operation's own case: pooling [N, C, spatial...], dense [N, K, M] (with bias),
  /// head [N, C, spatial..., M] (with bias).
  public static func batchInvariance(
    _ operation: BatchedOperation, _ shape: [Int], layout: Layout = .channelsFirst, activation: Activation = .none,
    type: ScalarType = .float32
  ) -> SelfTestCase {
    let poolRank = operation == .dense ? 0 : operation == .head ? shape.count - 3 : shape.count - 2
    let variant =
      operation == .dense
      ? activation.rawValue : layout.name(spatialRank: poolRank) + (activation == .none ? "" : " \(activation.rawValue)")
    return SelfTestCase("\(operation.rawValue) invariant", variant, shape, scalarType: type) { random in
      func prepare<S: StorageScalar>(_: S.Type) throws -> Check {
        func draw(_ tensor: Tensor, rate: Double) throws -> TypedTensor<S> {
          TypedTensor(converting: try TestData.withNaNs(tensor, rate: rate, random: &random))
        }
        let poolShape = operation == .head ? Array(shape.dropLast()) : shape
        let spatial = Double(poolShape.dropFirst(2).reduce(1, *))
        // Per term of the product's k: 0.2 / k NaNs in x, 0.3 / k in w (infinities at half that).
        let terms = Double(operation == .dense ? shape[1] : poolShape[1])
        let (xRate, weightRate) = (0.2 / terms, 0.3 / terms)
        let x: TypedTensor<S>
        let compute: @Sendable (any Backend, TypedTensor<S>) throws -> [S]
        switch operation {
        case .average, .max:
          x = try draw(try TestData.poolInput(shape, layout: layout, special: nil, random: &random), rate: min(0.3, 1 / spatial))
          compute = { backend, input in
            operation == .average
              ? try backend.globalAveragePool(input, layout: layout).scalars : try backend.globalMaxPool(input, layout: layout).scalars
          }
        case .dense:
          let (n, k, m) = (shape[0], shape[1], shape[2])
          x = try draw(try TestData.uniform([n, k], in: -1..<1, random: &random), rate: xRate)
          let w = try draw(try TestData.uniform([k, m], in: -1..<1, random: &random), rate: weightRate)
          let b = try draw(try TestData.uniform([m], in: -1..<1, random: &random), rate: 0.1)
          compute = { backend, input in try backend.dense(input, weight: w, bias: b, activation: activation).scalars }
        case .head:
          let (c, m) = (poolShape[1], shape.last!)
          x = try draw(try TestData.poolInput(poolShape, layout: layout, special: nil, random: &random), rate: xRate / spatial)
          let w = try draw(try TestData.uniform([c, m], in: -1..<1, random: &random), rate: weightRate)
          let b = try draw(try TestData.uniform([m], in: -1..<1, random: &random), rate: 0.1)
          compute = { backend, input in try backend.head(input, layout: layout, weight: w, bias: b, activation: activation).scalars }
        }
        let n = shape[0]
        let (sampleShape, sampleCount) = ([1] + Array(x.shape.dropFirst()), x.count / n)
        let samples = Array(Set([0, 1, n / 2, n - 1].filter { $0 < n })).sorted()
        let expectsFinite = activation != .softmax  // a softmax row with one NaN is all NaN
        return { backend in
          let batch = try compute(backend, x)
          guard batch.contains(where: \.isNaN), !expectsFinite || batch.contains(where: { !$0.isNaN }) else {
            return CheckOutcome(maxError: .infinity, tolerance: 0, mismatch: "the data gave no NaN output, or nothing else: the case would check nothing")
          }
          let alone = try samples.map { sample in
            (sample, try compute(backend, try TypedTensor<S>(shape: sampleShape, scalars: Array(x.scalars[(sample * sampleCount)..<((sample + 1) * sampleCount)]))))
          }
          return CrossCheck.sameBits(batch, alone: alone)
        }
      }
      return try prepare(type.staticType)
    }
  }

  private static func specialData(_ operation: PoolOperation, _ special: Bool) -> TestData.Special? {
    special ? (operation == .max ? .forMax : .forAverage) : nil
  }

  /// Backends may take a faster path without positions: checks the values of both.
  private static func checkMax<S: StorageScalar>(
    _ reference: (values: [Double], indices: [Int64]), _ pool: (Bool) throws -> MaxPoolResult<S>
  ) throws -> CheckOutcome {
    let withIndices = try pool(true)
    let outcome = CrossCheck.maxPool(withIndices.values.scalars, indices: withIndices.indices, reference: reference)
    guard outcome.passed else { return outcome }
    var second = CrossCheck.maxPool(try pool(false).values.scalars, indices: nil, reference: reference)
    if let mismatch = second.mismatch { second.mismatch = "without indices: " + mismatch }
    return second
  }
}
