import CLPoolJPEG
import CPNG
import Foundation

/// An 8-bit RGB picture in host memory: a photo read from a PNG or JPEG file, or a heat map to
/// write as PNG.
public struct RGBImage: Equatable, Sendable {
  public let width: Int
  public let height: Int
  /// Row-major, top row first, 3 bytes (red, green, blue) a pixel.
  public var pixels: [UInt8]

  /// The largest side clpool reads or writes; pictures beyond it are refused before any pixel
  /// memory is allocated.
  public static let maximumSide = 16_384
  /// The most pixels of a photo clpool reads (64 Mpixel: 192 MiB of RGB).
  public static let maximumPixels = 1 << 26
  /// The largest image file read: twice the 512 MiB that `maximumPixels` of 16-bit RGBA hold
  /// uncompressed, which no PNG or JPEG of them exceeds.
  public static let maximumFileBytes = 1 << 30

  public init(width: Int, height: Int, pixels: [UInt8]) throws {
    try Self.checkSide(width, height)
    guard pixels.count == width * height * 3 else {
      throw CLPoolError.invalidArgument("a \(width)x\(height) RGB image has \(width * height * 3) bytes, got \(pixels.count)")
    }
    self.width = width
    self.height = height
    self.pixels = pixels
  }

  /// Reads a PNG (through libpng; grey, palette, 16-bit and alpha are converted, transparency
  /// composited on white) or a JPEG (through libjpeg), told apart by their first bytes, not the
  /// file name. A corrupt or truncated file, or one whose header claims more than
  /// `maximumSide` / `maximumPixels`, throws `invalidInput` naming the file.
  public static func read(contentsOf url: URL) throws -> RGBImage { try read(atPath: url.relativePath) }

  /// `read(contentsOf:)` for a path taken as the kernel takes it, not standardized as a URL's.
  /// - Parameter path: the file, as given on a command line.
  public static func read(atPath path: String) throws -> RGBImage {
    let file = try InputFile(path: path)
    let png: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A], jpeg: [UInt8] = [0xFF, 0xD8, 0xFF]
    do {
      // The signature first, so that a device or another kind of file is refused before it is read.
      let signature = try file.prefix(png.count)
      if signature.starts(with: png) { return try decodePNG(file.contents(after: signature, limit: maximumFileBytes)) }
      if signature.starts(with: jpeg) { return try decodeJPEG(file.contents(after: signature, limit: maximumFileBytes)) }
      throw ImageError("not a PNG or JPEG file")
    } catch let error as ImageError {
      throw CLPoolError.invalidInput("\(path): \(error.message)")
    }
  }

  /// Throws `invalidArgument` unless a picture of `width`×`height` is within 1...`maximumSide`.
  static func checkSide(_ width: Int, _ height: Int) throws {
    guard width > 0, height > 0, width <= maximumSide, height <= maximumSide else {
      throw CLPoolError.invalidArgument("image size \(width)x\(height) is outside 1x1...\(maximumSide)x\(maximumSide)")
    }
  }

  private struct ImageError: Error {
    let message: String
    init(_ message: String) { self.message = message }
  }

  private static func checkSize(_ width: Int, _ height: Int) throws {
    guard width > 0, height > 0 else { throw ImageError("the image is empty (\(width)x\(height))") }
    guard width <= maximumSide, height <= maximumSide, width * height <= maximumPixels else {
      throw ImageError(
        "the image is \(width)x\(height), beyond the \(maximumSide)-pixel side or \(maximumPixels)-pixel limit")
    }
  }

  private static func decodePNG(_ bytes: [UInt8]) throws -> RGBImage {
    var image = png_image()
    image.version = UInt32(PNG_IMAGE_VERSION)
    defer { png_image_free(&image) }
    func failure(_ what: String) -> ImageError {
      let reason = withUnsafeBytes(of: &image.message) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
      return ImageError("\(what) (libpng: \(reason.isEmpty ? "unknown error" : reason))")
    }
    guard png_image_begin_read_from_memory(&image, bytes, bytes.count) != 0 else { throw failure("not a readable PNG") }
    try checkSize(Int(image.width), Int(image.height))
    image.format = UInt32(PNG_FORMAT_RGB)
    var pixels = [UInt8](repeating: 0, count: Int(image.width) * Int(image.height) * 3)
    var white = png_color(red: 255, green: 255, blue: 255)
    guard png_image_finish_read(&image, &white, &pixels, 0, nil) != 0 else { throw failure("corrupt or truncated PNG") }
    return try RGBImage(width: Int(image.width), height: Int(image.height), pixels: pixels)
  }

  private static func decodeJPEG(_ bytes: [UInt8]) throws -> RGBImage {
    var decoded: UnsafeMutablePointer<UInt8>?
    var width = 0, height = 0
    var message = [CChar](repeating: 0, count: 256)
    let status = clpool_jpeg_decode(
      bytes, bytes.count, maximumSide, maximumPixels, &decoded, &width, &height, &message, message.count)
    if status == 2 { try checkSize(width, height) }
    guard status == 0, let decoded else {
      throw ImageError("corrupt, truncated or unsupported JPEG (libjpeg: \(String(decoding: message.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)))")
    }
    defer { free(decoded) }
    return try RGBImage(width: width, height: height, pixels: Array(UnsafeBufferPointer(start: decoded, count: width * height * 3)))
  }

  /// Encodes the image with libpng and writes it through `OutputFile`: whole or not at all.
  public func writePNG(to url: URL) throws { try writePNG(toPath: url.relativePath) }

  /// `writePNG(to:)` for a path taken as the kernel takes it, not standardized as a URL's.
  /// - Parameter path: the file, as given on a command line.
  public func writePNG(toPath path: String) throws {
    var image = png_image()
    image.version = UInt32(PNG_IMAGE_VERSION)
    image.width = UInt32(width)
    image.height = UInt32(height)
    image.format = UInt32(PNG_FORMAT_RGB)
    defer { png_image_free(&image) }
    func failure() -> CLPoolError {
      let reason = withUnsafeBytes(of: &image.message) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
      return .invalidInput("\(path): libpng could not encode the image (\(reason))")
    }
    var size: png_alloc_size_t = 0
    // The first call sizes the encoded image, the second fills it.
    guard png_image_write_to_memory(&image, nil, &size, 0, pixels, 0, nil) != 0 else { throw failure() }
    var encoded = [UInt8](repeating: 0, count: Int(size))
    guard png_image_write_to_memory(&image, &encoded, &size, 0, pixels, 0, nil) != 0 else { throw failure() }
    try OutputFile.write(Data(encoded.prefix(Int(size))), toPath: path)
  }
}
