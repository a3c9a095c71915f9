import Foundation

/// What every test target needs to know about where it runs.
public enum TestEnvironment {
  /// In CI (CI=true) a missing OpenCL device or tool fails a test instead of skipping it.
  public static let isCI = ProcessInfo.processInfo.environment["CI"] == "true"

  /// Fresh data each run, printed once; `CLPOOL_TEST_SEED` reproduces a failing run.
  public static let seed: UInt64 = {
    let seed = ProcessInfo.processInfo.environment["CLPOOL_TEST_SEED"].flatMap(UInt64.init) ?? UInt64.random(in: 0...UInt64.max)
    print("note: test data seed \(seed) (set CLPOOL_TEST_SEED=\(seed) to reproduce)")
    return seed
  }()
}
