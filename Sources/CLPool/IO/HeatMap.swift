import CPNG
import Foundation

/// Renders a 2-D map (a class activation map) as a colour PNG: normalised to [0, 1] by its own
/// minimum and maximum, bilinearly resampled to the requested size, coloured with the viridis
/// palette, and encoded by libpng.
public enum HeatMap {
  /// - Parameters:
  ///   - map: a [H, W] tensor.
  ///   - width, height: the image size; the map is resampled with align-corners bilinear
  ///     interpolation (the map's corner cells land on the image's corner pixels).
  /// - Returns: RGB bytes, row-major, 3 per pixel.
  public static func render(_ map: Tensor, width: Int, height: Int) throws -> [UInt8] {
    guard map.rank == 2, map.count > 0 else {
      throw CLPoolError.invalidShape("a heat map needs a non-empty [H,W] map, got \(Tensor.describe(map.shape))")
    }
    guard width > 0, height > 0, width <= 16_384, height <= 16_384 else {
      throw CLPoolError.invalidArgument("image size \(width)x\(height) is outside 1x1...16384x16384")
    }
    let (rows, columns) = (map.shape[0], map.shape[1])
    let finite = map.scalars.filter(\.isFinite)
    let low = finite.min() ?? 0
    let span = (finite.max() ?? 0) - low
    var pixels = [UInt8](repeating: 0, count: width * height * 3)
    for y in 0..<height {
      let sy = height > 1 ? Double(y) * Double(rows - 1) / Double(height - 1) : 0
      let y0 = Int(sy), y1 = min(Int(sy) + 1, rows - 1), fy = sy - Double(y0)
      for x in 0..<width {
        let sx = width > 1 ? Double(x) * Double(columns - 1) / Double(width - 1) : 0
        let x0 = Int(sx), x1 = min(Int(sx) + 1, columns - 1), fx = sx - Double(x0)
        func at(_ r: Int, _ c: Int) -> Double {
          let value = map.scalars[r * columns + c]
          return value.isFinite ? Double(value) : Double(low)  // NaN/Inf cells draw as the minimum
        }
        let value =
          (at(y0, x0) * (1 - fx) + at(y0, x1) * fx) * (1 - fy) + (at(y1, x0) * (1 - fx) + at(y1, x1) * fx) * fy
        let unit = span > 0 ? (value - Double(low)) / Double(span) : 0
        let (r, g, b) = viridis(unit)
        let offset = (y * width + x) * 3
        pixels[offset] = r
        pixels[offset + 1] = g
        pixels[offset + 2] = b
      }
    }
    return pixels
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

  /// Encodes RGB pixels with libpng and writes them through a temporary file and a rename.
  public static func writePNG(rgb pixels: [UInt8], width: Int, height: Int, to url: URL) throws {
    precondition(pixels.count == width * height * 3)
    var image = png_image()
    image.version = UInt32(PNG_IMAGE_VERSION)
    image.width = UInt32(width)
    image.height = UInt32(height)
    image.format = UInt32(PNG_FORMAT_RGB)
    var size: png_alloc_size_t = 0
    // First call sizes the encoded image, the second fills it.
    guard png_image_write_to_memory(&image, nil, &size, 0, pixels, 0, nil) != 0 else {
      throw CLPoolError.invalidInput("\(url.path): libpng could not encode the image (\(pngMessage(&image)))")
    }
    var encoded = [UInt8](repeating: 0, count: Int(size))
    guard png_image_write_to_memory(&image, &encoded, &size, 0, pixels, 0, nil) != 0 else {
      throw CLPoolError.invalidInput("\(url.path): libpng could not encode the image (\(pngMessage(&image)))")
    }
    png_image_free(&image)
    try OutputFile.write(Data(encoded.prefix(Int(size))), to: url)
  }

  private static func pngMessage(_ image: inout png_image) -> String {
    withUnsafeBytes(of: &image.message) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
  }
}
