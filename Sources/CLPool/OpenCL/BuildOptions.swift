/// The OpenCL compiler options a caller may add to clpool's own (`CLPOOL_BUILD_OPTIONS`,
/// `OpenCLBackend(buildOptions:)`): the kernels' tunables, whose values the kernels check
/// themselves with `#error` (Kernels/pool.cl, dense.cl), and switching the optimiser off (which
/// Oclgrind's --uninitialized check needs). Anything else could break what the kernels rely on —
/// `-cl-fast-relaxed-math` cancels the compensated sums, a `-D` of WG_SIZE, ROWS or STORAGE_*
/// contradicts the launch — and is refused with the list of what is accepted.
public enum BuildOptions {
  /// `-DBLOCK=n` (a multiple of 8 from 8 to 1024), `-DK_BLOCK=n` (a positive multiple of 16),
  /// `-cl-opt-disable`.
  public static let accepted = ["-DBLOCK=<n>", "-DK_BLOCK=<n>", "-cl-opt-disable"]

  /// The K block the options give the dense kernels (the last `-DK_BLOCK=n`), or nil for the
  /// default, the CPU's `CLPOOL_K_BLOCK`.
  static func productBlock(in options: String) -> Int? {
    options.split(whereSeparator: \.isWhitespace).last { $0.hasPrefix("-DK_BLOCK=") }.flatMap { Int($0.dropFirst("-DK_BLOCK=".count)) }
  }

  /// - Throws: `CLPoolError.invalidConfiguration` naming the first option not accepted.
  public static func validate(_ options: String, source: String = "build options") throws {
    for option in options.split(whereSeparator: \.isWhitespace) {
      let accepted: Bool
      if option == "-cl-opt-disable" {
        accepted = true
      } else if let value = option.split(separator: "=", maxSplits: 1).last, option.hasPrefix("-DBLOCK=") || option.hasPrefix("-DK_BLOCK=") {
        accepted = !value.isEmpty && value.allSatisfy(\.isNumber) && value.count <= 9
      } else {
        accepted = false
      }
      guard accepted else {
        throw CLPoolError.invalidConfiguration(
          "\(source): '\(option)' is not accepted (accepted: \(self.accepted.joined(separator: ", ")); the kernels check the values)")
      }
    }
  }
}
