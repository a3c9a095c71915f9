import Foundation

/// Which backend(s) to use: `CLPOOL_BACKEND=auto|cpu|opencl` and `CLPOOL_DEVICE=<index>|<name
/// substring>`, which the CLI's `--backend` / `--device` override; for OpenCL backends also
/// `CLPOOL_BUILD_OPTIONS` (extra compiler options) and `CLPOOL_KERNEL_VARIANT=auto|item|group`.
///
/// `auto` takes the first OpenCL GPU or accelerator whose kernels build (as a `DispatchingBackend`,
/// which runs pooling and small products on the CPU, with the CPU's bits throughout); otherwise
/// the CPU backend, which on a machine whose only OpenCL device is the CPU itself is the faster of
/// the two (see BENCHMARKS.md). If OpenCL is unavailable or its kernels fail
/// to build, `auto` says why once on stderr and uses the CPU backend; an explicit `opencl`
/// request throws the reason instead.
public struct BackendSelection: Equatable, Sendable {
  public enum Choice: String, CaseIterable, Sendable {
    case auto, cpu, opencl
  }

  /// A device named by its index in `OpenCLDevice.all()` or a case-insensitive name substring.
  public enum DeviceSelector: Equatable, Sendable {
    case index(Int)
    /// Several devices by index ("0,2"): devices can share a name, an index is unambiguous.
    case indices([Int])
    case nameContaining(String)
    /// Every device (`all`).
    case all

    public init(_ text: String) {
      let parts = text.split(separator: ",", omittingEmptySubsequences: false).map { Int($0.trimmingCharacters(in: .whitespaces)) }
      if text.lowercased() == "all" {
        self = .all
      } else if let index = Int(text) {
        self = .index(index)
      } else if parts.count > 1, parts.allSatisfy({ $0 != nil }) {
        self = .indices(parts.map { $0! })
      } else {
        self = .nameContaining(text)
      }
    }

    /// True when the selector may name more than one device to compute on together.
    public var spansDevices: Bool {
      switch self {
      case .all, .indices: return true
      case .index, .nameContaining: return false
      }
    }

    func matches(_ device: OpenCLDevice) -> Bool {
      switch self {
      case .index(let index): return device.index == index
      case .indices(let indices): return indices.contains(device.index)
      case .nameContaining(let text):
        return device.name.localizedCaseInsensitiveContains(text)
          || device.platformName.localizedCaseInsensitiveContains(text)
      case .all: return true
      }
    }
  }

  public var choice: Choice
  public var device: DeviceSelector?
  /// Appended to clpool's own OpenCL compiler options.
  public var buildOptions: String
  public var kernelVariant: OpenCLBackend.KernelVariant
  /// A cap on any one device buffer (`CLPOOL_MAX_ALLOC_BYTES`), below the device's own limit.
  public var allocationCap: UInt64?

  public init(
    choice: Choice = .auto, device: DeviceSelector? = nil, buildOptions: String = "",
    kernelVariant: OpenCLBackend.KernelVariant = .automatic, allocationCap: UInt64? = nil
  ) {
    self.choice = choice
    self.device = device
    self.buildOptions = buildOptions
    self.kernelVariant = kernelVariant
    self.allocationCap = allocationCap
  }

