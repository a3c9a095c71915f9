import ArgumentParser
import CLPool
import Foundation

struct CamCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "cam",
    abstract: "The class activation map of one sample's feature maps, as .npy or a PNG heat map.")

  @Argument(help: "Input .npy: [C,H,W] or [1,C,H,W] (channels-last: [H,W,C] or [1,H,W,C]).")
  var input: String

  @Option(help: "The head's dense weight .npy: [C,M] (in-out) or [M,C] (out-in).")
  var weight: String

  @Option(help: "in-out (Keras, [C,M]) or out-in (PyTorch, [M,C]).")
  var weightLayout: WeightLayout = .inOut

  // Unconditional, so that a negative class reaches the range check instead of reading as a flag.
  @Option(name: .customLong("class"), parsing: .unconditional, help: "The class index k.")
  var classIndex: Int

  @Option(help: "channels-first or channels-last.")
  var layout: LayoutArgument = .channelsFirst

  @OptionGroup var outputOptions: OutputOptionGroup

  @Option(help: "PNG size WxH (default: the map scaled so its longer side is 256 pixels).")
  var size: String?

  @OptionGroup var backendOptions: BackendOptionGroup

  private var isPNG: Bool { outputOptions.output.lowercased().hasSuffix(".png") }

  func validate() throws {
    guard isPNG || outputOptions.output.lowercased().hasSuffix(".npy") else {
      throw ValidationError("--output must end in .png or .npy, got '\(outputOptions.output)'")
    }
    if size != nil {
      guard isPNG else { throw ValidationError("--size applies to .png output only") }
      _ = try parsedSize()
    }
  }

  private func parsedSize() throws -> (width: Int, height: Int)? {
    guard let size else { return nil }
    let parts = size.lowercased().split(separator: "x")
    guard parts.count == 2, let width = Int(parts[0]), let height = Int(parts[1]), width > 0, height > 0,
      width <= 16_384, height <= 16_384
    else { throw ValidationError("--size must be WxH with 1 <= W, H <= 16384, got '\(size)'") }
    return (width, height)
  }

  func run() throws {
    let features = try readNPY(input, as: Float.self)
    let weights = try readNPY(weight, as: Float.self)
    let backend = try backendOptions.makeBackend(requiring: .float32)
    let (map, seconds) = try timed {
      try about([input, weight]) {
        try backend.classActivationMap(
          features, layout: layout.layout, weight: weights, weightLayout: weightLayout, classIndex: classIndex)
      }
    }
    let output = outputOptions.output
    if isPNG {
      let (height, width) = (map.shape[0], map.shape[1])
      let scale = 256.0 / Double(max(height, width))
      let target = try parsedSize() ?? (max(1, Int((Double(width) * scale).rounded())), max(1, Int((Double(height) * scale).rounded())))
      let pixels = try HeatMap.render(map, width: target.width, height: target.height)
      try HeatMap.writePNG(rgb: pixels, width: target.width, height: target.height, to: URL(fileURLWithPath: output))
    } else {
      try writeNPY(map, output)
    }
    try RunSummary("cam", inputs: [features.shape], output: map.shape, path: output, backend: backend, seconds: seconds)
      .print(json: outputOptions.json)
  }
}
