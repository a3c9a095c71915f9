/// A float32 tensor in one `OpenCLBackend`'s device memory. Operations on device tensors leave
/// their results on the device, so a chain (pool → dense) never crosses to the host; moving data
/// is explicit (`OpenCLBackend.upload` / `download`). Released when the last reference goes.
///
/// Thread safety: immutable after creation; the owning backend serialises every use.
public final class DeviceTensor: @unchecked Sendable {
  public let shape: [Int]
  let buffer: CLBuffer
  /// The backend whose context holds `buffer`; a device tensor works with that backend only.
  let owner: OpenCLBackend

  init(shape: [Int], buffer: CLBuffer, owner: OpenCLBackend) {
    self.shape = shape
    self.buffer = buffer
    self.owner = owner
  }
}
