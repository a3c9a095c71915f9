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
