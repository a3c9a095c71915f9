import CLPoolCPU
import Foundation

extension NPY {
  /// An `.npy` file written as it goes (little-endian float32 or int64, C order), through
  /// `OutputFile`: the header for the whole shape, then elements in order; the file appears,
  /// whole, on `commit`, once every element is written. Under MPI (`shared`) every rank writes
  /// its own run of elements in place into one file, which rank 0 commits. Appends are copied and
  /// written on a thread of their own (at most two waiting), so a stream computes its next chunk
  /// while the last one's results go to the file; a failed write is thrown by a later append or
  /// by `finishWriting`.
  public final class Writer {
    private let file: OutputFile
    private let writes = BackgroundWrites()
    /// The payload written around the page cache (`DirectWrites`), or nil.
    let direct: DirectWrites?
    private let dataOffset: Int
    private let integers: Bool
    /// The elements this writer writes (a rank's share, or all), and how many it has written.
    private let elements: Range<Int>
    private var written = 0

    /// - Parameters:
    ///   - path: the output file, written through `OutputFile`.
    ///   - shape: the array's shape, written in the header first.
    ///   - indices: int64 (`<i8`) elements instead of float32 (`<f4`).
    ///   - environment: `CLPOOL_DIRECT_IO` there chooses whether a regular file's payload is
    ///     written around the page cache (`DirectWrites`).
    public convenience init(
      path: String, shape: [Int], indices: Bool = false, environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws {
      let elements = try Tensor.elementCount(of: shape)
      let payload = elements.multipliedReportingOverflow(by: Self.elementBytes(indices))
      let wanted = try DirectWrites.wanted(payloadBytes: payload.overflow ? .max : payload.partialValue, environment: environment)
      let file = try OutputFile(path: path)
      let header = Self.header(shape, indices)
      // Direct writes start with the header, in their first block.
      let direct = wanted ? DirectWrites(file, header: header) : nil
      if direct == nil { try file.write(header) }
      self.init(file, dataOffset: header.count, indices: indices, elements: 0..<elements, direct: direct)
    }

    /// Payload bytes written around the page cache (`CLPOOL_DIRECT_IO`), once `commit` or
    /// `finishWriting` returned.
    public var directlyWrittenBytes: Int { direct?.directBytes ?? 0 }

    private init(_ file: OutputFile, dataOffset: Int, indices: Bool, elements: Range<Int>, direct: DirectWrites? = nil) {
      self.file = file
      self.dataOffset = dataOffset
      integers = indices
      self.elements = elements
      self.direct = direct
    }

    /// Bytes per element in the file: int64 indices or float32 values.
    private static func elementBytes(_ indices: Bool) -> Int { indices ? 8 : 4 }

    private static func header(_ shape: [Int], _ indices: Bool) -> Data {
      NPY.encode(descr: indices ? "<i8" : "<f4", shape: shape, payload: Data())
    }

    /// One file for the whole job, written by every rank of `world` (collective): rank 0 creates
    /// it (a temporary file next to `path`, with the header, at its full size) and every rank
    /// gets a writer for its `elements`. `path` must be a regular file or a new one: ranks write
    /// in place, through the page cache (whatever `CLPOOL_DIRECT_IO` says, which is still checked).
    public static func shared(path: String, shape: [Int], indices: Bool = false, world: MPIWorld, elements: Range<Int>)
      throws -> Writer
    {
      _ = try DirectWrites.wanted(payloadBytes: 0, environment: ProcessInfo.processInfo.environment)
      let header = header(shape, indices)
      let total = try Tensor.elementCount(of: shape)
      var created: Result<OutputFile, any Error>?
      if world.rank == 0 {
        created = Result {
          let file = try OutputFile(path: path)
          guard file.isPositional else {
            throw CLPoolError.invalidInput("\(path): under MPI the output must be a regular file (each rank writes its rows in place)")
          }
          try file.write(header)
          try file.resize(to: header.count + total * elementBytes(indices))
          return file
        }
      }
      let name = world.broadcast(Array(((try? created?.get())?.temporary ?? "").utf8), capacity: 4096)
      let file: OutputFile
      if let created {
        file = try created.get()
      } else {
        guard !name.isEmpty else { throw CLPoolError.invalidInput("\(path): rank 0 could not create it") }
        file = try OutputFile(joining: String(decoding: name, as: UTF8.self), for: path)
      }
      return Writer(file, dataOffset: header.count, indices: indices, elements: elements)
    }

    /// Appends `count` float elements of `type` from `source`, as float32 (rounded to nearest
    /// when narrowing from float64).
    public func append(_ source: UnsafeRawBufferPointer, count: Int, type: ScalarType) throws {
      precondition(!integers && count <= source.count / type.byteWidth)
      try put(count) { buffer in
        if type == .float32, 1.littleEndian == 1 {
          buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: source[..<(count * 4)]))
        } else {
          clpool_convert(type.kernelCode, source.baseAddress, 0, ScalarType.float32.kernelCode, buffer.baseAddress, count)
        }
      }
    }

