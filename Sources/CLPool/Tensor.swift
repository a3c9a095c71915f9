import CLPoolCPU

/// The element types a tensor can be stored in. Arithmetic runs in float32 for float16 and
/// float32 storage, in float64 for float64 storage.
public enum ScalarType: String, CaseIterable, Sendable {
  case float16, float32, float64

  public var byteWidth: Int {
    switch self {
    case .float16: return 2
    case .float32: return 4
    case .float64: return 8
    }
  }

  /// The Swift type that stores this type's elements. This is the one place a run-time
  /// `ScalarType` becomes a static type: generic code opens it, as in
  /// `func run<S: StorageScalar>(_: S.Type)` called as `run(type.staticType)`.
  public var staticType: any StorageScalar.Type {
    switch self {
    case .float16: return Float16.self
    case .float32: return Float.self
    case .float64: return Double.self
    }
  }
}

/// A tensor element type: `Float16`, `Float` or `Double`, the only conformances the library
/// supports (backends read a tensor's storage as the `scalarType` it names).
public protocol StorageScalar: BinaryFloatingPoint, Sendable, BitwiseCopyable
where Self.RawSignificand: FixedWidthInteger {
  static var scalarType: ScalarType { get }
  /// A finite value no reduction of test data produces, written into outputs before a run when
  /// `BackendOptions.poisonOutputs` is on, so an unwritten element shows up.
  static var poison: Self { get }
}

extension Float16: StorageScalar {
  public static var scalarType: ScalarType { .float16 }
  public static var poison: Float16 { Float16(bitPattern: 0xFBDE) }  // −64448
}

extension Float: StorageScalar {
  public static var scalarType: ScalarType { .float32 }
  public static var poison: Float { Float(bitPattern: 0xFF7F_DEAD) }  // −3.39e38
}

extension Double: StorageScalar {
  public static var scalarType: ScalarType { .float64 }
  public static var poison: Double { Double(bitPattern: 0xFFEF_FFFF_DEAD_BEEF) }  // −1.8e308
}

/// A dense, row-major (C order) tensor held in host memory; `Tensor` is the float32 one.
///
/// The shape is validated on construction: every dimension is ≥ 0 and the element count fits in
/// `Int` and matches the storage.
public struct TypedTensor<Scalar: StorageScalar>: Equatable, Sendable {
  public let shape: [Int]
  public var scalars: [Scalar]

  /// - Throws: `CLPoolError.invalidShape` if a dimension is negative, the product overflows, or
  ///   `scalars.count` differs from the product of `shape`.
  public init(shape: [Int], scalars: [Scalar]) throws {
    let count = try Tensor.elementCount(of: shape)
    guard count == scalars.count else {
      throw CLPoolError.invalidShape(
        "shape \(Tensor.describe(shape)) holds \(count) elements but \(scalars.count) were given")
    }
    self.shape = shape
    self.scalars = scalars
  }

  public init(shape: [Int], repeating value: Scalar) throws {
    self.shape = shape
    self.scalars = [Scalar](repeating: value, count: try Tensor.elementCount(of: shape))
  }

  /// The same values in another storage type (rounded to nearest, ties to even, when narrowing).
  public init<Other: StorageScalar>(converting other: TypedTensor<Other>) {
    shape = other.shape
    scalars = converted(other.scalars, to: Scalar.self)
  }

  public var rank: Int { shape.count }
  public var count: Int { scalars.count }

  /// The same elements under another shape with the same element count.
  public func reshaped(_ newShape: [Int]) throws -> TypedTensor {
    try TypedTensor(shape: newShape, scalars: scalars)
  }

  /// The transpose of a rank-2 tensor.
  public func transposed() throws -> TypedTensor {
    guard rank == 2 else { throw CLPoolError.invalidShape("transpose takes a rank-2 tensor, got \(Tensor.describe(shape))") }
    let (rows, columns) = (shape[0], shape[1])
    var result = [Scalar](repeating: 0, count: count)
    for r in 0..<rows {
      for c in 0..<columns { result[c * rows + r] = scalars[r * columns + c] }
    }
    return try TypedTensor(shape: [columns, rows], scalars: result)
  }
}

/// The float32 tensor every operation takes; the others take any `TypedTensor`.
public typealias Tensor = TypedTensor<Float>

extension TypedTensor {
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

/// `values` as `T`: the same array (no copy) when S is T, else each element converted by the CPU
/// kernels (rounded to nearest, ties to even, once, when narrowing).
func converted<S: StorageScalar, T: StorageScalar>(_ values: [S], to _: T.Type) -> [T] {
  if S.self == T.self { return unsafeBitCast(values, to: [T].self) }
  return [T](unsafeUninitializedCapacity: values.count) { out, initialized in
    values.withUnsafeBytes {
      clpool_convert(S.scalarType.kernelCode, $0.baseAddress, 0, T.scalarType.kernelCode, out.baseAddress, values.count)
    }
    initialized = values.count
  }
}
