import CLPool
import Foundation
import TestSupport
import Testing

/// Heat-map resizing conventions, PNG round trips and hostile picture files.
@Suite struct ImageTests {
  /// A 1×2 map [0, 1] widened to 4 pixels: pixel centres (OpenCV, PIL, torch align_corners=False)
  /// read the map at (x + 0.5)·2/4 − 0.5 = −0.25, 0.25, 0.75, 1.25, clamped; corner to corner
  /// reads it at x·1/3. These are the values torch.nn.functional.interpolate gives.
  @Test func resizingFollowsThePixelCentreConvention() throws {
    let map = try Tensor(shape: [1, 2], scalars: [0, 1])
    #expect(try HeatMap.normalized(map, width: 4, height: 1, resampling: .pixelCenters) == [0, 0.25, 0.75, 1])
    let corners = try HeatMap.normalized(map, width: 4, height: 1, resampling: .alignCorners)
    #expect(zip(corners, [0, 1.0 / 3, 2.0 / 3, 1]).allSatisfy { abs($0 - $1) < 1e-12 })
    // 2×2 → 4×4 by pixel centres, against torch's values for [[0, 1], [2, 3]] (normalised by 3).
    let square = try HeatMap.normalized(try Tensor(shape: [2, 2], scalars: [0, 1, 2, 3]), width: 4, height: 4, resampling: .pixelCenters)
    let torch: [Double] = [
      0.00, 0.25, 0.75, 1.00, 0.50, 0.75, 1.25, 1.50, 1.50, 1.75, 2.25, 2.50, 2.00, 2.25, 2.75, 3.00,
    ].map { $0 / 3 }
    #expect(zip(square, torch).allSatisfy { abs($0 - $1) < 1e-12 }, "\(square)")
    // Downsizing 4 → 2 by pixel centres reads cells 0.5 and 2.5: the mean of each pair.
    let halved = try HeatMap.normalized(try Tensor(shape: [1, 4], scalars: [0, 1, 2, 3]), width: 2, height: 1, resampling: .pixelCenters)
    #expect(zip(halved, [0.5 / 3, 2.5 / 3]).allSatisfy { abs($0 - $1) < 1e-12 }, "\(halved)")
  }

  @Test func overlayBlendsThePhotoAndTheColours() throws {
    let photo = try RGBImage(width: 2, height: 1, pixels: [0, 100, 200, 255, 255, 255])
    let map = try Tensor(shape: [1, 2], scalars: [-1, 1])
    let heat = try HeatMap.render(map, width: 2, height: 1)
    #expect(heat.pixels == [68, 1, 84, 253, 231, 37])  // viridis' ends
    let blended = try HeatMap.overlay(map, on: photo, alpha: 0.25)
    let expected = zip(photo.pixels, heat.pixels).map { UInt8((0.75 * Double($0) + 0.25 * Double($1)).rounded()) }
    #expect(blended.pixels == expected)
    #expect(try HeatMap.overlay(map, on: photo, alpha: 0).pixels == photo.pixels)
    #expect(throws: CLPoolError.self) { try HeatMap.overlay(map, on: photo, alpha: 1.5) }
  }

  @Test func pngRoundTripsAndHostileFilesAreRefused() throws {
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("clpool-image-\(UUID())")
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: folder) }
    let image = try RGBImage(width: 5, height: 3, pixels: (0..<45).map { UInt8($0 * 5) })
    let png = folder.appendingPathComponent("a.png")
    try image.writePNG(to: png)
    #expect(try RGBImage.read(contentsOf: png) == image)
    let bytes = [UInt8](try Data(contentsOf: png))
    let hostile: [(String, [UInt8], String)] = [
      ("truncated.png", Array(bytes.prefix(bytes.count - 20)), "corrupt or truncated PNG"),
      ("header-only.png", Array(bytes.prefix(20)), "PNG"),
      ("huge.png", PNGBytes.withDimensions(bytes, 100_000, 100_000), "100000x100000, beyond"),
      ("wide.png", PNGBytes.withDimensions(bytes, 20_000, 2), "20000x2, beyond"),
      ("text.jpg", Array("not a picture".utf8), "not a PNG or JPEG file"),
      ("empty.png", [], "not a PNG or JPEG file"),
      ("jpeg-magic.jpg", [0xFF, 0xD8, 0xFF, 0xE0, 0, 16], "JPEG"),
    ]
    for (name, content, message) in hostile {
      let url = folder.appendingPathComponent(name)
      try Data(content).write(to: url)
      do {
        _ = try RGBImage.read(contentsOf: url)
        Issue.record("\(name) was read")
      } catch let error as CLPoolError {
        #expect(error.isUsageError && error.description.contains(name) && error.description.contains(message), "\(name): \(error)")
        #expect(!error.description.contains("\n"))
      }
    }
  }
}

/// Top-k classes: softmax in float64, ties to the lower index, NaN last.
@Suite struct RankingTests {
  @Test func topClassesAreRankedAndTiesGoToTheLowerIndex() {
    let logits: [Float] = [1, 3, 3, 0, -2]
    let top = Ranking.top(3, of: logits)
    #expect(top.map(\.index) == [1, 2, 0])
    let total = logits.reduce(0.0) { $0 + exp(Double($1) - 3) }
    #expect(top.map(\.probability) == [1 / total, 1 / total, exp(-2.0) / total])
    #expect(Ranking.top(5, of: logits).map(\.index) == [1, 2, 0, 3, 4])
    #expect(Ranking.top(2, of: [Double.nan, 1, 2]).map(\.index) == [2, 1])
    #expect(Ranking.top(1, of: [Float16(0.5), 0.5]).map(\.index) == [0])
  }
}
