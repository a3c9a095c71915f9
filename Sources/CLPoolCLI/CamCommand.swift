import ArgumentParser
import CLPool
import Foundation

struct CamCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "cam",
    abstract: "Class activation maps of feature maps, as .npy or a PNG heat map (optionally over a photo).",
    usage: "clpool cam <input> --weight <w> --class <k|top> -o <output> [<options>]",
    discussion: """
      cam[h,w] = sum over c of W[c,k]·x[c,h,w], the bias excluded. A .npy output holds the raw map: \
      [H,W] for one sample, [N,H,W] for a batch. A .png output (one sample) is the map normalised \
      to [0,1], bilinearly resized with the pixel-centre convention of OpenCV, PIL and torch \
      (align_corners=False) and coloured with viridis; with --overlay it takes the photo's size and \
      is blended over it.

      Examples:
        clpool cam x.npy --weight w.npy --class 207 -o cam.npy
        clpool cam x.npy --weight w.npy --class top -o cam.png --overlay photo.jpg
      """)

  @Argument(help: "Input .npy: [C,H,W], or [N,C,H,W] for a batch (channels-last: [H,W,C], [N,H,W,C]).")
  var input: String

  @OptionGroup var weightOptions: WeightOptionGroup

  // Unconditional, so that a negative class reaches the range check instead of reading as a flag.
  @Option(
    name: .customLong("class"), parsing: .unconditional,
    help: ArgumentHelp(
      "The class index k, or top: each sample's highest-scoring class (logits of the head, ties to the lower index).",
      valueName: "k|top"))
  var classChoice: ClassChoice

  @Option(help: LayoutArgument.help)
  var layout: LayoutArgument = .channelsFirst

  @OptionGroup var outputOptions: OutputOptionGroup

  @Option(help: "PNG size WxH (default: the map scaled so its longer side is 256 pixels).")
  var size: String?

  @Option(help: "A PNG or JPEG photo to blend the heat map over; the PNG gets the photo's size.")
  var overlay: String?

  @Option(help: "With --overlay: the heat map's weight, from 0 (the photo alone) to 1 (the map alone). (default: 0.5)")
  var alpha: Double?

  @Flag(help: "Resize corner to corner (align_corners=True: the map's corner cells on the corner pixels) instead of by pixel centres.")
  var alignCorners = false

  @OptionGroup var backendOptions: BackendOptionGroup

  private var isPNG: Bool { outputOptions.output.lowercased().hasSuffix(".png") }

  func validate() throws {
    try checkOutputs([("-o", outputOptions.output)], replaceNoneOf: [input] + weightOptions.paths + (overlay.map { [$0] } ?? []))
    if let rank = layout.rank, rank != 4 {
      let axes = rank == 3 ? "one spatial axis" : "three spatial axes"
      throw ValidationError("--layout \(layout.name) has \(axes); a class activation map takes two (nchw, nhwc, channels-first or channels-last)")
    }
    guard isPNG || outputOptions.output.lowercased().hasSuffix(".npy") else {
      throw ValidationError("--output must end in .png or .npy, got '\(outputOptions.output)'")
    }
    for (option, given) in [("--size", size != nil), ("--overlay", overlay != nil), ("--align-corners", alignCorners)] where given && !isPNG {
      throw ValidationError("\(option) applies to .png output only")
    }
    if size != nil {
      guard overlay == nil else { throw ValidationError("--size and --overlay exclude each other: an overlay has the photo's size") }
      _ = try parsedSize()
    }
    if let alpha {
      guard overlay != nil else { throw ValidationError("--alpha needs --overlay") }
      guard alpha.isFinite, (0...1).contains(alpha) else { throw ValidationError("--alpha must be from 0 to 1, got \(alpha)") }
    }
  }

  private func parsedSize() throws -> (width: Int, height: Int)? {
    guard let size else { return nil }
    let parts = size.lowercased().split(separator: "x")
    let limit = RGBImage.maximumSide
    guard parts.count == 2, let width = Int(parts[0]), let height = Int(parts[1]), width > 0, height > 0,
      width <= limit, height <= limit
    else { throw ValidationError("--size must be WxH with 1 <= W, H <= \(limit), got '\(size)'") }
    return (width, height)
  }

  func run() throws {
    let features = try readNPY(input, as: Float.self)
    let weights = try readNPY(weightOptions.weight, as: Float.self)
    let biases = try weightOptions.bias.map { try readNPY($0, as: Float.self) }
    // The photo is read before any computing, so a bad one fails fast.
    let photo = try overlay.map { try RGBImage.read(atPath: $0) }
    let backend = try backendOptions.makeBackend(requiring: .float32)
    let batch = features.rank == 4 ? features.shape[0] : 1
    if isPNG && batch != 1 {
      throw CLPoolError.invalidInput("\(input): a PNG shows one sample's map, got a batch of \(batch); write .npy for a batch")
    }
    let ((map, classes), seconds) = try timed { () -> (Tensor, [Int]) in
      try about([input] + weightOptions.paths) {
        let classes = try classIndices(features, weights, biases, batch: batch, backend: backend)
        let map =
          features.rank == 4 && batch > 1
          ? try backend.classActivationMaps(
            features, layout: layout.layout, weight: weights, weightLayout: weightOptions.weightLayout, classIndices: classes)
          : try backend.classActivationMap(
            features, layout: layout.layout, weight: weights, weightLayout: weightOptions.weightLayout, classIndex: classes[0])
        return (map, classes)
      }
    }
    let output = outputOptions.output
    if isPNG {
      let resampling: HeatMap.Resampling = alignCorners ? .alignCorners : .pixelCenters
      let picture: RGBImage
      if let photo {
        picture = try HeatMap.overlay(map, on: photo, alpha: alpha ?? 0.5, resampling: resampling)
      } else {
        let (height, width) = (map.shape[0], map.shape[1])
        let scale = 256.0 / Double(max(height, width))
        let target =
          try parsedSize() ?? (max(1, Int((Double(width) * scale).rounded())), max(1, Int((Double(height) * scale).rounded())))
        picture = try HeatMap.render(map, width: target.width, height: target.height, resampling: resampling)
      }
      try picture.writePNG(toPath: output)
    } else {
      try writeNPY(map, output)
    }
    try RunSummary("cam", inputs: [features.shape], output: map.shape, path: output, backend: backend, seconds: seconds, classes: classes)
      .print(json: outputOptions.json)
  }

  /// The class of each sample: the one given, or with `top` the highest logit of the head
  /// (pooling, then x·W + b).
  private func classIndices(_ features: Tensor, _ weights: Tensor, _ biases: Tensor?, batch: Int, backend: any Backend) throws
    -> [Int]
  {
    switch classChoice {
    case .index(let k):
      return Array(repeating: k, count: batch)
    case .top:
      let samples = features.rank == 4 ? features : try features.reshaped([1] + features.shape)
      let logits = try backend.head(
        samples, layout: layout.layout, weight: weights, bias: biases, weightLayout: weightOptions.weightLayout, activation: .none)
      let classes = logits.shape[1]
      return (0..<batch).map { n in Ranking.top(1, of: logits.scalars[(n * classes)..<((n + 1) * classes)])[0].index }
    }
  }
}

/// `--class`: an index, or `top`.
enum ClassChoice: ExpressibleByArgument, Equatable {
  case index(Int)
  case top

  init?(argument: String) {
    if argument.lowercased() == "top" {
      self = .top
    } else if let index = Int(argument) {
      self = .index(index)
    } else {
      return nil
    }
  }
}
