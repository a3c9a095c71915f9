import Foundation

/// Straightforward float64 implementations of every operation: the independent reference that
/// `clpool selftest` and the tests check each backend against. Written for clarity, not speed,
/// and sharing no code with the backends.
public enum Float64Reference {
  /// Per (n, c) plane, in output order: the plane's values as Doubles via `body`.
  private static func forEachPlane<S: BinaryFloatingPoint>(
    _ x: [S], _ geometry: PoolGeometry, _ body: (_ plane: Int, _ values: [Double]) -> Void
  ) {
    var values = [Double](repeating: 0, count: geometry.spatialSize)
    forEachElement(geometry) { offset, plane, position in
      values[position] = Double(x[offset])
      if position == geometry.spatialSize - 1 { body(plane, values) }
    }
  }

  /// Plane means, and each plane's mean |x| (the scale SPEC.md's pooling tolerance uses). The
  /// sums are Neumaier-compensated, so the reference stays a few float64 ulps from exact even for
  /// float64 inputs.
  public static func averagePool<S: BinaryFloatingPoint>(_ x: [S], _ geometry: PoolGeometry) -> (
    mean: [Double], meanAbs: [Double]
  ) {
    var mean = [Double](repeating: 0, count: geometry.planes)
    var meanAbs = [Double](repeating: 0, count: geometry.planes)
    forEachPlane(x, geometry) { plane, values in
      mean[plane] = accurateMean(values)
      meanAbs[plane] = accurateMean(values.map(abs))
    }
    return (mean, meanAbs)
  }

  /// The mean through `accurateSum`; when the sum of finite values overflows (float64 data near
  /// its limit), the mean of the values scaled by 2^-64, scaled back.
  static func accurateMean(_ values: [Double]) -> Double {
    let mean = accurateSum(values) / Double(values.count)
    guard !mean.isFinite, values.allSatisfy(\.isFinite) else { return mean }
    return accurateSum(values.map { $0 * 0x1p-64 }) / Double(values.count) * 0x1p64
  }

  /// Neumaier's compensated sum; non-finite values propagate as in a plain sum.
  static func accurateSum(_ values: [Double]) -> Double {
    var sum = 0.0
    var compensation = 0.0
    for value in values {
      let t = sum + value
      compensation += abs(sum) >= abs(value) ? (sum - t) + value : (value - t) + sum
      sum = t
    }
    return sum.isFinite ? sum + compensation : sum
  }

  /// Plane maxima with the flat spatial index of the first maximum (of the first NaN if any).
  public static func maxPool<S: BinaryFloatingPoint>(_ x: [S], _ geometry: PoolGeometry) -> (
    values: [Double], indices: [Int64]
  ) {
    var maxima = [Double](repeating: 0, count: geometry.planes)
    var indices = [Int64](repeating: 0, count: geometry.planes)
    forEachPlane(x, geometry) { plane, values in
      if let firstNaN = values.firstIndex(where: \.isNaN) {
        maxima[plane] = .nan
        indices[plane] = Int64(firstNaN)
      } else {
        let top = values.max()!
        maxima[plane] = top
        indices[plane] = Int64(values.firstIndex(of: top)!)
      }
    }
    return (maxima, indices)
  }

  /// activation(x · W + b) in float64, W read in the given layout.
  public static func dense<S: BinaryFloatingPoint>(
    _ x: [Double], _ weight: [S], _ bias: [S]?, _ geometry: DenseGeometry,
    _ activation: Activation
  ) -> [Double] {
    let (n, k, m) = (geometry.rows, geometry.inputs, geometry.outputs)
    var y = [Double](repeating: 0, count: n * m)
    for row in 0..<n {
      for column in 0..<m {
        var sum = bias.map { Double($0[column]) } ?? 0
        for i in 0..<k {
          let w = geometry.weightLayout == .inOut ? weight[i * m + column] : weight[column * k + i]
          sum += x[row * k + i] * Double(w)
        }
        y[row * m + column] = sum
      }
    }
    switch activation {
    case .none: break
    case .relu: y = y.map { $0 < 0 ? 0 : $0 }
    case .sigmoid: y = y.map { 1 / (1 + Foundation.exp(-$0)) }
    case .softmax:
      for row in 0..<n {
        let values = y[(row * m)..<((row + 1) * m)]
        if values.contains(where: \.isNaN) {
          for j in values.indices { y[j] = .nan }
          continue
        }
        let top = values.max()!
        let sum = values.reduce(0) { $0 + Foundation.exp($1 - top) }
        for j in values.indices { y[j] = Foundation.exp(y[j] - top) / sum }
      }
    }
    return y
  }

