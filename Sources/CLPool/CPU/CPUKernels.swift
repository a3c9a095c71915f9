import CLPoolCPU

/// The C kernels (Sources/CLPoolCPU) see a storage type as its code; their arithmetic type is
/// float for float16 and float32 storage, double for float64.
extension ScalarType {
  var kernelCode: Int32 {
    switch self {
    case .float16: return Int32(CLPOOL_F16)
    case .float32: return Int32(CLPOOL_F32)
    case .float64: return Int32(CLPOOL_F64)
    }
  }

  /// Bytes of the arithmetic type.
  var accumulatorWidth: Int { self == .float64 ? 8 : 4 }

  /// The arithmetic type as a storage type (float16 computes in float32).
  var accumulator: ScalarType { self == .float64 ? .float64 : .float32 }
}

/// The instruction set the CPU kernels run, chosen once from cpuid (`CLPOOL_CPU_ISA=baseline`
/// forces the SSE2 build, `avx2` the AVX2 one): "AVX-512 (F, VL, BW, DQ) + AVX2, FMA, F16C",
/// "AVX2+FMA+F16C" or "baseline x86-64 (SSE2)".
public enum CPUInstructions {
  public static var name: String { String(cString: clpool_cpu_isa_name()) }
}
