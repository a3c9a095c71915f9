/// How a reduction splits each plane of `length` elements into consecutive chunks of `chunkLength`
/// (the last may be shorter), so that a few large planes still keep every core busy. The chunk
/// length is a function of the plane size and the device only, never of the batch or of timing,
/// so partial results combine in a fixed order (deterministic, batch-invariant output).
struct Chunking: Equatable {
  let length: Int
  let chunkLength: Int
  var chunks: Int { (length + chunkLength - 1) / chunkLength }

  init(length: Int, chunkLength: Int) {
    precondition(length > 0 && chunkLength > 0)
    self.length = length
    self.chunkLength = min(chunkLength, length)
  }

  /// Where item `plane * chunks + chunk` lies in contiguous planes of `length` elements.
  @inline(__always)
  func span(of item: Int) -> (offset: Int, length: Int) {
    if chunkLength == length { return (item * length, length) }  // one chunk: no division
    let chunks = self.chunks
    let begin = (item % chunks) * chunkLength
    return ((item / chunks) * length + begin, Swift.min(chunkLength, length - begin))
  }
}

/// Sums with Kahan compensation; the same scheme the kernels use to fold block sums. Once
/// the sum is infinite (or NaN) the compensation is dropped, since inf - inf would turn it into
/// NaN: an infinite sum stays infinite, and +inf with -inf still gives NaN.
struct CompensatedSum<T: BinaryFloatingPoint> {
  private(set) var sum: T = 0
  private var compensation: T = 0

  @inline(__always) mutating func add(_ value: T) {
    let y = value - compensation
    let t = sum + y
    compensation = t.isFinite ? (t - sum) - y : 0
    sum = t
  }
}

/// The max-pool ordering shared by every backend and the reference: NaN beats numbers, and among
/// equal values (and among NaNs) the earlier index wins.
@inline(__always)
func maxIsBetter<T: FloatingPoint>(_ value: T, _ index: Int, than best: T, _ bestIndex: Int) -> Bool {
  if best.isNaN { return value.isNaN && index < bestIndex }
  if value.isNaN { return true }
  return value > best || (value == best && index < bestIndex)
}