    /// Appends int64 elements.
    public func append(indices: UnsafeBufferPointer<Int64>) throws {
      precondition(integers)
      try put(indices.count) { buffer in
        for (i, index) in indices.enumerated() { buffer.storeBytes(of: index.littleEndian, toByteOffset: i * 8, as: Int64.self) }
      }
    }

    /// Writes `count` elements that `fill` puts, in file order, into a buffer of theirs.
    private func put(_ count: Int, _ fill: (UnsafeMutableRawBufferPointer) -> Void) throws {
      guard written + count <= elements.count else {
        throw CLPoolError.invalidArgument("\(file.path): more elements written than its shape holds")
      }
      let (file, direct, offset) = (file, direct, dataOffset + (elements.lowerBound + written) * Self.elementBytes(integers))
      try writes.enqueue(byteCount: count * Self.elementBytes(integers), fill) { bytes in
        if let direct {
          try direct.write(bytes, at: offset)
        } else {
          file.isPositional ? try file.write(bytes, at: offset) : try file.write(bytes)
        }
      }
      written += count
    }

    /// Checks that this writer's elements are all written (before the ranks agree to commit).
    public func finishWriting() throws {
      try writes.drain()
      try direct?.finish()
      guard written == elements.count else {
        throw CLPoolError.invalidArgument("\(file.path): \(written) of \(elements.count) elements written")
      }
    }

    /// Makes the file appear at its path, whole; every element must have been written. On a rank
    /// that joined rank 0's file it only closes it: rank 0 commits once every rank has.
    public func commit() throws {
      try finishWriting()
      try file.commit()
    }
  }
}

/// Writes run in order on a serial queue, at most two waiting; the first failure is kept and
/// thrown by the next `enqueue` or by `drain`, and nothing after it is written. Each write's bytes
/// are copied into one of the (at most two) buffers this keeps and reuses: a buffer allocated
/// per write would be fresh memory each time, which the kernel maps, zeroes and unmaps again.
final class BackgroundWrites: @unchecked Sendable {
  private let queue = DispatchQueue(label: "clpool.npy-writer")
  /// Starts at zero and is raised to two: libdispatch traps on a semaphore released below its
  /// starting value.
  private let slots = DispatchSemaphore(value: 0)
  private let failure = LockedValue<(any Error)?>(nil)
  private let spare = LockedValue<[UnsafeMutableRawBufferPointer]>([])

  init() {
    slots.signal()
    slots.signal()
  }

  deinit {
    queue.sync {}
    spare.withLock { buffers in for buffer in buffers { buffer.deallocate() } }
  }

  /// `fill` puts the write's `byteCount` bytes into a buffer now; `write` runs on the queue with
  /// them, and what it touches (the writer's file) is used by nobody else until `drain` returns.
  func enqueue(
    byteCount: Int, _ fill: (UnsafeMutableRawBufferPointer) -> Void,
    _ write: @escaping (UnsafeRawBufferPointer) throws -> Void
  ) throws {
    try rethrow()
    slots.wait()
    let buffer = take(byteCount)
    fill(UnsafeMutableRawBufferPointer(rebasing: buffer[..<byteCount]))
    let bytes = UnsafeRawBufferPointer(rebasing: buffer[..<byteCount])
    let job = UncheckedSendable((write, buffer, bytes))
    // Not `self`: a block holding the last reference would run `deinit`'s sync on this very queue.
    queue.async { [slots, failure, spare] in
      let (write, buffer, bytes) = job.value
      defer {
        spare.withLock { $0.append(buffer) }
        slots.signal()
      }
      guard failure.withLock({ $0 == nil }) else { return }
      do { try write(bytes) } catch { failure.withLock { $0 = error } }
    }
  }

  /// Waits for every write so far; throws the first failure.
  func drain() throws {
    queue.sync {}
    try rethrow()
  }

  /// A kept buffer of at least `byteCount` bytes, or a new one (the largest kept one is replaced).
  private func take(_ byteCount: Int) -> UnsafeMutableRawBufferPointer {
    let kept = spare.withLock { buffers -> UnsafeMutableRawBufferPointer? in
      guard let last = buffers.indices.max(by: { buffers[$0].count < buffers[$1].count }) else { return nil }
      return buffers.remove(at: last)
    }
    if let kept, kept.count >= byteCount { return kept }
    kept?.deallocate()
    return .allocate(byteCount: max(byteCount, 1), alignment: 64)
  }

  private func rethrow() throws {
    if let error = failure.withLock({ $0 }) { throw error }
  }
}
