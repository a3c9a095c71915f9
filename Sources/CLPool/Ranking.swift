import Foundation

/// One entry of a sample's class ranking.
public struct RankedClass: Equatable, Sendable {
  /// The class index, 0..<M.
  public let index: Int
  /// softmax(logits)[index], computed in float64.
  public let probability: Double

  public init(index: Int, probability: Double) {
    self.index = index
    self.probability = probability
  }
}

/// The top classes of a classifier's output row, as `torch.topk(softmax(logits), k)` gives them.
public enum Ranking {
  /// The `k` classes with the highest logits, best first; equal logits rank the lower class index
  /// first, and NaN logits rank last. Probabilities are the softmax of all the logits in float64
  /// (exp(v − max) / Σ exp(v − max)), so they do not depend on the storage type of the logits
  /// beyond the logits' own rounding.
  /// - Precondition: 1 ≤ k ≤ logits.count.
  public static func top<Logits: Collection>(_ k: Int, of logits: Logits) -> [RankedClass]
  where Logits.Element: BinaryFloatingPoint {
    precondition(k >= 1 && k <= logits.count, "k must be from 1 to the number of classes")
    let values = logits.map { Double($0) }
    // An insertion into the k best so far: O(M·k), and k is small next to M.
    var best: [Int] = []
    best.reserveCapacity(k + 1)
    func ranksBefore(_ a: Int, _ b: Int) -> Bool {
      let (x, y) = (values[a], values[b])
      if x.isNaN || y.isNaN { return !x.isNaN && y.isNaN || (x.isNaN == y.isNaN && a < b) }
      return x > y || (x == y && a < b)
    }
    for index in values.indices {
      guard best.count < k || ranksBefore(index, best[best.count - 1]) else { continue }
      let position = best.firstIndex { ranksBefore(index, $0) } ?? best.count
      best.insert(index, at: position)
      if best.count > k { best.removeLast() }
    }
    let maximum = values.filter { !$0.isNaN }.max() ?? .nan
    let total = values.reduce(0) { $0 + exp($1 - maximum) }
    return best.map { RankedClass(index: $0, probability: exp(values[$0] - maximum) / total) }
  }
}
