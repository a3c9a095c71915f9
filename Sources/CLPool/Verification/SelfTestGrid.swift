extension SelfTestCase {
  /// The grid `clpool selftest` and the parity tests run: spatial 1×1 to ≥ 2^20 elements per
  /// plane, N and C including 1 and primes, ranks 3–5, both layouts, the ResNet-50 head, max data
  /// with ties, NaN and ±Inf, the backward passes, ragged batches, class activation maps, batch
  /// invariance bit for bit, and the forward operations again in float16 and float64 storage.
  public static let standard: [SelfTestCase] = {
    let poolShapes: [[Int]] = [
      [1, 1, 1, 1], [2, 3, 1, 1], [3, 5, 3, 5], [1, 7, 7, 7], [8, 2048, 7, 7], [5, 7, 13, 17],
      [2, 13, 56, 56], [1, 3, 224, 224], [2, 3, 1031, 1019], [1, 1, 1], [3, 5, 97], [1, 2, 8191],
      [2, 3, 4, 5, 6], [7, 1, 2, 3, 1],
    ]
    var cases: [SelfTestCase] = []
    for layout in Layout.allCases {
      for shape in poolShapes {
        cases.append(.pool(.average, layout, shape))
        cases.append(.pool(.max, layout, shape, special: true))
      }
      cases.append(.pool(.average, layout, [4, 6, 7, 7], special: true))
      // Planes of several blocks: an infinity must survive the compensated sums that follow it.
      cases.append(.pool(.average, layout, [2, 5, 37, 41], special: true))
      cases.append(.pool(.max, layout, [2, 5, 37, 41], special: true))
      cases.append(.pool(.max, layout, [4, 9, 7, 7]))
    }
    cases += [
      .dense(.inOut, .none, bias: true, [8, 2048, 1000]),
      .dense(.outIn, .relu, bias: true, [1, 2048, 1000]),
      .dense(.inOut, .sigmoid, bias: false, [7, 13, 5]),
      .dense(.outIn, .softmax, bias: true, [33, 129, 67]),
      .dense(.inOut, .softmax, bias: true, [5, 1000, 3]),
      .dense(.inOut, .none, bias: false, [1, 1, 1]),
      .dense(.outIn, .none, bias: false, [64, 64, 1]),
      .dense(.inOut, .relu, bias: true, [17, 31, 9]),
      .dense(.outIn, .relu, bias: true, [17, 31, 9]),
      .head(.channelsFirst, .softmax, [8, 2048, 7, 7, 1000]),
      .head(.channelsLast, .none, [3, 64, 5, 5, 10]),
      .head(.channelsFirst, .relu, [13, 37, 3, 1, 29]),
      .head(.channelsLast, .sigmoid, [1, 5, 2, 3, 4, 17]),
    ]
    for layout in Layout.allCases {
      for shape in [[8, 2048, 7, 7], [3, 5, 13, 17], [2, 3, 97], [1, 7, 2, 3, 5]] {
        cases.append(.poolBackward(.average, layout, shape))
        cases.append(.poolBackward(.max, layout, shape))
      }
    }
    for weightLayout in WeightLayout.allCases {
      for shape in [[8, 2048, 1000], [7, 13, 5], [1, 3, 1]] { cases.append(.denseBackward(weightLayout, shape)) }
    }
    // Class activation maps, one sample and a batch, both layouts and weight layouts.
    for layout in Layout.allCases {
      for weightLayout in WeightLayout.allCases {
        cases.append(.classActivationMap(layout, weightLayout, [512, 7, 7, 1000]))
        cases.append(.classActivationMap(layout, weightLayout, [3, 1, 1, 2]))
      }
      cases.append(.classActivationMap(layout, .inOut, [13, 5, 9, 3], samples: 4))
    }
    // Ragged batches: 1x1 to 56x56 samples, 1-D and 3-D ones, a C that is no multiple of 8 and
    // ones that are (the channels-last kernel's vector path), in every storage type.
    let ragged: [(channels: Int, extents: [[Int]])] = [
      (13, [[1, 1], [7, 5], [13, 17], [56, 56], [2, 3], [1, 9]]),
      (16, [[9, 9], [1, 1], [31, 7]]),
      (5, [[97], [1], [300]]),
      (3, [[2, 3, 4], [1, 1, 1], [5, 1, 7]]),
      (2048, [[7, 7], [5, 9]]),
    ]
    for type in ScalarType.allCases {
      for layout in Layout.allCases {
        for (channels, extents) in ragged {
          cases.append(.ragged(.average, layout, channels: channels, extents: extents, type: type))
          cases.append(.ragged(.max, layout, channels: channels, extents: extents, special: true, type: type))
        }
      }
    }
    // Batch invariance, bit for bit, with NaNs of many payloads, in batches that cross the kernel
    // choices (the CPU's packed product from 96 rows, OpenCL's 6-row tiles and single-row kernels,
    // channels-last chunks); 7 rows cross only OpenCL's.
    for layout in Layout.allCases {
      for shape in [[64, 24, 7, 7], [64, 24, 1, 1], [7, 24, 56, 56], [64, 24, 97], [7, 24, 3, 30, 30]] {
        cases.append(.batchInvariance(.average, shape, layout: layout))
        cases.append(.batchInvariance(.max, shape, layout: layout))
      }
      cases.append(.batchInvariance(.head, [130, 24, 7, 7, 150], layout: layout))
    }
    for activation in Activation.allCases { cases.append(.batchInvariance(.dense, [130, 97, 150], activation: activation)) }
    cases.append(.batchInvariance(.dense, [7, 97, 150]))
    for type in [ScalarType.float16, .float64] { cases.append(.batchInvariance(.dense, [130, 33, 21], type: type)) }
    // float16 and float64 storage: pooling over awkward shapes, dense and the head.
    for type in [ScalarType.float16, .float64] {
      for layout in Layout.allCases {
        for shape in [[1, 1, 1, 1], [5, 7, 13, 17], [2, 13, 9, 9], [8, 2048, 7, 7], [3, 5, 97], [2, 3, 4, 5, 6], [1, 2, 300, 300]] {
          cases.append(.pool(.average, layout, shape, type: type))
          cases.append(.pool(.max, layout, shape, special: true, type: type))
        }
        cases.append(.pool(.average, layout, [2, 5, 37, 41], special: true, type: type))
        // Plain data: float64's low-order bits must survive the max too.
        cases.append(.pool(.max, layout, [3, 5, 13, 17], type: type))
      }
      cases += [
        .dense(.inOut, .none, bias: true, [8, 2048, 1000], type: type),
        .dense(.outIn, .softmax, bias: true, [33, 129, 67], type: type),
        .dense(.inOut, .sigmoid, bias: false, [1, 13, 5], type: type),
        .dense(.outIn, .relu, bias: true, [17, 31, 9], type: type),
        .head(.channelsFirst, .softmax, [8, 2048, 7, 7, 1000], type: type),
        .head(.channelsLast, .relu, [13, 37, 3, 1, 29], type: type),
      ]
    }
    return cases
  }()
}

