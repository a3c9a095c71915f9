/// How a reduction splits each plane of `length` elements into consecutive chunks so that a few
/// large planes still keep every core busy. Chunk boundaries depend only on the shape and the
/// device, never on timing, so partial results combine in a fixed order (deterministic output).
struct Chunking: Equatable {
  let length: Int
  let chunkLength: Int
  var chunks: Int { (length + chunkLength - 1) / chunkLength }

  /// Splits into at most `maximumChunks` chunks of at least `minimumChunkLength` elements each,
  /// chunk lengths rounded up to a multiple of `granule`.
  init(length: Int, maximumChunks: Int, minimumChunkLength: Int, granule: Int) {
    precondition(length > 0 && granule > 0)
    let byCount = (length - 1) / max(1, maximumChunks) + 1  // ceil without overflow
    let wanted = max(byCount, minimumChunkLength)
    let rounded = (wanted + granule - 1) / granule * granule
    self.length = length
    chunkLength = min(rounded, length)
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
