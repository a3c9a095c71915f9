import ArgumentParser
import CLPool
import Foundation

// What every computing command does around its one library call: resolve the backend, read the
// inputs, time the call, write the outputs, report.

extension BackendOptionGroup {
  func selection() throws -> BackendSelection {
    try BackendSelection.resolve(backend: backend, device: device)
  }

  /// The backend for a job of storage type `type`.
  func makeBackend(requiring type: ScalarType) throws -> any Backend {
    try selection().makeBackend(requiring: type)
  }
}

func readNPY<S: StorageScalar>(_ path: String, as type: S.Type) throws -> TypedTensor<S> {
  try NPY.readTensor(atPath: path, as: type)
}

func writeNPY<S: StorageScalar>(_ tensor: TypedTensor<S>, _ path: String) throws {
  try NPY.write(Tensor(converting: tensor), toPath: path)
}

/// Throws when an output names a file the command reads (also through a link): written whole and
/// renamed over its target, the output would replace that input, so it is refused as `cp a a` is.
func checkOutputs(_ outputs: [(option: String, path: String?)], replaceNoneOf inputs: [String]) throws {
  for case let (option, output?) in outputs {
    if let input = inputs.first(where: { OutputFile.sameFile($0, output) }) {
      throw ValidationError("\(option) \(output) names the input \(input): clpool never replaces a file it reads")
    }
  }
}

/// Runs `body`; a shape error it throws is prefixed with the input file it concerns.
func about<Result>(_ paths: [String], _ body: () throws -> Result) throws -> Result {
  do {
    return try body()
  } catch CLPoolError.invalidShape(let message) {
    throw CLPoolError.invalidInput("\(paths.joined(separator: ", ")): \(message)")
  }
}

/// One line of JSON describing a finished command.
struct RunSummary: Encodable {
  let command: String
  /// The input's shape; several inputs (a ragged `pool`) give `inputShapes` instead.
  let inputShape: [Int]?
  let inputShapes: [[Int]]?
  let outputShape: [Int]
  let output: String
  /// The backend that ran the call (for `auto` on a GPU, the one its dispatch rule picked).
  let backend: String
  let device: String
  let seconds: Double
  /// The MPI ranks that computed it; nil for one process.
  let ranks: Int?
  /// cam: the class each sample's map is of.
  let classes: [Int]?
  /// head --top: each sample's best classes, best first.
  let top: [[TopClass]]?

  init(
    _ command: String, inputs: [[Int]], output: [Int], path: String, backend: any Backend, seconds: Double,
    ranks: Int? = nil, classes: [Int]? = nil, top: [[TopClass]]? = nil
  ) {
    self.command = command
    (inputShape, inputShapes) = inputs.count == 1 ? (inputs[0], nil) : (nil, inputs)
    outputShape = output
    self.output = path
    self.backend = backend.kind.rawValue
    device = backend.deviceName
    self.seconds = seconds
    self.ranks = ranks
    self.classes = classes
    self.top = top
  }

  func print(json: Bool) throws {
    guard json else { return }
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    Swift.print(String(decoding: try encoder.encode(self), as: UTF8.self))
  }
}

/// Runs `body` and returns its result with the seconds it took.
func timed<Result>(_ body: () throws -> Result) rethrows -> (Result, Double) {
  let start = DispatchTime.now().uptimeNanoseconds
  let result = try body()
  return (result, Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9)
}

/// Writes one JSON document to stdout.
func printJSON<Value: Encodable>(_ value: Value) throws {
  let encoder = JSONEncoder()
  encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
  encoder.nonConformingFloatEncodingStrategy = .convertToString(
    positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
  print(String(decoding: try encoder.encode(value), as: UTF8.self))
}