  /// Reads the `CLPOOL_*` variables; explicit arguments (the CLI's options) win.
  /// - Parameters:
  ///   - backend: `auto`, `cpu` or `opencl`; nil reads `CLPOOL_BACKEND`.
  ///   - device: an index, a name substring, indices (`0,1`) or `all`; nil reads `CLPOOL_DEVICE`.
  ///   - environment: where the `CLPOOL_*` variables are read.
  ///   - names: what messages call the two arguments: the CLI's options by default, a
  ///     function's parameters for the C ABI.
  /// - Throws: `CLPoolError.invalidConfiguration` listing the valid values.
  public static func resolve(
    backend: String? = nil, device: String? = nil,
    environment: [String: String] = ProcessInfo.processInfo.environment,
    names: (backend: String, device: String) = ("--backend", "--device")
  ) throws -> BackendSelection {
    let backendText = backend ?? environment["CLPOOL_BACKEND"] ?? ""
    let deviceText = device ?? environment["CLPOOL_DEVICE"] ?? ""
    let source = backend != nil ? names.backend : "CLPOOL_BACKEND"
    // An unset or empty variable means the default; an option given empty is a mistake.
    if backend?.isEmpty == true {
      throw CLPoolError.invalidConfiguration(
        "\(names.backend) '' is not a backend; valid values: " + Choice.allCases.map(\.rawValue).joined(separator: ", "))
    }
    if device?.isEmpty == true {
      throw CLPoolError.invalidConfiguration(
        "\(names.device) '' names no device; give an index or a name substring (clpool devices lists them)")
    }
    let choice: Choice
    if backendText.isEmpty {
      choice = .auto
    } else if let parsed = Choice(rawValue: backendText.lowercased()) {
      choice = parsed
    } else {
      throw CLPoolError.invalidConfiguration(
        "\(source)=\(backendText) is not a backend; valid values: "
          + Choice.allCases.map(\.rawValue).joined(separator: ", "))
    }
    let variantText = environment["CLPOOL_KERNEL_VARIANT"] ?? ""
    guard let variant = variantText.isEmpty ? .automatic : OpenCLBackend.KernelVariant(rawValue: variantText) else {
      throw CLPoolError.invalidConfiguration(
        "CLPOOL_KERNEL_VARIANT=\(variantText) is not a pooling variant; valid values: "
          + OpenCLBackend.KernelVariant.allCases.map(\.rawValue).joined(separator: ", "))
    }
    let capText = environment["CLPOOL_MAX_ALLOC_BYTES"] ?? ""
    guard capText.isEmpty || (UInt64(capText).map { $0 > 0 } ?? false) else {
      throw CLPoolError.invalidConfiguration(
        "CLPOOL_MAX_ALLOC_BYTES=\(capText) is not a positive number of bytes")
    }
    let buildOptions = environment["CLPOOL_BUILD_OPTIONS"] ?? ""
    try BuildOptions.validate(buildOptions, source: "CLPOOL_BUILD_OPTIONS")
    return BackendSelection(
      choice: choice, device: deviceText.isEmpty ? nil : DeviceSelector(deviceText),
      buildOptions: buildOptions, kernelVariant: variant, allocationCap: UInt64(capText))
  }

  private func openCLBackend(_ device: OpenCLDevice, _ options: BackendOptions) throws -> OpenCLBackend {
    try OpenCLBackend(
      device: device, options: options, kernelVariant: kernelVariant, buildOptions: buildOptions,
      allocationCap: allocationCap)
  }

  /// The one backend to compute with.
  /// - Parameters:
  ///   - options: what every backend made is given (output poisoning).
  ///   - type: the storage type the caller will compute in: `auto` passes over devices without
  ///     it; an explicit `opencl` device without it is an error naming the type.
  ///   - note: receives the one-line reason when `auto` falls back to the CPU.
  public func makeBackend(
    options: BackendOptions = BackendOptions(), requiring type: ScalarType = .float32,
    note: (String) -> Void = BackendSelection.noteOnce
  ) throws -> any Backend {
    if choice != .cpu, let device, device.spansDevices {
      return try shardedBackend(options, type, note: note)
    }
    switch choice {
    case .cpu:
      try validateDeviceSelector()
      return CPUBackend(options: options)
    case .opencl:
      let devices = try matchingDevices()
      let backend = try openCLBackend(preferred(devices), options)
      do {
        try backend.checkSupport(type)
      } catch {
        throw CLPoolError.unavailable("\(type.rawValue) storage: \(error)")
      }
      return backend
    case .auto:
      do {
        let devices = try matchingDevices()
        // With a device named, auto uses it; otherwise only a GPU or accelerator beats the CPU.
        let candidates = device != nil ? devices : devices.filter(\.isAccelerator)
        for (position, candidate) in candidates.enumerated() {
          do {
            let backend = try openCLBackend(candidate, options)
            try backend.checkSupport(type)
            // Pooling and small products run on the CPU, with the CPU's bits throughout (DispatchRule).
            return DispatchingBackend(device: backend, cpu: CPUBackend(options: options))
          } catch {
            let next = position + 1 < candidates.count ? "trying the next device" : "using the CPU backend"
            note("clpool: OpenCL device \(candidate.index) (\(candidate.name)) unusable (\(Self.firstLine(error))); \(next)")
          }
        }
      } catch CLPoolError.invalidConfiguration(let message) {
        throw CLPoolError.invalidConfiguration(message)  // devices exist, but not the one named: a mistake, not a fallback
      } catch {
        note("clpool: OpenCL unavailable (\(Self.firstLine(error))); using the CPU backend")
      }
      return CPUBackend(options: options)
    }
  }

