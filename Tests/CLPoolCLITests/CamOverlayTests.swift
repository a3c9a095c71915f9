import CLPool
import Foundation
import TestSupport
import Testing

/// `clpool cam --overlay` on a real photo (scikit-image's sample photo of Chelsea the cat, written
/// by python as PNG and JPEG): the heat goes where the map's argmax is, the photo stays visible
/// under it, and damaged photos are refused without leaving an output.
@Suite struct CamOverlayTests {
  typealias Scratch = ComputeCommandTests.Scratch

  /// The map's grid and its hot cell.
  static let (rows, columns) = (7, 7)
  static let hot = (row: 2, column: 5)
  static let otherHot = (row: 5, column: 1)

  /// Writes chelsea.png, chelsea.jpg, the photo's own pixels as float32 .npy (numpy's view of
  /// them, for comparison) and PIL's decoding of the JPEG; false (with a note) when python3 with
  /// scikit-image is missing, which fails the test under CI=true (scripts/setup installs it).
  static func writePhotos(_ scratch: Scratch) throws -> Bool {
    let script = """
      import numpy as np, imageio.v2 as imageio
      from skimage import data
      photo = data.chelsea()
      imageio.imwrite("chelsea.png", photo)
      imageio.imwrite("chelsea.jpg", photo, quality=92)
      np.save("chelsea.npy", photo.astype(np.float32))
      np.save("chelsea-jpeg.npy", imageio.imread("chelsea.jpg").astype(np.float32))
      """
    let run = try ClpoolRun.program(
      URL(fileURLWithPath: "/usr/bin/env"), ["python3", "-c", script], directory: scratch.url)
    guard run.status == 0 else {
      #expect(!TestEnvironment.isCI, "CI needs python3 with scikit-image (scripts/setup installs it): \(run.stderr)")
      print("note: CAM overlay photo test skipped: python3 with scikit-image not found (pip install scikit-image)")
      return false
    }
    return true
  }

  /// Feature maps [2, 7, 7] whose class 1 map is one hot cell at `hot` and class 0 map one at
  /// `otherHot`; the bias makes class 1 the top class.
  static func writeHead(_ scratch: Scratch) throws -> (features: String, weight: String, bias: String) {
    var values = [Float](repeating: 0, count: 2 * rows * columns)
    values[hot.row * columns + hot.column] = 1
    values[rows * columns + otherHot.row * columns + otherHot.column] = 1
    return (
      try scratch.save(try Tensor(shape: [2, rows, columns], scalars: values), "features.npy"),
      try scratch.save(try Tensor(shape: [2, 3], scalars: [0, 1, 0, 1, 0, 0]), "weight.npy"),
      try scratch.save(try Tensor(shape: [3], scalars: [0, 5, 0]), "bias.npy")
    )
  }

  static func luminance(_ p: [UInt8], _ i: Int) -> Double {
    0.299 * Double(p[3 * i]) + 0.587 * Double(p[3 * i + 1]) + 0.114 * Double(p[3 * i + 2])
  }

  static func correlation(_ a: [Double], _ b: [Double]) -> Double {
    let (ma, mb) = (a.reduce(0, +) / Double(a.count), b.reduce(0, +) / Double(b.count))
    let cov = zip(a, b).reduce(0) { $0 + ($1.0 - ma) * ($1.1 - mb) }
    let va = a.reduce(0) { $0 + ($1 - ma) * ($1 - ma) }, vb = b.reduce(0) { $0 + ($1 - mb) * ($1 - mb) }
    return cov / (va * vb).squareRoot()
  }

  /// What the overlay shows: the heat recovered from it, (overlay − (1 − α)·photo)/α, as
  /// luminance per pixel.
  static func heat(_ overlay: RGBImage, _ photo: [UInt8], alpha: Double) -> [Double] {
    (0..<(overlay.width * overlay.height)).map { i in
      (luminance(overlay.pixels, i) - (1 - alpha) * luminance(photo, i)) / alpha
    }
  }

  /// The centroid (x, y) of the hottest pixels (top 10 % of the heat's range).
  static func hotCentroid(_ heat: [Double], width: Int) -> (x: Double, y: Double) {
    let (low, high) = (heat.min()!, heat.max()!)
    var (sx, sy, n) = (0.0, 0.0, 0.0)
    for (i, value) in heat.enumerated() where value >= high - 0.1 * (high - low) {
      sx += Double(i % width)
      sy += Double(i / width)
      n += 1
    }
    return (sx / n, sy / n)
  }

