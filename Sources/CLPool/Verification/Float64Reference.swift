import Foundation

/// Straightforward float64 implementations of every operation: the independent reference that
/// `clpool selftest` and the tests check each backend against. Written for clarity, not speed,
/// and sharing no code with the backends.
public enum Float64Reference {
  /// Per (n, c) plane, in output order: the plane's values as Doubles via `body`.
  private static func forEachPlane(
    _ x: [Float], _ geometry: PoolGeometry, _ body: (_ plane: Int, _ values: [Double]) -> Void
  ) {
    let (batch, channels, spatial) = (geometry.batch, geometry.channels, geometry.spatialSize)
    var values = [Double](repeating: 0, count: spatial)
    for n in 0..<batch {
      for c in 0..<channels {
        for s in 0..<spatial {
          let offset =
            geometry.layout == .channelsFirst
            ? (n * channels + c) * spatial + s : (n * spatial + s) * channels + c
          values[s] = Double(x[offset])
        }
        body(n * channels + c, values)
      }
    }
  }

  /// Plane means, and each plane's mean |x| (the scale SPEC.md's pooling tolerance uses).
  public static func averagePool(_ x: [Float], _ geometry: PoolGeometry) -> (
    mean: [Double], meanAbs: [Double]
  ) {
    var mean = [Double](repeating: 0, count: geometry.planes)
    var meanAbs = [Double](repeating: 0, count: geometry.planes)
    forEachPlane(x, geometry) { plane, values in
      mean[plane] = values.reduce(0, +) / Double(values.count)
      meanAbs[plane] = values.reduce(0) { $0 + abs($1) } / Double(values.count)
    }
    return (mean, meanAbs)
  }

  /// Plane maxima with the flat spatial index of the first maximum (of the first NaN if any).
  public static func maxPool(_ x: [Float], _ geometry: PoolGeometry) -> (
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
  public static func dense(
    _ x: [Double], _ weight: [Float], _ bias: [Float]?, _ geometry: DenseGeometry,
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
}
