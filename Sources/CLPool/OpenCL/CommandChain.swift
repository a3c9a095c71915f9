/// The commands of one call, in the order they were enqueued: each waits for the one before it,
/// the first for the call's prerequisites (a caller's events), so the order holds on an
/// out-of-order queue as well as an in-order one. The kernels' events go to `KernelTimer`.
struct CommandChain {
  let queue: CLQueue
  /// What the next command waits for.
  private(set) var waitList: [CLEvent]
  /// The kernel launches so far, for `KernelTimer`.
  private(set) var kernels: [CLEvent] = []

  init(queue: CLQueue, after prerequisites: [CLEvent] = []) {
    self.queue = queue
    waitList = prerequisites
  }

  /// The event that completes when every command of the chain has (nil before the first).
  var completion: CLEvent? { waitList.count == 1 ? waitList[0] : nil }

  mutating func launch(_ kernel: CLKernel, global: [Int], local: [Int]?) throws {
    let event = try queue.launch(kernel, global: global, local: local, after: waitList)
    waitList = [event]
    kernels.append(event)
  }

  mutating func fill<Pattern: BitwiseCopyable>(_ buffer: CLBuffer, with pattern: Pattern, bytes: Int) throws {
    waitList = [try queue.fill(buffer, with: pattern, bytes: bytes, after: waitList)]
  }

  mutating func copy(_ source: CLBuffer, offset: Int, to destination: CLBuffer, bytes: Int) throws {
    waitList = [try queue.copy(source, offset: offset, to: destination, bytes: bytes, after: waitList)]
  }

  /// Reads `buffer` from `offset` into `destination` once the chain so far is done (blocking).
  func read(_ buffer: CLBuffer, offset: Int = 0, into destination: UnsafeMutableRawBufferPointer) throws {
    try queue.read(buffer, offset: offset, into: destination, after: waitList)
  }
}

/// Device time of the OpenCL kernels a piece of code runs, from their profiling events, for
/// benchmarks: `KernelTimer.measure { try backend.dense(…) }` returns the call's result and the
/// seconds its kernels took on the device, transfers excluded. The events belong to that one
/// measurement (a task-local collector), never to the backend, and are released with it.
public enum KernelTimer {
  final class Collector: @unchecked Sendable {
    private let events = LockedValue<[CLEvent]>([])
    func add(_ more: [CLEvent]) { events.withLock { $0 += more } }
    var seconds: Double? {
      events.withLock { events in
        events.isEmpty ? nil : events.reduce(0.0) { $0 + ((try? $1.elapsedSeconds()) ?? 0) }
      }
    }
  }

  @TaskLocal static var collector: Collector?

  /// Runs `body` and returns its result with the device seconds of the OpenCL kernels it ran
  /// (nil when it ran none, as on the CPU backend).
  public static func measure<Result>(_ body: () throws -> Result) rethrows -> (Result, Double?) {
    let collector = Collector()
    let result = try $collector.withValue(collector) { try body() }
    return (result, collector.seconds)
  }

  /// Records a finished call's kernel events when a measurement is running.
  static func record(_ chain: CommandChain) {
    collector?.add(chain.kernels)
  }
}