  /// dx = dz / S broadcast over each plane, in the input's layout.
  public static func averagePoolBackward<S: BinaryFloatingPoint>(_ dz: [S], _ geometry: PoolGeometry) -> [Double] {
    var dx = [Double](repeating: 0, count: geometry.planes * geometry.spatialSize)
    forEachElement(geometry) { offset, plane, _ in dx[offset] = Double(dz[plane]) / Double(geometry.spatialSize) }
    return dx
  }

  /// dz to each plane's first-maximum position, 0 elsewhere.
  public static func maxPoolBackward<S: BinaryFloatingPoint>(_ dz: [S], indices: [Int64], _ geometry: PoolGeometry) -> [Double] {
    var dx = [Double](repeating: 0, count: geometry.planes * geometry.spatialSize)
    forEachElement(geometry) { offset, plane, position in
      if Int64(position) == indices[plane] { dx[offset] = Double(dz[plane]) }
    }
    return dx
  }

  /// Visits every input element as (storage offset, plane, spatial position), by nested loops.
  private static func forEachElement(_ geometry: PoolGeometry, _ body: (Int, Int, Int) -> Void) {
    let (batch, channels, spatial) = (geometry.batch, geometry.channels, geometry.spatialSize)
    for n in 0..<batch {
      for c in 0..<channels {
        for s in 0..<spatial {
          let offset =
            geometry.layout == .channelsFirst
            ? (n * channels + c) * spatial + s : (n * spatial + s) * channels + c
          body(offset, n * channels + c, s)
        }
      }
    }
  }

  /// dx = dy · Wᵀ, dW = xᵀ · dy (in the weight's layout), db = Σ_n dy, in float64.
  public static func denseBackward<S: BinaryFloatingPoint>(_ dy: [S], _ x: [S], _ weight: [S], _ geometry: DenseGeometry)
    -> (input: [Double], weight: [Double], bias: [Double])
  {
    let (n, k, m) = (geometry.rows, geometry.inputs, geometry.outputs)
    func w(_ i: Int, _ j: Int) -> Double {
      Double(geometry.weightLayout == .inOut ? weight[i * m + j] : weight[j * k + i])
    }
    var dx = [Double](repeating: 0, count: n * k)
    var dw = [Double](repeating: 0, count: k * m)
    var db = [Double](repeating: 0, count: m)
    for row in 0..<n {
      for j in 0..<m {
        let g = Double(dy[row * m + j])
        db[j] += g
        for i in 0..<k {
          dx[row * k + i] += g * w(i, j)
          let slot = geometry.weightLayout == .inOut ? i * m + j : j * k + i
          dw[slot] += Double(x[row * k + i]) * g
        }
      }
    }
    return (dx, dw, db)
  }

  /// cam[p] = Σ_c W[c, k] · x[c, p] over the positions p of one sample (x [C, P], or [P, C]
  /// channels-last), W [C, M] (in-out) or [M, C] (out-in).
  public static func classActivationMap<S: BinaryFloatingPoint>(
    _ x: [S], channels: Int, layout: Layout, weight: [S], weightLayout: WeightLayout, classes: Int, classIndex k: Int
  ) -> [Double] {
    let positions = x.count / channels
    return (0..<positions).map { p in
      (0..<channels).reduce(0.0) { sum, c in
        let value = layout == .channelsFirst ? x[c * positions + p] : x[p * channels + c]
        let w = weightLayout == .inOut ? weight[c * classes + k] : weight[k * channels + c]
        return sum + Double(w) * Double(value)
      }
    }
  }
}
