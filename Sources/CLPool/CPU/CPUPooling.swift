/// Native pooling reductions over float16, float32 or float64 elements (`PooledElement`: halves are
/// widened as they are loaded) in float32 or float64 arithmetic, the same algorithms as Kernels/pool.cl: 8-lane SIMD accumulation
/// over blocks of `block` elements, block sums folded with Kahan compensation, planes larger than
/// `chunkLength` split into chunks whose partials fold in order. The splitting depends only on the
/// shape, so the output is bitwise reproducible whatever the core count.
enum CPUPooling {
  static let block = 256
  static let chunkLength = 1 << 16
  /// Channels reduced together in the channels-last kernels (fits the accumulators in L1).
  static let channelTile = 2048

  // MARK: Contiguous planes (channels-first)

  /// Sum of `count` contiguous elements.
  @inline(__always)
  static func sum<E: PooledElement>(_ p: UnsafePointer<E>, count: Int) -> E.Arithmetic {
    typealias T = E.Arithmetic
    if count <= block { return blockSum(p, count: count) }  // one block: nothing to compensate
    var total = CompensatedSum<T>()
    var i = 0
    while i + block <= count {
      // Four independent accumulators hide the add latency.
      var a = SIMD8<T>(), b = SIMD8<T>(), c = SIMD8<T>(), d = SIMD8<T>()
      var j = i
      while j < i + block {
        a += E.lanes(p, j)
        b += E.lanes(p, j + 8)
        c += E.lanes(p, j + 16)
        d += E.lanes(p, j + 24)
        j += 32
      }
      total.add(((a + b) + (c + d)).sum())
      i += block
    }
    total.add(blockSum(p + i, count: count - i))
    return total.sum
  }

  /// The mean of `count` elements spaced `stride` apart, each scaled by 2^-64 before it is added
  /// (exact, and then no sum of finite values overflows), blocked and compensated as `sum` is, and
  /// scaled back: the slow path for planes whose plain sum is not finite (Kernels/pool.cl,
  /// rescaled_mean). The mean of finite values is at most the largest magnitude, so a scaled-back
  /// mean that rounds past the largest finite value is that value.
  static func rescaledMean<E: PooledElement>(_ p: UnsafePointer<E>, count: Int, stride: Int) -> E.Arithmetic {
    typealias T = E.Arithmetic
    let (down, up): (T, T) = (0x1p-64, 0x1p64)
    var total = CompensatedSum<T>()
    var i = 0
    while i < count {
      let end = Swift.min(i + block, count)
      var blockSum: T = 0
      for j in i..<end { blockSum += E.value(p, j * stride) * down }
      total.add(blockSum)
      i = end
    }
    let scaled = total.sum / T(count)
    let mean = scaled * up
    guard scaled.isFinite, !mean.isFinite else { return mean }
    return scaled < 0 ? -T.greatestFiniteMagnitude : T.greatestFiniteMagnitude
  }

  /// Sum of at most `block` elements: two 8-lane accumulators (independent add chains), a tree
  /// across lanes, then the tail.
  @inline(__always)
  static func blockSum<E: PooledElement>(_ p: UnsafePointer<E>, count: Int) -> E.Arithmetic {
    typealias T = E.Arithmetic
    var a = SIMD8<T>(), b = SIMD8<T>()
    var i = 0
    while i + 16 <= count {
      a += E.lanes(p, i)
      b += E.lanes(p, i + 8)
      i += 16
    }
    if i + 8 <= count {
      a += E.lanes(p, i)
      i += 8
    }
    var tail = horizontalSum(a + b)
    while i < count {
      tail += E.value(p, i)
      i += 1
    }
    return tail
  }

  @inline(__always)
  static func horizontalSum<T: NativeScalar>(_ v: SIMD8<T>) -> T {
    let four = v.lowHalf + v.highHalf
    let two = four.lowHalf + four.highHalf
    return two[0] + two[1]
  }

  @inline(__always)
  static func horizontalMax<T: NativeScalar>(_ v: SIMD8<T>) -> T {
    var four = v.lowHalf
    four.replace(with: v.highHalf, where: v.highHalf .> four)
    var two = four.lowHalf
    two.replace(with: four.highHalf, where: four.highHalf .> two)
    return two[1] > two[0] ? two[1] : two[0]
  }

  /// Max of `count` contiguous elements (count ≥ 1) and, with `needIndex`, the index of the
  /// first maximum (of the first NaN if any; else -1). Pass 1 is vectorised and finds the value;
  /// NaN is detected through `v * 0` (NaN for NaN and ±Inf inputs, so a rare exact rescan
  /// separates the two); pass 2 scans for the value's first position, usually stopping early.
  @inline(__always)
  static func max<E: PooledElement>(_ p: UnsafePointer<E>, count: Int, needIndex: Bool) -> (value: E.Arithmetic, index: Int) {
    typealias T = E.Arithmetic
    var best = SIMD8<T>(repeating: -.infinity)
    var probe = SIMD8<T>()
    var i = 0
    while i + 8 <= count {
      let v = E.lanes(p, i)
      best.replace(with: v, where: T.lanesGreater(v, best))  // false for NaN
      probe += v * 0
      i += 8
    }
    var value = horizontalMax(best)
    var tailProbe: T = 0
    while i < count {
      let v = E.value(p, i)
      if v > value { value = v }
      tailProbe += v * 0
      i += 1
    }
    if (horizontalSum(probe) + tailProbe).isNaN {  // a NaN or an infinity: look for the NaN
      var firstNaN = 0
      while firstNaN < count, !E.value(p, firstNaN).isNaN { firstNaN += 1 }
      if firstNaN < count { return (.nan, needIndex ? firstNaN : -1) }
    }
    guard needIndex else { return (value, -1) }
    var index = 0
    while E.value(p, index) != value { index += 1 }
    return (value, index)
  }

