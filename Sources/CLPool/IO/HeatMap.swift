import Foundation

/// Renders a 2-D map (a class activation map) as a colour picture: normalised to [0, 1] by its
/// own minimum and maximum, bilinearly resampled to the picture's size, coloured with the viridis
/// palette, and optionally blended over a photo.
public enum HeatMap {
  /// Where a picture's pixels sample the map when the two sizes differ.
  public enum Resampling: Sendable {
    /// Pixel centres line up, as OpenCV's and PIL's resize and torch's `interpolate` with
    /// `align_corners=False`: output pixel x reads the map at (x + 0.5) · in/out − 0.5, clamped to
    /// the edge cells. Each map cell covers an equal share of the picture.
    case pixelCenters
    /// The map's corner cells land on the picture's corner pixels (`align_corners=True`): x reads
    /// the map at x · (in − 1)/(out − 1). Edge cells cover half the share of inner ones.
    case alignCorners
  }

  /// - Parameters:
  ///   - map: a [H, W] tensor; NaN and ±Inf cells draw as its finite minimum.
  ///   - width: the picture's width in pixels.
  ///   - height: the picture's height in pixels.
  ///   - resampling: how picture pixels sample the map.
  /// - Returns: the coloured map, `width`×`height`.
  public static func render(_ map: Tensor, width: Int, height: Int, resampling: Resampling = .pixelCenters) throws
    -> RGBImage
  {
    let heat = try normalized(map, width: width, height: height, resampling: resampling)
    var pixels = [UInt8](repeating: 0, count: width * height * 3)
    for (index, value) in heat.enumerated() {
      let colour = viridis(value)
      pixels[index * 3] = colour.0
      pixels[index * 3 + 1] = colour.1
      pixels[index * 3 + 2] = colour.2
    }
    return try RGBImage(width: width, height: height, pixels: pixels)
  }

  /// The map rendered at the photo's size and blended over it: each pixel is
  /// (1 − alpha) · photo + alpha · viridis(heat), so the photo stays visible under the colours.
  /// - Parameters:
  ///   - map: a [H, W] tensor, as for `render`.
  ///   - photo: the picture under the heat map; the result has its size.
  ///   - alpha: the heat map's weight, 0 (the photo alone) to 1 (the heat map alone).
  ///   - resampling: how photo pixels sample the map.
  public static func overlay(_ map: Tensor, on photo: RGBImage, alpha: Double, resampling: Resampling = .pixelCenters)
    throws -> RGBImage
  {
    guard alpha.isFinite, (0...1).contains(alpha) else {
      throw CLPoolError.invalidArgument("alpha must be from 0 to 1, got \(alpha)")
    }
    let heat = try render(map, width: photo.width, height: photo.height, resampling: resampling)
    var blended = photo
    for index in blended.pixels.indices {
      let mixed = (1 - alpha) * Double(photo.pixels[index]) + alpha * Double(heat.pixels[index])
      blended.pixels[index] = UInt8(min(255, max(0, mixed.rounded())))
    }
    return blended
  }

  /// The map normalised to [0, 1] by its finite minimum and maximum (a constant map is all 0) and
  /// bilinearly resampled: `width`·`height` values, row-major; what `render` colours.
  public static func normalized(_ map: Tensor, width: Int, height: Int, resampling: Resampling) throws -> [Double] {
    guard map.rank == 2, map.count > 0 else {
      throw CLPoolError.invalidShape("a heat map needs a non-empty [H,W] map, got \(Tensor.describe(map.shape))")
    }
    try RGBImage.checkSide(width, height)
    let (rows, columns) = (map.shape[0], map.shape[1])
    let finite = map.scalars.filter(\.isFinite)
    let low = Double(finite.min() ?? 0)
    let span = Double(finite.max() ?? 0) - low
    let unit = map.scalars.map { value -> Double in
      guard value.isFinite, span > 0 else { return 0 }
      return (Double(value) - low) / span
    }
    let ys = samples(height, of: rows, resampling), xs = samples(width, of: columns, resampling)
    var values = [Double](repeating: 0, count: width * height)
    for (y, sy) in ys.enumerated() {
      for (x, sx) in xs.enumerated() {
        func at(_ r: Int, _ c: Int) -> Double { unit[r * columns + c] }
        let top = at(sy.low, sx.low) * (1 - sx.weight) + at(sy.low, sx.high) * sx.weight
        let bottom = at(sy.high, sx.low) * (1 - sx.weight) + at(sy.high, sx.high) * sx.weight
        values[y * width + x] = top * (1 - sy.weight) + bottom * sy.weight
      }
    }
    return values
  }

  /// For each of `count` output positions along one axis, the two map cells it lies between and
  /// the weight of the second.
  static func samples(_ count: Int, of cells: Int, _ resampling: Resampling) -> [(low: Int, high: Int, weight: Double)] {
    (0..<count).map { index in
      var source: Double
      switch resampling {
      case .pixelCenters:
        source = max(0, (Double(index) + 0.5) * Double(cells) / Double(count) - 0.5)
      case .alignCorners:
        source = count > 1 ? Double(index) * Double(cells - 1) / Double(count - 1) : 0
      }
      source = min(source, Double(cells - 1))
      let low = Int(source)
      return (low, min(low + 1, cells - 1), source - Double(low))
    }
  }

  /// Viridis, sampled at 9 points and linearly interpolated.
  static func viridis(_ t: Double) -> (UInt8, UInt8, UInt8) {
    let stops: [(Double, Double, Double)] = [
      (68, 1, 84), (71, 44, 122), (59, 81, 139), (44, 113, 142), (33, 144, 141),
      (39, 173, 129), (92, 200, 99), (170, 220, 50), (253, 231, 37),
    ]
    let position = min(max(t.isFinite ? t : 0, 0), 1) * Double(stops.count - 1)
    let index = min(Int(position), stops.count - 2)
    let f = position - Double(index)
    let (a, b) = (stops[index], stops[index + 1])
    func mix(_ p: Double, _ q: Double) -> UInt8 { UInt8((p + (q - p) * f).rounded()) }
    return (mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
  }
}
