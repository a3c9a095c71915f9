import CLPool
import Foundation
import Testing

/// Bad input is a typed error with a clear message on every backend, never a trap.
@Suite struct ErrorPathTests {
  static let backends = TestBackends.all

  private func expectShapeError(_ mentioning: String, _ body: () throws -> Void, sourceLocation: SourceLocation = #_sourceLocation) {
    do {
      try body()
      Issue.record("expected an invalidShape error mentioning \"\(mentioning)\"", sourceLocation: sourceLocation)
    } catch let error as CLPoolError {
      guard case .invalidShape(let message) = error else {
        Issue.record("expected invalidShape, got \(error)", sourceLocation: sourceLocation)
        return
      }
      #expect(message.contains(mentioning), "\(message)", sourceLocation: sourceLocation)
      #expect(!message.contains("\n"), sourceLocation: sourceLocation)
    } catch {
      Issue.record("unexpected error type: \(error)", sourceLocation: sourceLocation)
    }
  }

  @Test(arguments: backends)
  func poolingRejectsWrongRankAndEmptyExtent(_ candidate: BackendUnderTest) throws {
    let backend = candidate.backend
    expectShapeError("rank 2") { _ = try backend.globalAveragePool(try Tensor(shape: [2, 3], repeating: 1), layout: .channelsFirst, keepDims: false) }
    expectShapeError("rank 6") { _ = try backend.globalMaxPool(try Tensor(shape: [1, 1, 1, 1, 1, 1], repeating: 1), layout: .channelsFirst, keepDims: false, returnIndices: false) }
    expectShapeError("empty spatial extent") { _ = try backend.globalAveragePool(try Tensor(shape: [2, 3, 0, 4], repeating: 1), layout: .channelsFirst, keepDims: false) }
    expectShapeError("empty spatial extent") { _ = try backend.globalMaxPool(try Tensor(shape: [2, 0, 3], repeating: 1), layout: .channelsLast, keepDims: false, returnIndices: true) }
  }

  @Test(arguments: backends)
  func denseRejectsMismatchedShapes(_ candidate: BackendUnderTest) throws {
    let backend = candidate.backend
    let x = try Tensor(shape: [4, 8], repeating: 1)
    expectShapeError("must be [K,M] = [8,M]") { _ = try backend.dense(x, weight: try Tensor(shape: [7, 3], repeating: 1), bias: nil, weightLayout: .inOut, activation: .none) }
    expectShapeError("must be [M,K] = [M,8]") { _ = try backend.dense(x, weight: try Tensor(shape: [8, 3], repeating: 1), bias: nil, weightLayout: .outIn, activation: .none) }
    expectShapeError("bias must be [3]") { _ = try backend.dense(x, weight: try Tensor(shape: [8, 3], repeating: 1), bias: try Tensor(shape: [4], repeating: 0), weightLayout: .inOut, activation: .none) }
    expectShapeError("rank 2 [N,K]") { _ = try backend.dense(try Tensor(shape: [4, 8, 1], repeating: 1), weight: try Tensor(shape: [8, 3], repeating: 1), bias: nil, weightLayout: .inOut, activation: .none) }
  }

  /// A zero batch makes the whole product 0, so the spatial size needs its own overflow check.
  @Test func hugeSpatialExtentWithZeroBatchIsAnError() {
    #expect(throws: CLPoolError.self) { try PoolGeometry(shape: [0, 1, 1 << 32, 1 << 32], layout: .channelsFirst) }
    #expect(throws: CLPoolError.self) { try PoolGeometry(shape: [0, 1 << 32, 1 << 32, 1], layout: .channelsLast) }
  }

  @Test func tensorRejectsBadShapes() {
    #expect(throws: CLPoolError.self) { try Tensor(shape: [2, -1], scalars: []) }
    #expect(throws: CLPoolError.self) { try Tensor(shape: [2, 3], scalars: [1, 2]) }
    #expect(throws: CLPoolError.self) { try Tensor(shape: [Int.max, 3], repeating: 0) }
  }

  @Test func invalidBackendSelectionListsValidValues() throws {
    #expect {
      try BackendSelection.resolve(environment: ["CLPOOL_BACKEND": "cuda"])
    } throws: { error in
      "\(error)" == "CLPOOL_BACKEND=cuda is not a backend; valid values: auto, cpu, opencl"
    }
    #expect(try BackendSelection.resolve(backend: "CPU", environment: ["CLPOOL_BACKEND": "opencl"]).choice == .cpu)
    #expect(try BackendSelection.resolve(environment: ["CLPOOL_BACKEND": "opencl", "CLPOOL_DEVICE": "1"]) == BackendSelection(choice: .opencl, device: .index(1)))
    #expect(try BackendSelection.resolve(environment: [:]).makeBackend().kind == (TestBackends.openCL.contains { ($0.backend as? OpenCLBackend)?.device.isAccelerator == true } ? .opencl : .cpu))
  }

  @Test(.enabled(if: TestBackends.runOpenCL))
  func unknownDeviceListsValidDevices() {
    #expect {
      try BackendSelection(choice: .opencl, device: .nameContaining("no-such-device")).makeBackend()
    } throws: { error in
      "\(error)".contains("no OpenCL device with name containing \"no-such-device\"; valid devices: 0: ")
    }
  }
}
