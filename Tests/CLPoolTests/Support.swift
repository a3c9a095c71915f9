import CLPool
import Foundation
import TestSupport
import Testing

/// A backend as a test argument, named in the test report.
struct BackendUnderTest: Sendable, CustomTestStringConvertible {
  let backend: any Backend
  let name: String
  var testDescription: String { name }
}

enum TestBackends {
  static var isCI: Bool { TestEnvironment.isCI }

  /// The OpenCL devices, or the reason there are none.
  static let openCLDevices: Result<[OpenCLDevice], any Error> = Result { try OpenCLDevice.all() }

  /// True when OpenCL tests should run: a device exists, or we are in CI, where a missing device
  /// must fail the run rather than skip.
  static var runOpenCL: Bool {
    if case .success(let devices) = openCLDevices, !devices.isEmpty { return true }
    if !isCI { print("note: OpenCL tests skipped: \(openCLUnavailableReason)") }
    return isCI
  }

  static var openCLUnavailableReason: String {
    switch openCLDevices {
    case .success(let devices): return devices.isEmpty ? "no OpenCL device" : "available"
    case .failure(let error): return "\(error)"
    }
  }

  static let options = BackendOptions(poisonOutputs: true)

  /// Every OpenCL device with its automatic kernel choice; CPU-type devices also with the
  /// work-group tree kernels forced, so the GPU variant is exercised on PoCL in CI.
  static let openCL: [BackendUnderTest] = {
    guard case .success(let devices) = openCLDevices else { return [] }
    var backends: [BackendUnderTest] = []
    for device in devices {
      let variants: [OpenCLBackend.KernelVariant] = device.isAccelerator ? [.automatic, .workItem] : [.automatic, .workGroup]
      for variant in variants {
        do {
          let backend = try OpenCLBackend(device: device, options: options, kernelVariant: variant)
          backends.append(BackendUnderTest(backend: backend, name: "opencl[\(device.index)] \(device.name) kernels=\(backend.kernelVariant.rawValue)"))
        } catch {
          Issue.record("OpenCL device \(device.index) (\(device.name)) failed to initialise: \(error)")
        }
      }
    }
    return backends
  }()

  static let cpu = BackendUnderTest(backend: CPUBackend(options: options), name: "cpu")

  static var all: [BackendUnderTest] { [cpu] + openCL }

  /// Fresh data each run; `CLPOOL_TEST_SEED` reproduces a failing run.
  static var seed: UInt64 { TestEnvironment.seed }
}

extension SelfTestCase: CustomTestStringConvertible {
  public var testDescription: String { description }
}
