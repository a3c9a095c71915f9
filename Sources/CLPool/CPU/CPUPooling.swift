/// Native pooling reductions, the same algorithms as Kernels/pool.cl: 8-lane SIMD accumulation
/// over blocks of `block` elements, block sums folded with Kahan compensation, planes larger than
/// `chunkLength` split into chunks whose partials fold in order. The splitting depends only on the
/// shape, so the output is bitwise reproducible whatever the core count.
enum CPUPooling {
  static let block = 256
  static let chunkLength = 1 << 16
  /// Channels reduced together in the channels-last kernels (fits the accumulators in L1).
  static let channelTile = 512

  typealias Lanes = SIMD8<Float>

  // MARK: Contiguous planes (channels-first)

  @inline(__always)
  static func load(_ p: UnsafePointer<Float>, _ offset: Int) -> Lanes {
    UnsafeRawPointer(p + offset).loadUnaligned(as: Lanes.self)
  }

  /// Sum of `count` contiguous elements.
  static func sum(_ p: UnsafePointer<Float>, count: Int) -> Float {
    var total = CompensatedSum()
    var i = 0
    while i + block <= count {
      // Four independent accumulators hide the add latency.
      var a = Lanes(), b = Lanes(), c = Lanes(), d = Lanes()
      var j = i
      while j < i + block {
        a += load(p, j)
        b += load(p, j + 8)
        c += load(p, j + 16)
        d += load(p, j + 24)
        j += 32
      }
      total.add(((a + b) + (c + d)).sum())
      i += block
    }
    var lanes = Lanes()
    while i + 8 <= count {
      lanes += load(p, i)
      i += 8
    }
    var tail = lanes.sum()
    while i < count {
      tail += p[i]
      i += 1
    }
    total.add(tail)
    return total.sum
  }

  /// Max of `count` contiguous elements (count ≥ 1, < 2^31) and the index of the first maximum
  /// (first NaN if any).
  static func max(_ p: UnsafePointer<Float>, count: Int) -> (value: Float, index: Int) {
    var best = Lanes(repeating: -.infinity)
    var bestIndex = SIMD8<Int32>(repeating: 0)
    var firstNaN = SIMD8<Int32>(repeating: -1)
    var position = SIMD8<Int32>(0, 1, 2, 3, 4, 5, 6, 7)
    var i = 0
    while i + 8 <= count {
      let v = load(p, i)
      let greater = v .> best
      best.replace(with: v, where: greater)
      bestIndex.replace(with: position, where: greater)
      firstNaN.replace(with: position, where: (v .!= v) .& (firstNaN .< 0))
      position &+= 8
      i += 8
    }
    var result = -Float.infinity
    var resultIndex = 0
    for lane in 0..<8 {
      let isNaN = firstNaN[lane] >= 0
      let value = isNaN ? Float.nan : best[lane]
      let index = Int(isNaN ? firstNaN[lane] : bestIndex[lane])
      if maxIsBetter(value, index, than: result, resultIndex) {
        result = value
        resultIndex = index
      }
    }
    while i < count {
      if maxIsBetter(p[i], i, than: result, resultIndex) {
        result = p[i]
        resultIndex = i
      }
      i += 1
    }
    return (result, resultIndex)
  }

  // MARK: Strided planes (channels-last)

  /// Sums, for each of `width` adjacent channels, `count` positions spaced `stride` apart,
  /// writing each channel's sum to `out[channel * outStride]`.
  static func sumChannels(
    _ p: UnsafePointer<Float>, width: Int, count: Int, stride: Int,
    into out: UnsafeMutablePointer<Float>, outStride: Int
  ) {
    withUnsafeTemporaryAllocation(of: Float.self, capacity: 3 * width) { scratch in
      let blockSum = scratch.baseAddress!
      let total = blockSum + width
      let compensation = total + width
      total.initialize(repeating: 0, count: 2 * width)
      var s = 0
      while s < count {
        blockSum.initialize(repeating: 0, count: width)
        let end = Swift.min(s + block, count)
        for position in s..<end {
          let row = p + position * stride
          var c = 0
          while c + 8 <= width {
            let sum = UnsafeRawPointer(blockSum + c).loadUnaligned(as: Lanes.self) + load(row, c)
            UnsafeMutableRawPointer(blockSum + c).storeBytes(of: sum, as: Lanes.self)
            c += 8
          }
          while c < width {
            blockSum[c] += row[c]
            c += 1
          }
        }
        for c in 0..<width {  // Kahan fold of this block, per channel
          let y = blockSum[c] - compensation[c]
          let t = total[c] + y
          compensation[c] = (t - total[c]) - y
          total[c] = t
        }
        s = end
      }
      for c in 0..<width { out[c * outStride] = total[c] }
    }
  }

  /// Max and first-max index (relative to p) for each of `width` adjacent channels over `count`
  /// positions spaced `stride` apart.
  static func maxChannels(
    _ p: UnsafePointer<Float>, width: Int, count: Int, stride: Int,
    into out: UnsafeMutablePointer<Float>, indices: UnsafeMutablePointer<Int64>, outStride: Int
  ) {
    withUnsafeTemporaryAllocation(of: Float.self, capacity: width) { bestBuffer in
      withUnsafeTemporaryAllocation(of: Int.self, capacity: width) { indexBuffer in
        let best = bestBuffer.baseAddress!
        let bestIndex = indexBuffer.baseAddress!
        best.initialize(from: p, count: width)
        bestIndex.initialize(repeating: 0, count: width)
        for position in 1..<Swift.max(count, 1) {
          let row = p + position * stride
          for c in 0..<width where maxIsBetter(row[c], position, than: best[c], bestIndex[c]) {
            best[c] = row[c]
            bestIndex[c] = position
          }
        }
        for c in 0..<width {
          out[c * outStride] = best[c]
          indices[c * outStride] = Int64(bestIndex[c])
        }
      }
    }
  }
}
