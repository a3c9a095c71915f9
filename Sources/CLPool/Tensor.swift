/// A dense, row-major (C order) float32 tensor held in host memory.
///
/// The shape is validated on construction: every dimension is ≥ 0 and the element count fits in
/// `Int` and matches the storage.
public struct Tensor: Equatable, Sendable {
  public let shape: [Int]
  public var scalars: [Float]

  /// - Throws: `CLPoolError.invalidShape` if a dimension is negative, the product overflows, or
  ///   `scalars.count` differs from the product of `shape`.
  public init(shape: [Int], scalars: [Float]) throws {
    let count = try Tensor.elementCount(of: shape)
    guard count == scalars.count else {
      throw CLPoolError.invalidShape(
        "shape \(Tensor.describe(shape)) holds \(count) elements but \(scalars.count) were given")
    }
    self.shape = shape
    self.scalars = scalars
  }

  public init(shape: [Int], repeating value: Float) throws {
    self.shape = shape
    self.scalars = [Float](repeating: value, count: try Tensor.elementCount(of: shape))
  }

  public var rank: Int { shape.count }
  public var count: Int { scalars.count }

  /// The same elements under another shape with the same element count.
  public func reshaped(_ newShape: [Int]) throws -> Tensor {
    try Tensor(shape: newShape, scalars: scalars)
  }

  /// The transpose of a rank-2 tensor.
  public func transposed() throws -> Tensor {
    guard rank == 2 else { throw CLPoolError.invalidShape("transpose takes a rank-2 tensor, got \(Tensor.describe(shape))") }
    let (rows, columns) = (shape[0], shape[1])
    var result = [Float](repeating: 0, count: count)
    for r in 0..<rows {
      for c in 0..<columns { result[c * rows + r] = scalars[r * columns + c] }
    }
    return try Tensor(shape: [columns, rows], scalars: result)
  }

  /// Product of the dimensions, refusing negative sizes and overflow.
  public static func elementCount(of shape: [Int]) throws -> Int {
    var count = 1
    for dimension in shape {
      guard dimension >= 0 else {
        throw CLPoolError.invalidShape("shape \(describe(shape)) has a negative dimension")
      }
      let (product, overflow) = count.multipliedReportingOverflow(by: dimension)
      guard !overflow else {
        throw CLPoolError.invalidShape("shape \(describe(shape)) has more elements than Int holds")
      }
      count = product
    }
    return count
  }

  /// `[2,3,4]` → `"2x3x4"`, the form the CLI and the error messages use.
  public static func describe(_ shape: [Int]) -> String {
    shape.isEmpty ? "scalar" : shape.map(String.init).joined(separator: "x")
  }
}
