import CLPool
import Foundation
import Testing

@Suite(.enabled(if: TestBackends.runOpenCL))
struct OpenCLInfrastructureTests {
  /// In CI the PoCL device must be there: a missing device fails instead of skipping.
  @Test func deviceIsFound() throws {
    let devices = try OpenCLDevice.all()
    #expect(!devices.isEmpty)
    if TestBackends.isCI {
      #expect(devices.contains { $0.platformName.contains("Portable Computing Language") }, "CI must run on PoCL")
    }
    #expect(!TestBackends.openCL.isEmpty, "no OpenCL backend could be created")
  }

  @Test func errorsCarrySymbolicNames() {
    #expect(OpenCLError.symbolicName(-5) == "CL_OUT_OF_RESOURCES")
    #expect(OpenCLError.symbolicName(-1001) == "CL_PLATFORM_NOT_FOUND_KHR")
    #expect(OpenCLError.symbolicName(-11) == "CL_BUILD_PROGRAM_FAILURE")
    #expect(OpenCLError.symbolicName(-12345) == "CL_UNKNOWN_ERROR(-12345)")
    #expect(OpenCLError(call: "clFinish", code: -36).description == "clFinish failed: CL_INVALID_COMMAND_QUEUE (-36)")
  }

  /// A program that fails to build reports the device's log and the options it was built with,
  /// in one line (the kernels refuse a BLOCK they cannot sum with, by #error); options the kernels
  /// cannot check are refused before any build.
  @Test func failedBuildReportsLogAndOptions() throws {
    let device = try #require(try OpenCLDevice.all().first)
    let cache = ProgramCache(directory: nil)
    for block in [0, 1, 7, 100, 257, 2048] {
      do {
        _ = try OpenCLBackend(device: device, buildOptions: "-DBLOCK=\(block)", cache: cache)
        Issue.record("BLOCK=\(block) must fail the build")
      } catch CLPoolError.openCL(let error) {
        #expect(error.call == "clBuildProgram")
        #expect(error.name == "CL_BUILD_PROGRAM_FAILURE")
        #expect(error.buildOptions?.contains("-DBLOCK=\(block)") == true)
        #expect(error.buildLog?.contains("BLOCK must be a multiple of 8") == true, "log: \(error.buildLog ?? "nil")")
        #expect(!error.description.contains("\n") && error.description.contains("BLOCK must be"), "\(error)")
      }
    }
    for options in ["-DBLOCK=(", "-cl-fast-relaxed-math", "-DWG_SIZE=64", "-DROWS=3", "-DSTORAGE_HALF", "-cl-mad-enable"] {
      #expect(throws: CLPoolError.self, "\(options)") { try OpenCLBackend(device: device, buildOptions: options, cache: cache) }
    }
    _ = try OpenCLBackend(device: device, buildOptions: "-DBLOCK=512 -DK_BLOCK=1024", cache: cache)
  }

  /// auto falls back to the CPU backend, with a note, when the OpenCL kernels do not build.
  @Test func autoFallsBackWhenKernelsFailToBuild() throws {
    let device = try #require(try OpenCLDevice.all().first)
    var notes: [String] = []
    let broken = try BackendSelection.resolve(
      device: "\(device.index)", environment: ["CLPOOL_BUILD_OPTIONS": "-DBLOCK=7"])
    let backend = try broken.makeBackend { notes.append($0) }
    #expect(backend.kind == .cpu)
    #expect(notes.count == 1 && notes[0].contains("CL_BUILD_PROGRAM_FAILURE"), "\(notes)")
    var explicit = broken
    explicit.choice = .opencl
    #expect(throws: CLPoolError.self) { try explicit.makeBackend() }
  }

  /// A second backend reuses the built program from memory, a new process (a fresh cache over the
  /// same directory) from disk; other options miss.
  @Test func programCacheHitsSkipTheCompiler() throws {
    let device = try #require(try OpenCLDevice.all().first)
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("clpool-cache-\(UUID())")
    defer { try? FileManager.default.removeItem(at: directory) }
    let first = ProgramCache(directory: directory)
    _ = try OpenCLBackend(device: device, cache: first)
    #expect(first.statistics == ProgramCache.Statistics(sourceBuilds: 1, memoryHits: 0, diskHits: 0))
    _ = try OpenCLBackend(device: device, cache: first)
    #expect(first.statistics == ProgramCache.Statistics(sourceBuilds: 1, memoryHits: 1, diskHits: 0))
    let second = ProgramCache(directory: directory)
    let fromDisk = try OpenCLBackend(device: device, cache: second)
    #expect(second.statistics == ProgramCache.Statistics(sourceBuilds: 0, memoryHits: 0, diskHits: 1))
    let x = try Tensor(shape: [1, 2, 3], scalars: [1, 2, 3, 4, 5, 6])
    #expect(try fromDisk.globalAveragePool(x, layout: .channelsFirst, keepDims: false).scalars == [2, 5])
    _ = try OpenCLBackend(device: device, buildOptions: "-DBLOCK=512", cache: second)
    #expect(second.statistics.sourceBuilds == 1)
  }

  /// A changed source, option, driver version or device is a different key and cache file.
  @Test func cacheKeysCoverWhatChangesTheBinary() {
    let base = ["PoCL", "OpenCL 3.0", "cpu", "3.1", "-DBLOCK=256", "kernel void k() {}"]
    func key(_ fields: [String]) -> String {
      ProgramCache.key(
        platform: fields[0], platformVersion: fields[1], device: fields[2], driverVersion: fields[3],
        options: fields[4], source: fields[5])
    }
    #expect(key(base) == key(base))
    for field in base.indices {
      var changed = base
      changed[field] += " "
      #expect(key(changed) != key(base), "field \(field)")
      #expect(ProgramCache.fileName(forKey: key(changed)) != ProgramCache.fileName(forKey: key(base)))
    }
  }

  @Test func kernelVariantFollowsDeviceType() throws {
    for device in try OpenCLDevice.all() {
      let backend = try OpenCLBackend(device: device)
      #expect(backend.kernelVariant == (device.isAccelerator ? .workGroup : .workItem))
    }
  }

  /// A request larger than one device allocation is refused with a message naming the limit.
  @Test func oversizedRequestNamesTheLimit() throws {
    let candidate = try #require(TestBackends.openCL.first)
    let device = (candidate.backend as! OpenCLBackend).device
    let floats = Int(device.maxAllocationBytes / 4) + 1
    guard floats <= 1 << 31 else { return }  // too large to allocate on the host here
    let x = try Tensor(shape: [1, 1, floats], repeating: 1)
    #expect {
      try candidate.backend.globalAveragePool(x, layout: .channelsFirst, keepDims: false)
    } throws: { error in
      "\(error)".contains("CL_DEVICE_MAX_MEM_ALLOC_SIZE = \(device.maxAllocationBytes) bytes")
    }
  }
}
