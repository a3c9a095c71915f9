import ArgumentParser
import CLPool
import Foundation

/// `--top K [--labels FILE]` of `head`: each sample's K most probable classes, on stdout beside
/// the .npy output.
struct TopClassesOptionGroup: ParsableArguments {
  @Option(help: "Also print each sample's K most probable classes (softmax of the head's logits, in float64), as a table or in the --json summary.")
  var top: Int?

  @Option(help: "With --top: the class names, one per line, as many lines as the weight has classes.")
  var labels: String?

  func validate() throws {
    if labels != nil && top == nil { throw ValidationError("--labels needs --top") }
    if let top, top < 1 { throw ValidationError("--top must be at least 1, got \(top)") }
  }

  /// The class names, checked against the head's `classes`; nil without --labels.
  func readLabels(classes: Int) throws -> [String]? {
    if let top, top > classes {
      throw CLPoolError.invalidArgument("--top \(top) asks for more classes than the weight's \(classes)")
    }
    guard let labels else { return nil }
    let bytes = try InputFile.contents(of: labels, limit: 1 << 26)
    // Lines split on the byte \n (a Character would hold \r\n whole), each without a final \r.
    var lines = bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
      .map { String(decoding: $0.last == UInt8(ascii: "\r") ? $0.dropLast() : $0, as: UTF8.self) }
    if lines.last == "" { lines.removeLast() }  // the newline that ends the last line
    guard lines.count == classes else {
      throw CLPoolError.invalidInput(
        "\(labels): has \(lines.count) labels (one per line) but the weight has \(classes) classes")
    }
    return lines
  }
}

/// One row of a sample's ranking, as the table and the JSON summary show it.
struct TopClass: Encodable {
  let `class`: Int
  let label: String?
  let probability: Double
}

/// Collects every sample's ranking as the chunks of logits come.
struct TopClassesCollector {
  let k: Int
  let labels: [String]?
  private(set) var samples: [[TopClass]] = []

  init(k: Int, labels: [String]?) {
    self.k = k
    self.labels = labels
  }

  /// Ranks each row of `logits` ([rows, classes] in storage type S).
  mutating func add<S: StorageScalar>(logits: UnsafeRawBufferPointer, as _: S.Type, rows: Int, classes: Int) {
    let values = logits.bindMemory(to: S.self)
    for row in 0..<rows {
      let ranked = Ranking.top(k, of: UnsafeBufferPointer(rebasing: values[(row * classes)..<((row + 1) * classes)]))
      samples.append(ranked.map { TopClass(class: $0.index, label: labels?[$0.index], probability: $0.probability) })
    }
  }

  /// The table on stdout: one line per sample and rank.
  func printTable() {
    let header = ["SAMPLE", "RANK", "CLASS", "PROBABILITY"] + (labels == nil ? [] : ["LABEL"])
    var lines = [header]
    for (sample, ranking) in samples.enumerated() {
      for (rank, entry) in ranking.enumerated() {
        lines.append(
          ["\(sample)", "\(rank + 1)", "\(entry.class)", String(format: "%.6f", entry.probability)]
            + (entry.label.map { [CLPoolError.printable($0)] } ?? []))
      }
    }
    let widths = header.indices.map { column in lines.map { column < $0.count ? $0[column].count : 0 }.max() ?? 0 }
    for line in lines {
      let cells = line.enumerated().map { column, cell in
        column == line.count - 1 ? cell : cell.padding(toLength: widths[column], withPad: " ", startingAt: 0)
      }
      print(cells.joined(separator: "  "))
    }
  }
}
