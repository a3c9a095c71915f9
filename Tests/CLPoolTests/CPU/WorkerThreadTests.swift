import CLPoolCPU
import Dispatch
import Testing

/// `clpool_parallel` (Sources/CLPoolCPU/workers.c) runs every task of a job exactly once and
/// returns only after all of them ran: jobs of 2 to 9 tasks back to back on 3 workers (more
/// threads than this machine has cores, so workers are preempted mid-ticket), each task counting
/// itself into its job's slots. After a job returns its slots are set to a sentinel, and a task
/// that ran late, or twice, would leave a count other than 1 or disturb the sentinel.
@Suite struct WorkerThreadTests {
  static let sentinel: Int32 = -1000

  /// Runs `jobs` jobs from this thread through a ring of `ring` slot buffers; returns the
  /// problems found.
  static func runJobs(_ jobs: Int, ring: Int = 4, threads: Int = 4) -> [String] {
    let width = 16
    let slots = UnsafeMutablePointer<Int32>.allocate(capacity: ring * width)
    defer { slots.deallocate() }
    slots.initialize(repeating: sentinel, count: ring * width)
    var problems: [String] = []
    for job in 0..<jobs {
      let tasks = 2 + job % 8
      let buffer = slots + (job % ring) * width
      if (0..<width).contains(where: { buffer[$0] != sentinel }) { problems.append("job \(job): a late task wrote into a finished job's slots") }
      for slot in 0..<width { buffer[slot] = 0 }
      clpool_parallel(tasks, threads, { context, task in
        context!.assumingMemoryBound(to: Int32.self)[task] += 1
      }, buffer)
      if let wrong = (0..<width).first(where: { buffer[$0] != ($0 < tasks ? 1 : 0) }) {
        problems.append("job \(job) of \(tasks) tasks: slot \(wrong) counted \(buffer[wrong])")
      }
      for slot in 0..<width { buffer[slot] = sentinel }
    }
    return problems
  }

  @Test func everyTaskRunsOnceBeforeItsJobReturns() {
    let problems = Self.runJobs(20_000)
    #expect(problems.isEmpty, "\(problems.prefix(3)) (\(problems.count) in all)")
  }

  @Test func jobsFromSeveralThreadsAtOnce() {
    let found = LockedCounter()
    DispatchQueue.concurrentPerform(iterations: 3) { _ in
      for problem in Self.runJobs(5_000) { found.add(problem) }
    }
    #expect(found.messages.isEmpty, "\(found.messages.prefix(3)) (\(found.messages.count) in all)")
  }
}
