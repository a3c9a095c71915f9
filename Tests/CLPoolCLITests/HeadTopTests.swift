import CLPool
import Foundation
import TestSupport
import Testing

/// `clpool head --top K [--labels FILE]`: each sample's best classes with softmax probabilities
/// in float64, ties to the lower class index, as a table or inside the --json summary.
@Suite struct HeadTopTests {
  typealias Scratch = ComputeCommandTests.Scratch

  /// 1×1 feature maps and an identity weight, so the logits are the features themselves.
  static let logits: [[Float]] = [[1, 3, 3, 0], [-1, 0, 2, 2], [0, 0, 0, 7]]
  static let labels = ["cat", "dog", "golden retriever", "fish"]

  static func write(_ scratch: Scratch) throws -> (features: String, weight: String) {
    let classes = logits[0].count
    let identity = (0..<(classes * classes)).map { Float($0 % (classes + 1) == 0 ? 1 : 0) }
    return (
      try scratch.save(try Tensor(shape: [logits.count, classes, 1, 1], scalars: logits.flatMap { $0 }), "x.npy"),
      try scratch.save(try Tensor(shape: [classes, classes], scalars: identity), "w.npy")
    )
  }

  /// float64 softmax of one row.
  static func probabilities(_ row: [Float]) -> [Double] {
    let top = Double(row.max()!)
    let total = row.reduce(0.0) { $0 + exp(Double($1) - top) }
    return row.map { exp(Double($0) - top) / total }
  }

  struct Summary: Decodable {
    struct Entry: Decodable, Equatable {
      let `class`: Int
      let label: String?
      let probability: Double
    }
    let top: [[Entry]]
    let outputShape: [Int]
  }

  @Test(arguments: ComputeCommandTests.backends)
  func topClassesPrintAsATableAndAsJSON(_ backend: String) throws {
    let scratch = try Scratch()
    let (x, w) = try Self.write(scratch)
    try (Self.labels.joined(separator: "\n") + "\n").write(toFile: scratch.path("labels.txt"), atomically: true, encoding: .utf8)
    let expectedClasses = [[1, 2], [2, 3], [3, 0]]  // ties go to the lower index

    let table = try ClpoolRun.run(["head", x, "--weight", w, "-o", scratch.path("y.npy"), "--top", "2", "--labels", scratch.path("labels.txt"), "--backend", backend])
    #expect(table.status == 0, "\(table.stderr)")
    let lines = table.stdout.split(separator: "\n").map(String.init)
    #expect(lines.first?.split(separator: " ", omittingEmptySubsequences: true) == ["SAMPLE", "RANK", "CLASS", "PROBABILITY", "LABEL"])
    #expect(lines.count == 1 + 3 * 2, "\(table.stdout)")
    for (sample, classes) in expectedClasses.enumerated() {
      for (rank, k) in classes.enumerated() {
        let cells = lines[1 + sample * 2 + rank].split(separator: " ", maxSplits: 4, omittingEmptySubsequences: true).map {
          $0.trimmingCharacters(in: .whitespaces)
        }
        #expect(cells[0...2] == ["\(sample)", "\(rank + 1)", "\(k)"], "\(cells)")
        #expect(cells[3] == String(format: "%.6f", Self.probabilities(Self.logits[sample])[k]))
        #expect(cells[4] == Self.labels[k])  // a label with spaces stays whole
      }
    }
    #expect(try scratch.load("y.npy").scalars == Self.logits.flatMap { $0 }, "the .npy output is written beside the table")

    // JSON: one document, the ranking inside the summary; --activation softmax ranks the same
    // logits, so the probabilities are the same bits.
    for activation in ["none", "softmax"] {
      let json = try ClpoolRun.run(["head", x, "--weight", w, "-o", scratch.path("p.npy"), "--top", "2", "--json", "--activation", activation, "--backend", backend])
      #expect(json.status == 0, "\(json.stderr)")
      let summary = try JSONDecoder().decode(Summary.self, from: Data(json.stdout.utf8))
      #expect(summary.top.map { $0.map(\.class) } == expectedClasses)
      for (sample, ranking) in summary.top.enumerated() {
        #expect(ranking.map(\.probability) == ranking.map { Self.probabilities(Self.logits[sample])[$0.class] }, "\(activation)")
        #expect(ranking.allSatisfy { $0.label == nil })
      }
    }
  }

  @Test func wrongLabelsAndImpossibleRequestsAreOneLineErrors() throws {
    let scratch = try Scratch()
    let (x, w) = try Self.write(scratch)
    try "cat\ndog\nbird\n".write(toFile: scratch.path("three.txt"), atomically: true, encoding: .utf8)
    let cases: [([String], String)] = [
      (["--top", "2", "--labels", scratch.path("three.txt")], "three.txt: has 3 labels (one per line) but the weight has 4 classes"),
      (["--top", "2", "--labels", scratch.path("missing.txt")], "missing.txt: cannot read"),
      (["--labels", scratch.path("three.txt")], "--labels needs --top"),
      (["--top", "5"], "--top 5 asks for more classes than the weight's 4"),
      (["--top", "0"], "--top must be at least 1"),
      (["--top", "1", "--activation", "sigmoid"], "needs --activation none or softmax"),
    ]
    for (extra, message) in cases {
      let run = try ClpoolRun.run(["head", x, "--weight", w, "-o", scratch.path("y.npy"), "--backend", "cpu"] + extra)
      #expect(run.status == 2 && run.stderrLines.count == 1 && run.stderr.contains(message), "\(extra): \(run.stderr)")
      #expect(!scratch.exists("y.npy"), "\(extra) left an output")
    }
  }
}
