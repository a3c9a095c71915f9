import ArgumentParser
import CLPool
import Foundation

struct DevicesCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "devices",
    abstract: "List OpenCL platforms and devices, and which backend auto selection picks.",
    usage: "clpool devices [--backend <backend>] [--device <device>] [--json]",
    discussion: """
      Each device shows its type, compute units, memory and largest allocation, OpenCL C \
      version, driver, and the storage types clpool computes in there.

      Examples:
        clpool devices
        CLPOOL_DEVICE=1 clpool devices --json
      """)

  @OptionGroup var backendOptions: BackendOptionGroup

  @Flag(help: "Print one JSON document instead of the table.")
  var json = false

  func run() throws {
    let selection = try backendOptions.selection()
    if selection.device != nil { _ = try selection.matchingDevices() }  // a device that is not there is an error
    var devices: [OpenCLDevice] = []
    var discoveryError: String?
    do {
      devices = try OpenCLDevice.all()
    } catch {
      discoveryError = "\(error)"
    }
    if discoveryError == nil, devices.isEmpty { discoveryError = BackendSelection.noDevice }
    // Building the chosen backend proves its kernels compile; its failure is part of the answer.
    let chosen: String
    do {
      chosen = try selection.makeBackend(note: { _ in }).label
    } catch {
      chosen = "none (\(error))"
    }
    if json {
      try printJSON(DeviceReport(devices: devices, discoveryError: discoveryError, selected: chosen))
      return
    }
    if let discoveryError { print(discoveryError == BackendSelection.noDevice ? discoveryError : "OpenCL: \(discoveryError)") }
    var platform = ""
    for device in devices {
      if device.platformName != platform {
        platform = device.platformName
        print("platform \(device.platformName) — \(device.platformVersion)")
      }
      print("  [\(device.index)] \(device.name)")
      print("      type \(device.type.rawValue), \(device.computeUnits) compute units, max work-group \(device.maxWorkGroupSize)")
      print("      memory \(megabytes(device.globalMemoryBytes)), max allocation \(megabytes(device.maxAllocationBytes)), local \(device.localMemoryBytes / 1024) KiB")
      print("      \(device.openCLCVersion), driver \(device.driverVersion)")
      print(
        "      storage types \(device.storageTypes.map(\.rawValue).joined(separator: " ")) (cl_khr_fp16 \(device.supportsFP16 ? "yes" : "no"), cl_khr_fp64 \(device.supportsFP64 ? "yes" : "no"))")
    }
    print("selection \(selection.choice.rawValue): \(chosen)")
  }

  private func megabytes(_ bytes: UInt64) -> String { "\(bytes / (1 << 20)) MiB" }
}

private struct DeviceReport: Encodable {
  struct Device: Encodable {
    let index: Int
    let platform: String
    let platformVersion: String
    let name: String
    let vendor: String
    let type: String
    let computeUnits: Int
    let globalMemoryBytes: UInt64
    let maxAllocationBytes: UInt64
    let localMemoryBytes: UInt64
    let maxWorkGroupSize: Int
    let openCLCVersion: String
    let driverVersion: String
    let fp16: Bool
    let fp64: Bool
    let storageTypes: [String]
    let extensions: [String]
  }
  let devices: [Device]
  let discoveryError: String?
  let selected: String

  init(devices: [OpenCLDevice], discoveryError: String?, selected: String) {
    self.devices = devices.map {
      Device(
        index: $0.index, platform: $0.platformName, platformVersion: $0.platformVersion, name: $0.name,
        vendor: $0.vendor, type: $0.type.rawValue, computeUnits: $0.computeUnits,
        globalMemoryBytes: $0.globalMemoryBytes, maxAllocationBytes: $0.maxAllocationBytes,
        localMemoryBytes: $0.localMemoryBytes, maxWorkGroupSize: $0.maxWorkGroupSize,
        openCLCVersion: $0.openCLCVersion, driverVersion: $0.driverVersion, fp16: $0.supportsFP16,
        fp64: $0.supportsFP64, storageTypes: $0.storageTypes.map(\.rawValue), extensions: $0.extensions)
    }
    self.discoveryError = discoveryError
    self.selected = selected
  }
}
