// swift-tools-version:6.0
//
// clpool — global average / max pooling and the dense layer after them, on OpenCL devices and a
// native CPU backend, behind one `Backend` protocol.

import PackageDescription

// MARK: - Public API

let products: [Product] = [
  .library(name: "CLPool", targets: ["CLPool"]),
  .executable(name: "clpool", targets: ["CLPoolCLI"]),
  // The C ABI (Sources/CLPoolC/include/clpool.h) as libclpool-c.so, which the Python module loads.
  .library(name: "clpool-c", type: .dynamic, targets: ["CLPoolC"]),
]

// MARK: - Implementation details

let systemLibraries: [Target] = [
  // The ocl-icd loader and the Khronos headers; `shim.h` pins the API to OpenCL 1.2.
  .systemLibrary(
    name: "COpenCL",
    pkgConfig: "OpenCL",
    providers: [.apt(["ocl-icd-opencl-dev", "opencl-headers"])]
  ),
  // libpng for `clpool cam`'s heat-map images and PNG photos.
  .systemLibrary(
    name: "CPNG",
    pkgConfig: "libpng",
    providers: [.apt(["libpng-dev"])]
  ),
  // libjpeg (libjpeg-turbo) for JPEG photos under `clpool cam --overlay`.
  .systemLibrary(
    name: "CJPEG",
    pkgConfig: "libjpeg",
    providers: [.apt(["libjpeg-dev"])]
  ),
]

let libraryTargets: [Target] = [
  // The CPU backend's inner loops in C, compiled per instruction set with target attributes and
  // picked by cpuid at run time (no compiler flags, so dependents build as usual).
  .target(
    name: "CLPoolCPU",
    exclude: ["kernels.inc", "kernels_type.inc", "pooling_planes.inc", "pooling_channels.inc", "product.inc"]
  ),
  // JPEG decoding in C: libjpeg reports errors through a callback that must not return (setjmp).
  .target(name: "CLPoolJPEG", dependencies: ["CJPEG"]),
  .target(
    name: "CLPool",
    dependencies: [
      .target(name: "CLPoolCPU"),
      .target(name: "COpenCL"),
      .target(name: "CPNG"),
      .target(name: "CLPoolJPEG"),
    ],
    // The kernels live at the top level (one source of truth, lint-able as OpenCL C) and are
    // embedded into the library so an installed `clpool` needs no files beside it.
    resources: [
      .embedInCode("../../Kernels/storage.h"),
      .embedInCode("../../Kernels/pool.cl"),
      .embedInCode("../../Kernels/dense.cl"),
      .embedInCode("../../Kernels/head.cl"),
    ]
  ),
  // Swift functions exported with @c behind a hand-written header; the header is for C callers
  // (and the tests), not a module of this package.
  .target(name: "CLPoolC", dependencies: ["CLPool"], exclude: ["include"]),
  .executableTarget(
    name: "CLPoolCLI",
    dependencies: [
      "CLPool",
      .product(name: "ArgumentParser", package: "swift-argument-parser"),
    ]
  ),
]

// MARK: - Tests

let testTargets: [Target] = [
  // What both test targets share (as swift-numerics' _TestSupport): .npy bytes, the CI flag, the seed.
  .target(name: "TestSupport", dependencies: ["CLPool"], path: "Tests/TestSupport"),
  .testTarget(name: "CLPoolTests", dependencies: ["CLPool", "TestSupport"]),
  .testTarget(name: "CLPoolCLITests", dependencies: ["CLPool", "TestSupport"]),
]

let package = Package(
  name: "clpool",
  products: products,
  dependencies: [
    .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    // `swift package generate-documentation --target CLPool` (the DocC catalog, `make docs`).
    .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.5.0"),
  ],
  targets: systemLibraries + libraryTargets + testTargets
)
