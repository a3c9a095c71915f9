import CLPoolCPU

/// Runs `body` over `0..<count` split into contiguous ranges on all cores, on the CPU backend's
/// worker threads (`clpool_parallel`, which keeps them spinning between calls, so a call of
/// a tenth of a millisecond does not wait for threads to wake). Ranges hold at least `grain` items
/// so small problems stay on one thread. Which thread runs a range never changes the result: every
/// range writes its own outputs, and the ranges depend only on `count`.
func parallelFor(_ count: Int, grain: Int, _ body: (Range<Int>) -> Void) {
  guard count > 0 else { return }
  let workers = CPUInfo.activeCores
  let tasks = min(max(1, count / max(1, grain)), workers * 4)
  if tasks == 1 {
    body(0..<count)
    return
  }
  withoutActuallyEscaping(body) { body in
    var job = ParallelJob(count: count, tasks: tasks, body: body)
    withUnsafeMutablePointer(to: &job) { job in
      clpool_parallel(tasks, workers, { context, task in
        let job = context!.assumingMemoryBound(to: ParallelJob.self).pointee
        let (begin, end) = (job.count * task / job.tasks, job.count * (task + 1) / job.tasks)
        if begin < end { job.body(begin..<end) }
      }, job)
    }
  }
}

/// What the C callback of `parallelFor` needs: the split and the body.
private struct ParallelJob {
  let count: Int
  let tasks: Int
  let body: (Range<Int>) -> Void
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