  /// `--device all` or a list of indices: every selected device that computes in `type`, each
  /// given a share of every batch. One device alone is that device's backend. `all` keeps the
  /// devices that compute the preferred device's bits (a GPU or accelerator first, else the first
  /// device) and notes the others; a list that mixes kinds is refused (`ShardedBackend`).
  private func shardedBackend(_ options: BackendOptions, _ type: ScalarType, note: (String) -> Void) throws -> any Backend {
    let devices = try matchingDevices()
    var shards = try devices.map { try openCLBackend($0, options) }
    if case .all = device {
      let key = shards[devices.firstIndex { $0.index == preferred(devices).index }!].computationKey
      let grouped = Dictionary(grouping: shards) { $0.computationKey == key }
      if let others = grouped[false] {
        let names = others.map { "\($0.device.index) (\($0.deviceName))" }.joined(separator: ", ")
        note("clpool: --device all leaves out \(names): another OpenCL implementation or device type computes other bits")
        shards = grouped[true]!
      }
    }
    for shard in shards {
      do {
        try shard.checkSupport(type)
      } catch {
        throw CLPoolError.unavailable("device \(shard.device.index) (\(shard.device.name)), \(type.rawValue) storage: \(error)")
      }
    }
    return shards.count == 1 ? shards[0] : try ShardedBackend(shards)
  }

  /// Every backend the selection covers, for cross-checking: with `auto`, the CPU backend and a
  /// backend per OpenCL device (devices that fail are reported through `note` and skipped); with
  /// `cpu` or `opencl`, only that kind (`opencl` throws when no device can be used).
  public func makeAllBackends(
    options: BackendOptions = BackendOptions(), note: (String) -> Void = BackendSelection.noteOnce
  ) throws -> [any Backend] {
    var backends: [any Backend] = []
    if choice != .opencl { backends.append(CPUBackend(options: options)) }
    if choice == .cpu {
      try validateDeviceSelector()
      return backends
    }
    let devices: [OpenCLDevice]
    do {
      devices = try matchingDevices()
    } catch {
      if choice == .opencl { throw error }
      note("clpool: OpenCL unavailable (\(Self.firstLine(error))); using the CPU backend only")
      return backends
    }
    for candidate in devices {
      do {
        backends.append(try openCLBackend(candidate, options))
      } catch {
        if choice == .opencl { throw error }
        note("clpool: OpenCL device \(candidate.index) (\(candidate.name)) unusable: \(Self.firstLine(error))")
      }
    }
    return backends
  }

  /// The OpenCL devices the selector admits (all of them without a selector); never empty.
  /// - Throws: the discovery error; `.unavailable` when the platforms list no device;
  ///   `.invalidConfiguration` when the selector matches none of those they list.
  public func matchingDevices() throws -> [OpenCLDevice] {
    let devices = try OpenCLDevice.all()
    guard !devices.isEmpty else { throw CLPoolError.unavailable(Self.noDevice) }
    guard let device else { return devices }
    let matching = devices.filter(device.matches)
    let known = devices.map { "\($0.index): \($0.name)" }.joined(separator: "; ")
    if case .indices(let indices) = device, let missing = indices.first(where: { index in !devices.contains { $0.index == index } }) {
      throw CLPoolError.invalidConfiguration("no OpenCL device with index \(missing); valid devices: \(known)")
    }
    guard !matching.isEmpty else {
      let wanted: String
      switch device {
      case .index(let index): wanted = "index \(index)"
      case .indices(let indices): wanted = "index in \(indices.map(String.init).joined(separator: ","))"
      case .nameContaining(let text): wanted = "name containing \"\(text)\""
      case .all: wanted = "any index"
      }
      throw CLPoolError.invalidConfiguration(
        "no OpenCL device with \(wanted); valid devices: \(known)")
    }
    return matching
  }

  /// With the CPU backend a device selector picks nothing, but a wrong one is still an error;
  /// when OpenCL itself is unavailable there is nothing to check it against.
  private func validateDeviceSelector() throws {
    guard device != nil, (try? OpenCLDevice.all())?.isEmpty == false else { return }
    _ = try matchingDevices()
  }

  /// Why OpenCL gives nothing to compute on where its loader finds platforms but no device.
  public static let noDevice =
    "no OpenCL device: the installed platforms find none (a GPU driver without its GPU, or Mesa rusticl without RUSTICL_ENABLE)"

  /// GPUs and accelerators first, then the rest, in enumeration order.
  private func preferred(_ devices: [OpenCLDevice]) -> OpenCLDevice {
    devices.first(where: \.isAccelerator) ?? devices[0]
  }

  private static func firstLine(_ error: any Error) -> String {
    String(describing: error).split(separator: "\n", omittingEmptySubsequences: false).first.map(String.init) ?? ""
  }

  /// Writes each distinct note to stderr once per process.
  public static let noteOnce: @Sendable (String) -> Void = { message in
    let isNew = reportedNotes.withLock { $0.insert(message).inserted }
    if isNew { writeToStandardError(message + "\n") }
  }
  private static let reportedNotes = LockedValue(Set<String>())
}

/// A value behind a lock.
final class LockedValue<Value>: @unchecked Sendable {
  private var value: Value
  private let lock = NSLock()

  init(_ value: Value) { self.value = value }

  func withLock<Result>(_ body: (inout Value) throws -> Result) rethrows -> Result {
    try lock.withLock { try body(&value) }
  }
}
