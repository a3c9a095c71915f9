import ArgumentParser
import CLPool
import Foundation

#if canImport(Glibc)
  import Glibc
#endif

// pool and head on one input file: its samples stream through the backend a chunk at a time
// (SampleStream) and the output is written as it goes (NPY.Writer), so the file may be larger
// than memory. Under `mpirun` every rank streams its own share of the samples into one output
// file. Batch invariance (SPEC) makes the chunking and the rank count invisible in the bits.

/// `--chunk-bytes`, shared by the streaming commands.
struct StreamOptionGroup: ParsableArguments {
  @Option(help: "About how many input bytes one streamed chunk holds (whole samples, at least one).")
  var chunkBytes: Int = 64 << 20

  func validate() throws {
    if chunkBytes <= 0 { throw ValidationError("--chunk-bytes must be positive") }
  }
}

/// The processes of one job: this one alone, or every rank of an MPI job.
struct Job {
  let world: MPIWorld?

  init() throws { world = try MPIWorld.current() }

  var rank: Int { world?.rank ?? 0 }
  var isLeader: Bool { rank == 0 }

  /// The samples of `count` this process computes.
  func samples(of count: Int) -> Range<Int> { world?.samples(of: count) ?? 0..<count }

  /// Runs one step on every rank. When any rank fails, the lowest failing rank reports its error
  /// and every rank then exits with the status that error gives, so a job prints one error line
  /// and every rank ends alike. The report comes before the collective that lets the others go:
  /// a rank that exited first would have mpirun kill the reporter before it wrote its line.
  func step<Result>(_ body: () throws -> Result) throws -> Result {
    guard let world else { return try body() }
    let outcome = Swift.Result { try body() }
    let (succeeded, reporter) = world.agree((try? outcome.get()) != nil)
    if succeeded { return try outcome.get() }
    var status = Int32.max
    if world.rank == reporter, case .failure(let error) = outcome { status = CLPoolCommand.report(error) }
    throw ExitCode(world.minimum(status))
  }

  func finish() { world?.finish() }

  /// The output file `path` of `shape`: this process's own, or one file all ranks write.
  func writer(_ path: String, shape: [Int], indices: Bool = false, elementsPerSample: Int, samples: Range<Int>) throws
    -> NPY.Writer
  {
    guard let world else { return try NPY.Writer(path: path, shape: shape, indices: indices) }
    return try NPY.Writer.shared(
      path: path, shape: shape, indices: indices, world: world,
      elements: (samples.lowerBound * elementsPerSample)..<(samples.upperBound * elementsPerSample))
  }

  /// Makes the outputs appear, in order, once every rank has written its part: a rank that
  /// joined rank 0's files closes them, then rank 0 renames them into place. When a later one
  /// fails, the earlier ones are removed again.
  func commit(_ outputs: [(writer: NPY.Writer, path: String)]) throws {
    try step {
      for output in outputs { try output.writer.finishWriting() }
      if !isLeader { for output in outputs { try output.writer.commit() } }
    }
    try step {
      guard isLeader else { return }
      for (position, output) in outputs.enumerated() {
        do {
          try output.writer.commit()
        } catch {
          for earlier in outputs[..<position] { try? FileManager.default.removeItem(atPath: earlier.path) }
          throw error
        }
      }
    }
  }
}

/// The progress line on stderr (samples done, GB/s, ETA), redrawn at most four times a second;
/// none when stderr is not a terminal, with --quiet, or on ranks other than 0.
final class ProgressLine {
  private let label: String
  private let total: Int
  private let sampleBytes: Int
  private let enabled: Bool
  private let start = DispatchTime.now().uptimeNanoseconds
  private var lastDrawn: UInt64 = 0

  init(_ label: String, samples total: Int, sampleBytes: Int, quiet: Bool, job: Job) {
    self.label = job.world.map { "\(label) (rank 0 of \($0.size))" } ?? label
    self.total = total
    self.sampleBytes = sampleBytes
    enabled = !quiet && job.isLeader && isatty(STDERR_FILENO) == 1
  }

  func update(_ done: Int) {
    guard enabled else { return }
    let now = DispatchTime.now().uptimeNanoseconds
    guard done == total || now - lastDrawn > 250_000_000 else { return }
    lastDrawn = now
    let seconds = max(1e-9, Double(now - start) * 1e-9)
    let rate = Double(done * sampleBytes) / seconds
    let remaining = done > 0 ? seconds * Double(total - done) / Double(done) : 0
    let line = String(
      format: "\r\u{1B}[K%@: %d/%d samples, %.2f GB/s, ETA %@", label, done, total, rate / 1e9, Self.clock(remaining))
    writeToStandardError(line)
    if done == total { writeToStandardError("\n") }
  }

  private static func clock(_ seconds: Double) -> String {
    let whole = Int(seconds.rounded(.up))
    return whole >= 3600
      ? String(format: "%d:%02d:%02d", whole / 3600, whole / 60 % 60, whole % 60)
      : String(format: "%d:%02d", whole / 60, whole % 60)
  }
}

/// Runs `operation` on `backend` over every chunk of this process's samples of `stream` (a
/// `ChunkPipeline`, so a device's transfers overlap its compute) and hands each chunk's results to
/// `deliver`, in order; returns the seconds taken.
func streamChunks(
  _ stream: SampleStream, job: Job, samples: Range<Int>, progress: ProgressLine, backend: any Backend,
  _ operation: StreamedOperation, _ deliver: (ChunkResults) throws -> Void
) throws -> Double {
  let (_, seconds) = try timed {
    try withoutActuallyEscaping(deliver) { deliver in
      var done = 0
      let pipeline = try ChunkPipeline(
        backend: backend, operation: operation, type: stream.type, sampleShape: Array(stream.shape.dropFirst()),
        maxSamples: min(stream.samplesPerChunk, samples.count)
      ) { results in
        try deliver(results)
        done += results.samples
        progress.update(done)
      }
      try stream.forEachChunk(of: samples) { _, count, elements in try pipeline.submit(elements, samples: count) }
      try pipeline.finish()
    }
  }
  return seconds
}