  // MARK: Strided planes (channels-last)

  /// Sums, for each of `width` adjacent channels, `count` positions spaced `stride` apart,
  /// writing each channel's sum / `divisor` to `out[channel * outStride]`.
  static func sumChannels<E: PooledElement>(
    _ p: UnsafePointer<E>, width: Int, count: Int, stride: Int,
    into out: UnsafeMutablePointer<E.Arithmetic>, outStride: Int, divisor: E.Arithmetic
  ) {
    typealias T = E.Arithmetic
    withUnsafeTemporaryAllocation(of: T.self, capacity: width) { scratch in
    withUnsafeTemporaryAllocation(of: CompensatedSum<T>.self, capacity: width) { totals in
      let blockSum = scratch.baseAddress!
      let total = totals.baseAddress!
      total.initialize(repeating: CompensatedSum<T>(), count: width)
      var s = 0
      while s < count {
        blockSum.initialize(repeating: 0, count: width)
        let end = Swift.min(s + block, count)
        for position in s..<end {
          let row = p + position * stride
          var c = 0
          while c + 8 <= width {
            let sum = UnsafeRawPointer(blockSum + c).loadUnaligned(as: SIMD8<T>.self) + E.lanes(row, c)
            UnsafeMutableRawPointer(blockSum + c).storeBytes(of: sum, as: SIMD8<T>.self)
            c += 8
          }
          while c < width {
            blockSum[c] += E.value(row, c)
            c += 1
          }
        }
        for c in 0..<width { total[c].add(blockSum[c]) }  // fold this block, per channel
        s = end
      }
      for c in 0..<width { out[c * outStride] = total[c].sum / divisor }
    }
    }
  }

  /// Max and first-max index (relative to p) for each of `width` adjacent channels over `count`
  /// positions (count < 2^31) spaced `stride` apart. Positions stream in order (each a contiguous
  /// run of channels); running maxima and positions stay in L1 scratch, 8 channels per vector.
  /// A channel that saw a NaN is rescanned for its first NaN. Without `indices` no positions
  /// are tracked.
  static func maxChannels<E: PooledElement>(
    _ p: UnsafePointer<E>, width: Int, count: Int, stride: Int,
    into out: UnsafeMutablePointer<E.Arithmetic>, indices: UnsafeMutablePointer<Int64>?, outStride: Int
  ) {
    typealias T = E.Arithmetic
    let tracksIndex = indices != nil
    let vectorWidth = width / 8 * 8
    withUnsafeTemporaryAllocation(of: T.self, capacity: 2 * width + 8) { floats in
      withUnsafeTemporaryAllocation(of: T.SIMDMaskScalar.self, capacity: width + 8) { ints in
        let best = floats.baseAddress!
        let nanProbe = best + width
        let bestIndex = ints.baseAddress!
        best.initialize(repeating: -.infinity, count: width)
        nanProbe.initialize(repeating: 0, count: width)
        bestIndex.initialize(repeating: 0, count: width)
        for position in 0..<count {
          let row = p + position * stride
          let here = SIMD8<T.SIMDMaskScalar>(repeating: T.SIMDMaskScalar(truncatingIfNeeded: position))
          var c = 0
          while c < vectorWidth {
            let v = E.lanes(row, c)
            var top = UnsafeRawPointer(best + c).loadUnaligned(as: SIMD8<T>.self)
            let greater = T.lanesGreater(v, top)
            top.replace(with: v, where: greater)
            UnsafeMutableRawPointer(best + c).storeBytes(of: top, as: SIMD8<T>.self)
            if tracksIndex {
              var at = UnsafeRawPointer(bestIndex + c).loadUnaligned(as: SIMD8<T.SIMDMaskScalar>.self)
              at.replace(with: here, where: greater)
              UnsafeMutableRawPointer(bestIndex + c).storeBytes(of: at, as: SIMD8<T.SIMDMaskScalar>.self)
            }
            // v * 0 is NaN for NaN (and ±Inf) inputs; the rescan below tells them apart.
            let probe = UnsafeRawPointer(nanProbe + c).loadUnaligned(as: SIMD8<T>.self) + v * 0
            UnsafeMutableRawPointer(nanProbe + c).storeBytes(of: probe, as: SIMD8<T>.self)
            c += 8
          }
          while c < width {
            let v = E.value(row, c)
            if v > best[c] {
              best[c] = v
              bestIndex[c] = T.SIMDMaskScalar(truncatingIfNeeded: position)
            }
            nanProbe[c] += v * 0
            c += 1
          }
        }
        for c in 0..<width {
          var value = best[c]
          var index = Int(bestIndex[c])
          if nanProbe[c].isNaN {
            var position = 0
            while position < count, !E.value(p, position * stride + c).isNaN { position += 1 }
            if position < count {
              value = .nan
              index = position
            }
          }
          out[c * outStride] = value
          indices?[c * outStride] = Int64(index)
        }
      }
    }
  }
}
