import CLPoolCPU
import Foundation

#if canImport(Glibc)
  import Glibc
#endif

/// The samples of an `.npy` file a chunk of whole samples at a time, for inputs larger than
/// memory. A regular file whose elements already are the storage type (little-endian, C order)
/// is memory-mapped a window at a time and computed on in place, with no copy; other files
/// (another element type, big-endian, a pipe) are read and converted a chunk at a time. Either
/// way a helper thread prepares the next chunk (maps it and faults its pages in, or reads it)
/// while the caller computes on the current one, and releases each chunk's memory once the caller
/// is done with it, so resident memory stays about two chunks whatever the file's size.
///
/// Thread safety (`@unchecked`): while `forEachChunk` runs, only its helper thread reads the file;
/// everything else is immutable.
public final class SampleStream: @unchecked Sendable {
  public let path: String
  /// The whole array's shape; samples are along its first axis.
  public let shape: [Int]
  /// The storage type chunks are delivered in.
  public let type: ScalarType
  public let samplesPerChunk: Int
  private let reader: NPY.Reader
  private let sampleElements: Int

  public var samples: Int { shape.first ?? 0 }

  /// - Parameters:
  ///   - path: the .npy file; the first axis is the samples.
  ///   - type: the storage type the chunks are converted to.
  ///   - chunkBytes: about how much one chunk holds (at least one sample).
  /// - Throws: `CLPoolError.invalidInput` for a malformed file or a rank-0 array.
  public convenience init(path: String, type: ScalarType, chunkBytes: Int = 64 << 20) throws {
    try self.init(NPY.Reader(path: path), type: type, chunkBytes: chunkBytes)
  }

  /// A Fortran-order file's samples are not contiguous: it is read whole, and a range of samples
  /// comes as one chunk.
  public init(_ reader: NPY.Reader, type: ScalarType, chunkBytes: Int = 64 << 20) throws {
    path = reader.path
    self.type = type
    self.reader = reader
    shape = reader.shape
    guard let first = shape.first else { throw CLPoolError.invalidInput("\(path): a scalar has no samples to stream") }
    sampleElements = first == 0 ? 0 : try Tensor.elementCount(of: shape) / first
    samplesPerChunk =
      reader.isFortranOrder ? max(1, first) : max(1, chunkBytes / max(1, sampleElements * type.byteWidth))
    // Two chunks are resident at a time (the one computed on and the one being prepared).
    try HostMemory.check(
      elements: min(samplesPerChunk, first) * sampleElements, reader.isFortranOrder ? 1 : 2, width: type.byteWidth,
      what: "\(path)'s streamed chunks")
  }

  /// Calls `body` with each chunk of `range` (default: every sample) in order: its first sample,
  /// its sample count, and its elements (`count` samples in the storage type), valid during the
  /// call only.
  public func forEachChunk(
    of range: Range<Int>? = nil, _ body: (_ first: Int, _ count: Int, _ elements: UnsafeRawBufferPointer) throws -> Void
  ) throws {
    let range = range ?? 0..<samples
    precondition(range.lowerBound >= 0 && range.upperBound <= samples)
    let chunks = stride(from: range.lowerBound, to: range.upperBound, by: samplesPerChunk).map {
      ($0, min(samplesPerChunk, range.upperBound - $0))
    }
    guard !chunks.isEmpty else { return }
    if reader.isFortranOrder { return try whole(range, body) }
    let mapped = reader.isMappable(as: type)
    // Double buffering: the helper prepares chunk i + 1 while `body` runs on chunk i. Chunks
    // `body` is done with go back to the helper, which releases them before it prepares the next:
    // unmapping a chunk takes about 0.2 ms per 64 MiB that would otherwise stall the caller
    // between chunks, while the backend's other threads wait. Every semaphore starts at zero
    // (libdispatch traps on one released below its starting value, as `free` would be when `body`
    // throws), and the helper is joined before this returns, also when `body` throws, so that no
    // chunk is prepared after the stream has stopped.
    let ready = DispatchSemaphore(value: 0), free = DispatchSemaphore(value: 0), finished = DispatchSemaphore(value: 0)
    let slot = LockedValue<Result<Chunk, any Error>?>(nil)
    let spent = LockedValue<[Chunk]>([])
    let stop = LockedValue(false)
    let helper = Thread { [self] in
      defer { finished.signal() }
      for (first, count) in chunks {
        free.wait()
        var released = spent.withLock { chunks in
          defer { chunks = [] }
          return chunks
        }
        released.removeAll()  // outside the lock, which the caller takes to hand chunks back
        if stop.withLock({ $0 }) { break }
        slot.withLock { $0 = Result { try mapped ? map(first, count) : read(first, count) } }
        ready.signal()
      }
    }
    helper.stackSize = 1 << 20
    free.signal()
    helper.start()
    defer {
      stop.withLock { $0 = true }
      free.signal()
      finished.wait()
      // A chunk prepared after a throw, and the last ones used, released now, not when the
      // thread object goes.
      slot.withLock { $0 = nil }
      spent.withLock { $0 = [] }
    }
    for (first, count) in chunks {
      ready.wait()
      let chunk = try slot.withLock { current -> Chunk in
        defer { current = nil }
        return try current!.get()
      }
      free.signal()  // the helper may prepare the next chunk now
      try body(first, count, chunk.elements)
      spent.withLock { $0.append(chunk) }
    }
    if range.upperBound == samples { try reader.checkNothingFollows() }
  }

