#if canImport(Accelerate)
  import Accelerate
#else
  import CBLAS
#endif
import Foundation

/// A type the CPU backend computes in: float32 (for float16 and float32 storage) or float64.
/// Its SIMD vectors drive the reductions (with positions in its mask's integer type, so a
/// comparison's mask selects them); its BLAS routines the products. (Codable only because the
/// compiler asks it of every protocol refining both BinaryFloatingPoint and SIMDScalar.)
protocol NativeScalar: StorageScalar, SIMDScalar, Codable where SIMDMaskScalar.SIMDMaskScalar == SIMDMaskScalar {
  /// Lane-wise a > b (false where either is NaN). A requirement, so that generic code reaches the
  /// standard library's concrete comparison: its generic one compiles to a per-lane loop (30x
  /// slower in the max reductions).
  static func lanesGreater(_ a: SIMD8<Self>, _ b: SIMD8<Self>) -> SIMDMask<SIMD8<SIMDMaskScalar>>
  static func exponential(_ x: Self) -> Self
  /// Row-major C = A · op(B) + beta · C, A [m, k].
  static func gemm(
    transposeB: Bool, m: Int32, n: Int32, k: Int32, a: UnsafePointer<Self>, lda: Int32, b: UnsafePointer<Self>,
    ldb: Int32, beta: Self, c: UnsafeMutablePointer<Self>, ldc: Int32)
  /// Row-major y = op(A) · x + beta · y, A [rows, columns].
  static func gemv(
    transpose: Bool, rows: Int32, columns: Int32, a: UnsafePointer<Self>, x: UnsafePointer<Self>, beta: Self,
    y: UnsafeMutablePointer<Self>)
}

extension Float: NativeScalar {
  @inline(__always) static func lanesGreater(_ a: SIMD8<Float>, _ b: SIMD8<Float>) -> SIMDMask<SIMD8<Int32>> { a .> b }
  static func exponential(_ x: Float) -> Float { Foundation.exp(x) }
  static func gemm(
    transposeB: Bool, m: Int32, n: Int32, k: Int32, a: UnsafePointer<Float>, lda: Int32, b: UnsafePointer<Float>,
    ldb: Int32, beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int32
  ) {
    cblas_sgemm(
      CblasRowMajor, CblasNoTrans, transposeB ? CblasTrans : CblasNoTrans, m, n, k, 1, a, lda, b, ldb, beta, c, ldc)
  }
  static func gemv(
    transpose: Bool, rows: Int32, columns: Int32, a: UnsafePointer<Float>, x: UnsafePointer<Float>, beta: Float,
    y: UnsafeMutablePointer<Float>
  ) {
    cblas_sgemv(CblasRowMajor, transpose ? CblasTrans : CblasNoTrans, rows, columns, 1, a, columns, x, 1, beta, y, 1)
  }
}

extension Double: NativeScalar {
  @inline(__always) static func lanesGreater(_ a: SIMD8<Double>, _ b: SIMD8<Double>) -> SIMDMask<SIMD8<Int64>> { a .> b }
  static func exponential(_ x: Double) -> Double { Foundation.exp(x) }
  static func gemm(
    transposeB: Bool, m: Int32, n: Int32, k: Int32, a: UnsafePointer<Double>, lda: Int32, b: UnsafePointer<Double>,
    ldb: Int32, beta: Double, c: UnsafeMutablePointer<Double>, ldc: Int32
  ) {
    cblas_dgemm(
      CblasRowMajor, CblasNoTrans, transposeB ? CblasTrans : CblasNoTrans, m, n, k, 1, a, lda, b, ldb, beta, c, ldc)
  }
  static func gemv(
    transpose: Bool, rows: Int32, columns: Int32, a: UnsafePointer<Double>, x: UnsafePointer<Double>, beta: Double,
    y: UnsafeMutablePointer<Double>
  ) {
    cblas_dgemv(CblasRowMajor, transpose ? CblasTrans : CblasNoTrans, rows, columns, 1, a, columns, x, 1, beta, y, 1)
  }
}

/// An element type the CPU reductions read: float32 and float64 as they are, float16 widened to
/// float32 as it is loaded, so half inputs are read once at 2 bytes an element with no separate
/// conversion pass.
protocol PooledElement {
  associatedtype Arithmetic: NativeScalar
  /// Elements offset ..< offset + 8.
  static func lanes(_ p: UnsafePointer<Self>, _ offset: Int) -> SIMD8<Arithmetic>
  static func value(_ p: UnsafePointer<Self>, _ offset: Int) -> Arithmetic
}

extension Float: PooledElement {
  @inline(__always) static func lanes(_ p: UnsafePointer<Float>, _ offset: Int) -> SIMD8<Float> {
    UnsafeRawPointer(p + offset).loadUnaligned(as: SIMD8<Float>.self)
  }
  @inline(__always) static func value(_ p: UnsafePointer<Float>, _ offset: Int) -> Float { p[offset] }
}

extension Double: PooledElement {
  @inline(__always) static func lanes(_ p: UnsafePointer<Double>, _ offset: Int) -> SIMD8<Double> {
    UnsafeRawPointer(p + offset).loadUnaligned(as: SIMD8<Double>.self)
  }
  @inline(__always) static func value(_ p: UnsafePointer<Double>, _ offset: Int) -> Double { p[offset] }
}

extension Float16: PooledElement {
  /// Eight scalar conversions gathered into a vector: the compiler vectorises these, where its
  /// SIMD8<UInt32> arithmetic measured 20x slower.
  @inline(__always) static func lanes(_ p: UnsafePointer<Float16>, _ offset: Int) -> SIMD8<Float> {
    let bits = UnsafeRawPointer(p + offset).assumingMemoryBound(to: UInt16.self)
    return SIMD8<Float>(
      HalfConversion.float(fromBits: bits[0]), HalfConversion.float(fromBits: bits[1]),
      HalfConversion.float(fromBits: bits[2]), HalfConversion.float(fromBits: bits[3]),
      HalfConversion.float(fromBits: bits[4]), HalfConversion.float(fromBits: bits[5]),
      HalfConversion.float(fromBits: bits[6]), HalfConversion.float(fromBits: bits[7]))
  }
  @inline(__always) static func value(_ p: UnsafePointer<Float16>, _ offset: Int) -> Float {
    HalfConversion.float(fromBits: p[offset].bitPattern)
  }
}
