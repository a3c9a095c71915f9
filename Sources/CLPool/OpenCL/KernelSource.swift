/// The OpenCL C sources from Kernels/, embedded into the library at build time (Package.swift).
/// This is the only file that touches the generated `PackageResources` accessor.
enum KernelSource {
  static let pool = String(decoding: PackageResources.pool_cl, as: UTF8.self)
  static let dense = String(decoding: PackageResources.dense_cl, as: UTF8.self)
}