  @Test(arguments: ComputeCommandTests.backends)
  func overlayFollowsTheMapOverARealPhoto(_ backend: String) throws {
    let scratch = try Scratch()
    guard try Self.writePhotos(scratch) else { return }
    let (features, weight, bias) = try Self.writeHead(scratch)
    let photo = try scratch.load("chelsea.npy")
    let (height, width) = (photo.shape[0], photo.shape[1])
    let photoPixels = photo.scalars.map { UInt8($0) }

    // The JPEG decodes as the reference decoder has it (both are libjpeg; IDCTs may differ by one).
    let jpeg = try RGBImage.read(contentsOf: URL(fileURLWithPath: scratch.path("chelsea.jpg")))
    let reference = try scratch.load("chelsea-jpeg.npy").scalars
    #expect(jpeg.width == width && jpeg.height == height)
    #expect(zip(jpeg.pixels, reference).map { abs(Double($0) - Double($1)) }.max()! <= 2)

    for (photoFile, alpha, choice, cell) in [
      ("chelsea.png", 0.5, "top", Self.hot), ("chelsea.jpg", 0.35, "0", Self.otherHot),
    ] {
      var arguments = ["cam", features, "--weight", weight, "--bias", bias, "--class", choice]
      arguments += ["-o", scratch.path("overlay.png"), "--overlay", scratch.path(photoFile), "--alpha", "\(alpha)"]
      let run = try ClpoolRun.run(arguments + ["--json", "--backend", backend])
      #expect(run.status == 0, "\(run.stderr)")
      if choice == "top" { #expect(run.stdout.contains("\"classes\":[1]"), "\(run.stdout)") }
      let overlay = try RGBImage.read(contentsOf: URL(fileURLWithPath: scratch.path("overlay.png")))
      #expect(overlay.width == width && overlay.height == height, "the overlay has the photo's size")
      let underneath = photoFile.hasSuffix(".jpg") ? jpeg.pixels : photoPixels
      let heat = Self.heat(overlay, underneath, alpha: alpha)

      // The hottest region is the map's argmax cell, centred where pixel centres put it:
      // x = (column + 0.5)·W/7 − 0.5.
      let centroid = Self.hotCentroid(heat, width: width)
      let expected = (
        x: (Double(cell.column) + 0.5) * Double(width) / Double(Self.columns) - 0.5,
        y: (Double(cell.row) + 0.5) * Double(height) / Double(Self.rows) - 0.5
      )
      #expect(abs(centroid.x - expected.x) < 4 && abs(centroid.y - expected.y) < 4, "\(photoFile): hot at \(centroid), expected \(expected)")
      // The brightest cell of the overlay itself (over the photo's own brightness) is that cell.
      var gain = [Double](repeating: 0, count: Self.rows * Self.columns)
      for i in 0..<(width * height) {
        let cellIndex = (i / width) * Self.rows / height * Self.columns + (i % width) * Self.columns / width
        gain[cellIndex] += Self.luminance(overlay.pixels, i) - Self.luminance(underneath, i)
      }
      #expect(gain.firstIndex(of: gain.max()!) == cell.row * Self.columns + cell.column, "\(photoFile)")

      // A cold region (the quarter of the picture farthest from the hot cell) still shows the photo:
      // there the overlay is the photo under a uniform tint.
      let (fromX, fromY) = (cell.column < Self.columns / 2 ? width / 2 : 0, cell.row < Self.rows / 2 ? height / 2 : 0)
      var seen: [Double] = [], original: [Double] = []
      for y in fromY..<(fromY + height / 2) {
        for x in fromX..<(fromX + width / 2) {
          seen.append(Self.luminance(overlay.pixels, y * width + x))
          original.append(Self.luminance(underneath, y * width + x))
        }
      }
      #expect(Self.correlation(seen, original) > 0.99, "\(photoFile): the photo is not visible under the heat map")
      #expect(seen != original, "\(photoFile): no tint at all")
    }

    // --align-corners stretches corner to corner: the hot cell's centre moves to column·(W−1)/6.
    let stretched = try ClpoolRun.run([
      "cam", features, "--weight", weight, "--class", "1", "-o", scratch.path("stretched.png"),
      "--overlay", scratch.path("chelsea.png"), "--align-corners", "--backend", backend,
    ])
    #expect(stretched.status == 0, "\(stretched.stderr)")
    let corner = try RGBImage.read(contentsOf: URL(fileURLWithPath: scratch.path("stretched.png")))
    let centroid = Self.hotCentroid(Self.heat(corner, photoPixels, alpha: 0.5), width: width)
    let expectedX = Double(Self.hot.column) * Double(width - 1) / Double(Self.columns - 1)
    #expect(abs(centroid.x - expectedX) < 4, "align-corners hot at \(centroid.x), expected \(expectedX)")
  }

  /// A damaged or impossible photo: exit 2, one line naming it, no output file, and with --json
  /// the error on stdout too.
  @Test func damagedPhotosAreRefusedCleanly() throws {
    let scratch = try Scratch()
    let (features, weight, _) = try Self.writeHead(scratch)
    let good = scratch.url.appendingPathComponent("good.png")
    try RGBImage(width: 6, height: 4, pixels: (0..<72).map { UInt8($0 * 3) }).writePNG(to: good)
    let png = [UInt8](try Data(contentsOf: good))
    var corrupt = png
    corrupt[png.count - 20] ^= 0xFF  // inside the image data: its CRC no longer matches
    var photos: [(String, [UInt8], String)] = [
      ("truncated.png", Array(png.prefix(png.count - 16)), "corrupt or truncated PNG"),
      ("corrupt.png", corrupt, "PNG"),
      ("huge.png", PNGBytes.withDimensions(png, 50_000, 50_000), "50000x50000, beyond"),
      ("notes.jpg", Array("just text".utf8), "not a PNG or JPEG file"),
    ]
    if try Self.writePhotos(scratch) {
      let jpeg = [UInt8](try Data(contentsOf: URL(fileURLWithPath: scratch.path("chelsea.jpg"))))
      photos.append(("truncated.jpg", Array(jpeg.prefix(jpeg.count / 2)), "Premature end of JPEG file"))
      // The frame header's height and width (after FF C0, length, precision): 60000×60000.
      var huge = jpeg
      if let sof = (0..<(jpeg.count - 1)).first(where: { jpeg[$0] == 0xFF && jpeg[$0 + 1] == 0xC0 }) {
        huge.replaceSubrange((sof + 5)..<(sof + 9), with: [0xEA, 0x60, 0xEA, 0x60])
        photos.append(("huge.jpg", huge, "60000x60000, beyond"))
      }
    }
    let before = try scratch.files() + photos.map(\.0)
    for (name, bytes, message) in photos {
      try Data(bytes).write(to: scratch.url.appendingPathComponent(name))
      let run = try ClpoolRun.run([
        "cam", features, "--weight", weight, "--class", "1", "-o", scratch.path("out.png"), "--overlay", scratch.path(name),
        "--json", "--backend", "cpu",
      ])
      #expect(run.status == 2, "\(name): \(run.stderr)")
      #expect(run.stderrLines.count == 1 && run.stderr.contains(name) && run.stderr.contains(message), "\(name): \(run.stderr)")
      #expect(run.stdout.hasPrefix("{\"error\":{\"exit\":2,\"message\":"), "\(name): \(run.stdout)")
    }
    #expect(try scratch.files() == before.sorted(), "a refused photo left an output behind")
    // Options that do not fit together.
    let usage: [([String], String)] = [
      (["--overlay", good.path, "-o", scratch.path("o.npy")], "--overlay applies to .png output only"),
      (["--alpha", "0.5", "-o", scratch.path("o.png")], "--alpha needs --overlay"),
      (["--overlay", good.path, "--alpha", "2", "-o", scratch.path("o.png")], "--alpha must be from 0 to 1"),
      (["--overlay", good.path, "--size", "9x9", "-o", scratch.path("o.png")], "exclude each other"),
      (["--overlay", scratch.path("missing.jpg"), "-o", scratch.path("o.png")], "missing.jpg: cannot read"),
    ]
    for (extra, message) in usage {
      let run = try ClpoolRun.run(["cam", features, "--weight", weight, "--class", "1", "--backend", "cpu"] + extra)
      #expect(run.status == 2 && run.stderrLines.count == 1 && run.stderr.contains(message), "\(extra): \(run.stderr)")
      #expect(!scratch.exists("o.png") && !scratch.exists("o.npy"))
    }
  }

  /// A batch gives one map per sample ([N,H,W] .npy); `--class top` picks each sample's own class.
  @Test func batchesMapEachSampleItsTopClass() throws {
    let scratch = try Scratch()
    // Two samples, two channels, 1×3: sample 0 is brighter in channel 0, sample 1 in channel 1.
    let x = try scratch.save(try Tensor(shape: [2, 2, 1, 3], scalars: [3, 0, 0, 0, 1, 0, 0, 1, 0, 0, 0, 5]), "x.npy")
    let w = try scratch.save(try Tensor(shape: [2, 2], scalars: [1, 0, 0, 1]), "w.npy")
    let run = try ClpoolRun.run(["cam", x, "--weight", w, "--class", "top", "-o", scratch.path("maps.npy"), "--json", "--backend", "cpu"])
    #expect(run.status == 0, "\(run.stderr)")
    #expect(run.stdout.contains("\"classes\":[0,1]"), "\(run.stdout)")
    let maps = try scratch.load("maps.npy")
    #expect(maps.shape == [2, 1, 3] && maps.scalars == [3, 0, 0, 0, 0, 5])
    let png = try ClpoolRun.run(["cam", x, "--weight", w, "--class", "top", "-o", scratch.path("maps.png"), "--backend", "cpu"])
    #expect(png.status == 2 && png.stderr.contains("a PNG shows one sample's map"), "\(png.stderr)")
  }
}
