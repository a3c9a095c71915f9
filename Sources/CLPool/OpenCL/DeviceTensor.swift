import COpenCL

/// A tensor in one `OpenCLBackend`'s device memory, in any storage type: made by `upload`, by an
/// operation on device tensors, or by `wrap` over a caller's `cl_mem` (no copy). Operations on
/// device tensors leave their results on the device and return without waiting: each result
/// carries the event of the command that writes it (`completionEvent`), which later operations
/// on it wait for by themselves, so a chain (pool → dense) never crosses to the host and runs in
/// order on in-order and out-of-order queues alike. Moving data to the host is explicit
/// (`download`). The buffer is released when the last reference goes.
///
/// Thread safety: immutable after creation; the owning backend serialises every use.
public final class DeviceTensor: @unchecked Sendable {
  public let shape: [Int]
  public let scalarType: ScalarType
  /// The memory, from its first element: the whole buffer, a sub-buffer of a caller's, or (for a
  /// caller's buffer at an offset the device cannot start a sub-buffer at) the caller's buffer
  /// with `copyOffset` bytes to skip, copied on the device when an operation reads it.
  let buffer: CLBuffer
  let copyOffset: Int
  /// The backend whose context holds `buffer`; a device tensor works with that backend only.
  let owner: OpenCLBackend
  /// Completes when the contents are ready; nil when they are ready now.
  let ready: CLEvent?

  init(shape: [Int], scalarType: ScalarType, buffer: CLBuffer, copyOffset: Int = 0, owner: OpenCLBackend, ready: CLEvent?) {
    self.shape = shape
    self.scalarType = scalarType
    self.buffer = buffer
    self.copyOffset = copyOffset
    self.owner = owner
    self.ready = ready
  }

  /// The event of the command that writes this tensor, for the caller's own wait lists (nil when
  /// the contents are ready now). The tensor owns it: retain it (clRetainEvent) to keep it
  /// beyond the tensor's life.
  public var completionEvent: cl_event? { ready?.raw }

  /// The buffer that holds the tensor, for the caller's own kernels and reads: its elements,
  /// row-major, start `memoryOffset` bytes in and are valid once `completionEvent` completes.
  /// The tensor owns the buffer: retain it (clRetainMemObject) to keep it beyond the tensor's life.
  public var memory: cl_mem { buffer.raw }
  public var memoryOffset: Int { copyOffset }

  public var count: Int { shape.reduce(1, *) }
  var bytes: Int { count * scalarType.byteWidth }
}