  /// The samples of `range` as one chunk, from the whole file read into C order.
  private func whole(_ range: Range<Int>, _ body: (_ first: Int, _ count: Int, _ elements: UnsafeRawBufferPointer) throws -> Void)
    throws
  {
    switch type {
    case .float16: try whole(Float16.self, range, body)
    case .float32: try whole(Float.self, range, body)
    case .float64: try whole(Double.self, range, body)
    }
  }

  private func whole<S: StorageScalar>(
    _: S.Type, _ range: Range<Int>, _ body: (_ first: Int, _ count: Int, _ elements: UnsafeRawBufferPointer) throws -> Void
  ) throws {
    let tensor = try reader.readAll(as: S.self)
    let sampleBytes = sampleElements * MemoryLayout<S>.stride
    try tensor.scalars.withUnsafeBytes {
      try body(range.lowerBound, range.count, UnsafeRawBufferPointer(rebasing: $0[(range.lowerBound * sampleBytes)..<(range.upperBound * sampleBytes)]))
    }
  }

  /// A chunk's memory: a mapping to undo, or a buffer to free.
  private final class Chunk: @unchecked Sendable {
    let elements: UnsafeRawBufferPointer
    private let release: () -> Void
    init(_ elements: UnsafeRawBufferPointer, release: @escaping () -> Void) {
      self.elements = elements
      self.release = release
    }
    deinit { release() }
  }

  private func map(_ first: Int, _ count: Int) throws -> Chunk {
    let bytes = count * sampleElements * type.byteWidth
    let (mapping, start) = try reader.map(byteOffset: first * sampleElements * type.byteWidth, bytes: bytes)
    return Chunk(UnsafeRawBufferPointer(start: start, count: bytes)) { munmap(mapping.base, mapping.length) }
  }

  private func read(_ first: Int, _ count: Int) throws -> Chunk {
    let elements = count * sampleElements
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(1, elements * type.byteWidth), alignment: 64)
    do {
      try reader.read(elements: (first * sampleElements)..<((first + count) * sampleElements), into: buffer, as: type)
    } catch {
      buffer.deallocate()
      throw error
    }
    return Chunk(UnsafeRawBufferPointer(rebasing: buffer[..<(elements * type.byteWidth)])) { buffer.deallocate() }
  }
}

extension NPY.Reader {
  /// True when the payload can be used in place as `type`: a regular file of that element type,
  /// little-endian, C order.
  func isMappable(as type: ScalarType) -> Bool {
    file.size != nil && layout.element.kind.scalarType == type && !layout.element.bigEndian && !isFortranOrder
      && 1.littleEndian == 1
  }

  /// Maps `bytes` of the payload from `byteOffset`, with its pages faulted in: the mapping (to
  /// unmap) and the address of the first byte. The mapping starts at a 2 MiB boundary of the file
  /// and of the address space, so that the page cache's 2 MiB folios (Linux's large folios) map as
  /// one page-table entry each; its pages are faulted in by touching a byte every 64 KiB (what
  /// one fault maps around itself in small folios). MAP_POPULATE, which walks every 4 KiB page,
  /// cost three times as much (BENCHMARKS.md, streaming).
  func map(byteOffset: Int, bytes: Int) throws -> (mapping: (base: UnsafeMutableRawPointer, length: Int), start: UnsafeRawPointer) {
    let alignment = 2 << 20
    let offset = layout.dataOffset + byteOffset
    let aligned = offset / alignment * alignment
    let length = offset - aligned + max(1, bytes)
    func failure() -> CLPoolError { CLPoolError.invalidInput("\(path): cannot map (\(String(cString: strerror(errno))))") }
    // Address space for the mapping and an alignment's worth more, trimmed to an aligned start.
    guard let reservation = mmap(nil, length + alignment, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), reservation != MAP_FAILED
    else { throw failure() }
    let page = Int(sysconf(Int32(_SC_PAGESIZE)))
    let head = (alignment - Int(bitPattern: reservation) % alignment) % alignment
    let end = (head + length + page - 1) / page * page  // the mapping's last page included
    if head > 0 { munmap(reservation, head) }
    if length + alignment > end { munmap(reservation + end, length + alignment - end) }
    guard let base = mmap(reservation + head, length, PROT_READ, MAP_PRIVATE | MAP_FIXED, file.descriptor, off_t(aligned)),
      base != MAP_FAILED
    else {
      let error = failure()
      munmap(reservation + head, length)
      throw error
    }
    clpool_touch_pages(base, length, 64 << 10)
    return ((base, length), UnsafeRawPointer(base + (offset - aligned)))
  }

  /// Elements `range` of the payload into `buffer`, converted into `type`.
  func read(elements range: Range<Int>, into buffer: UnsafeMutableRawBufferPointer, as type: ScalarType) throws {
    func typed<S: StorageScalar>(_: S.Type) throws {
      try read(elements: range, into: buffer.bindMemory(to: S.self))
    }
    try typed(type.staticType)
  }
}