extension SelfTestCase {
  /// A reduced grid for simulators such as Oclgrind (10^3–10^5 times slower than a driver) that
  /// still reaches every kernel and its edges: 1×1 and prime sizes, 7×7 planes (the work-group
  /// segments), planes over one chunk (the combine passes), ties/NaN/±Inf, every storage type,
  /// ragged batches, the backward passes, dense with partial tiles, a K over one K block and every
  /// activation, the head with several column groups and a partial row tile, CAM, and batch
  /// invariance.
  public static let reduced: [SelfTestCase] = {
    var cases: [SelfTestCase] = []
    for layout in Layout.allCases {
      for shape in [[1, 1, 1, 1], [2, 3, 7, 7], [1, 3, 97], [2, 2, 3, 4, 5], [1, 2, 91, 91]] {
        cases.append(.pool(.average, layout, shape))
        cases.append(.pool(.max, layout, shape, special: true))
      }
      cases.append(.pool(.average, layout, [2, 5, 7, 7], special: true))
      for type in [ScalarType.float16, .float64] {
        cases.append(.pool(.average, layout, [2, 3, 7, 7], type: type))
        cases.append(.pool(.max, layout, [2, 3, 7, 7], special: true, type: type))
      }
      for type in ScalarType.allCases {
        cases.append(.ragged(.average, layout, channels: 13, extents: [[1, 1], [7, 5], [3, 3]], type: type))
        cases.append(.ragged(.max, layout, channels: 13, extents: [[1, 1], [7, 5], [3, 3]], special: true, type: type))
      }
      cases.append(.poolBackward(.average, layout, [2, 3, 5, 5]))
      cases.append(.poolBackward(.max, layout, [2, 3, 5, 5]))
      cases.append(.batchInvariance(.average, [9, 5, 7, 7], layout: layout))
      cases.append(.batchInvariance(.max, [9, 5, 7, 7], layout: layout))
      cases.append(.classActivationMap(layout, .outIn, [8, 3, 3, 4]))
      cases.append(.classActivationMap(layout, .inOut, [8, 3, 3, 4], samples: 2))
    }
    cases += [
      .dense(.inOut, .sigmoid, bias: true, [7, 13, 5]),
      .dense(.outIn, .relu, bias: true, [1, 33, 17]),
      .dense(.inOut, .none, bias: false, [70, 20, 70]),
      .dense(.outIn, .softmax, bias: true, [5, 16, 9]),
      .dense(.inOut, .none, bias: true, [2, 4100, 3]),
      .denseBackward(.outIn, [7, 13, 5]),
      .batchInvariance(.dense, [9, 13, 20], activation: .relu),
      .batchInvariance(.head, [9, 8, 3, 3, 20], layout: .channelsLast),
      .head(.channelsFirst, .softmax, [1, 37, 7, 7, 300]),
      .head(.channelsLast, .relu, [13, 8, 2, 3, 10]),
    ]
    for type in [ScalarType.float16, .float64] {
      cases += [
        .dense(.outIn, .softmax, bias: true, [7, 13, 5], type: type),
        .head(.channelsFirst, .softmax, [7, 9, 3, 3, 20], type: type),
      ]
    }
    return cases
  }()
}
