/// The OpenCL C sources from Kernels/, embedded into the library at build time (Package.swift).
/// This is the only file that touches the generated `PackageResources` accessor.
enum KernelSource {
  /// One program holds every kernel: head.cl builds on the helpers of pool.cl and dense.cl, and
  /// storage.h, first, defines the storage type every file uses (so their #include lines are
  /// skipped: a driver compiling a string cannot open files).
  static let program = [
    PackageResources.storage_h, PackageResources.pool_cl, PackageResources.dense_cl, PackageResources.head_cl,
  ]
  .map { String(decoding: $0, as: UTF8.self) }.joined(separator: "\n")
}
