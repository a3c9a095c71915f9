import Foundation

#if canImport(Glibc)
  import Glibc
#endif

/// The MPI job this process is a rank of, when Open MPI's `mpirun` started it. MPI is loaded at
/// run time (`dlopen` of Open MPI's `libmpi.so.40`, or `CLPOOL_MPI_LIBRARY`), so clpool builds
/// and runs without MPI installed; only a process that `mpirun` launched loads it. The calls used
/// are MPI-1's (Init, Comm_rank/size, Bcast, Allreduce, Finalize) on Open MPI's ABI, where the
/// predefined handles are addresses of exported objects (`ompi_mpi_comm_world`, ...).
///
/// Thread safety (`@unchecked`): MPI is initialised with MPI_Init (MPI_THREAD_SINGLE); call the
/// collectives from one thread, in the same order on every rank.
public final class MPIWorld: @unchecked Sendable {
  public let rank: Int
  public let size: Int

  private typealias Handle = UnsafeMutableRawPointer
  private let world: Handle
  private let int32Type: Handle
  private let byteType: Handle
  private let minimum: Handle
  private let bcast: @convention(c) (UnsafeMutableRawPointer?, Int32, Handle, Int32, Handle) -> Int32
  private let allreduce: @convention(c) (UnsafeRawPointer?, UnsafeMutableRawPointer?, Int32, Handle, Handle, Handle) -> Int32
  private let finalize: @convention(c) () -> Int32
  private var finalized = false

  /// The job this process belongs to: nil when it was not started by `mpirun` (no
  /// `OMPI_COMM_WORLD_SIZE`) or runs alone, joined (MPI_Init) on first use, once per process.
  /// - Throws: `CLPoolError.unavailable` when `mpirun` started it but MPI cannot be loaded.
  public static func current() throws -> MPIWorld? { try joined.get() }

  private static let joined: Result<MPIWorld?, any Error> = Result {
    let environment = ProcessInfo.processInfo.environment
    guard let text = environment["OMPI_COMM_WORLD_SIZE"], let launched = Int(text), launched > 1 else { return nil }
    return try MPIWorld(library: environment["CLPOOL_MPI_LIBRARY"] ?? "libmpi.so.40")
  }

  private init(library path: String) throws {
    // RTLD_GLOBAL: Open MPI's components, loaded by MPI_Init, resolve libmpi's symbols globally.
    guard let library = dlopen(path, RTLD_NOW | RTLD_GLOBAL) else {
      let reason = dlerror().map { String(cString: $0) } ?? "unknown error"
      throw CLPoolError.unavailable(
        "started by mpirun, but MPI cannot be loaded (\(reason)); install Open MPI (libopenmpi3) or set CLPOOL_MPI_LIBRARY")
    }
    func symbol(_ name: String) throws -> UnsafeMutableRawPointer {
      guard let address = dlsym(library, name) else {
        throw CLPoolError.unavailable("\(path) has no \(name): clpool needs Open MPI's libmpi (ABI 40)")
      }
      return address
    }
    func function<F>(_ name: String, as _: F.Type) throws -> F { unsafeBitCast(try symbol(name), to: F.self) }
    let initialize = try function(
      "MPI_Init", as: (@convention(c) (UnsafeMutablePointer<Int32>?, UnsafeMutableRawPointer?) -> Int32).self)
    let commRank = try function("MPI_Comm_rank", as: (@convention(c) (Handle, UnsafeMutablePointer<Int32>) -> Int32).self)
    let commSize = try function("MPI_Comm_size", as: (@convention(c) (Handle, UnsafeMutablePointer<Int32>) -> Int32).self)
    bcast = try function("MPI_Bcast", as: type(of: bcast))
    allreduce = try function("MPI_Allreduce", as: type(of: allreduce))
    finalize = try function("MPI_Finalize", as: type(of: finalize))
    world = try symbol("ompi_mpi_comm_world")
    int32Type = try symbol("ompi_mpi_int")
    byteType = try symbol("ompi_mpi_byte")
    minimum = try symbol("ompi_mpi_op_min")
    // The default error handler (MPI_ERRORS_ARE_FATAL) ends the job on a failed collective, so
    // the return codes below are MPI_SUCCESS whenever a call returns.
    guard initialize(nil, nil) == 0 else { throw CLPoolError.unavailable("MPI_Init failed") }
    var value: Int32 = 0
    _ = commRank(world, &value)
    rank = Int(value)
    _ = commSize(world, &value)
    size = Int(value)
  }

  /// The smallest of every rank's `value` (MPI_Allreduce with MPI_MIN).
  public func minimum(_ value: Int32) -> Int32 {
    var input = value, output: Int32 = 0
    _ = allreduce(&input, &output, 1, int32Type, minimum, world)
    return output
  }

  /// `bytes` (at most `capacity` of them) as rank `root` has them, on every rank (MPI_Bcast).
  public func broadcast(_ bytes: [UInt8], capacity: Int, from root: Int = 0) -> [UInt8] {
    var buffer = [UInt8](repeating: 0, count: capacity + 4)
    if rank == root {
      let count = UInt32(min(bytes.count, capacity)).littleEndian
      withUnsafeBytes(of: count) { buffer.replaceSubrange(0..<4, with: $0) }
      buffer.replaceSubrange(4..<(4 + min(bytes.count, capacity)), with: bytes.prefix(capacity))
    }
    _ = buffer.withUnsafeMutableBytes { bcast($0.baseAddress, Int32($0.count), byteType, Int32(root), world) }
    let count = Int(buffer[0..<4].withUnsafeBytes { UInt32(littleEndian: $0.loadUnaligned(as: UInt32.self)) })
    return Array(buffer[4..<(4 + min(count, capacity))])
  }

  /// Whether every rank succeeded at a step (each passes its own outcome), and if not, the lowest
  /// failing rank: that one reports the error, so a job prints it once.
  public func agree(_ succeeded: Bool) -> (all: Bool, reporter: Int) {
    let lowestFailure = Int(minimum(succeeded ? Int32(size) : Int32(rank)))
    return (lowestFailure == size, lowestFailure)
  }

  /// The samples of a batch of `count` this rank computes: equal shares in rank order.
  public func samples(of count: Int) -> Range<Int> {
    (count * rank / size)..<(count * (rank + 1) / size)
  }

  /// MPI_Finalize, once; every rank must call it before exiting.
  public func finish() {
    guard !finalized else { return }
    finalized = true
    _ = finalize()
  }
}
