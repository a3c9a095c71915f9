import Dispatch

/// Runs `body` over `0..<count` split into contiguous ranges on all cores. Ranges hold at least
/// `grain` items so small problems stay on one thread. Which thread runs a range never changes
/// the result: every range writes its own outputs.
func parallelFor(_ count: Int, grain: Int, _ body: (Range<Int>) -> Void) {
  guard count > 0 else { return }
  let workers = CPUInfo.activeCores
  let tasks = min(max(1, count / max(1, grain)), workers * 4)
  if tasks == 1 {
    body(0..<count)
    return
  }
  // The callers write disjoint outputs per range, which is what makes sharing `body` across the
  // worker threads safe; concurrentPerform returns only after every range ran.
  withoutActuallyEscaping(body) { body in
    let shared = UncheckedSendable(body)
    DispatchQueue.concurrentPerform(iterations: tasks) { task in
      let begin = count * task / tasks
      let end = count * (task + 1) / tasks
      if begin < end { shared.value(begin..<end) }
    }
  }
}

struct UncheckedSendable<Value>: @unchecked Sendable {
  let value: Value
  init(_ value: Value) { self.value = value }
}

enum CPUInfo {
  static let activeCores = max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN)))
}

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif
