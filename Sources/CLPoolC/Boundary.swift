import CLPool
import Foundation

// What every exported function shares: status codes, the per-thread message, and the checks that
// turn the caller's pointers and shapes into buffers before any memory is touched.

/// The status codes of clpool.h.
enum Status: Int32 {
  case ok = 0
  case invalidArgument = 1
  case invalidConfiguration = 2
  case unavailable = 3
  case openCL = 4
  case outOfMemory = 5
  case `internal` = 6

  /// The header's names, as static C strings the caller never frees.
  var name: StaticString {
    switch self {
    case .ok: return "CLPOOL_OK"
    case .invalidArgument: return "CLPOOL_ERROR_INVALID_ARGUMENT"
    case .invalidConfiguration: return "CLPOOL_ERROR_INVALID_CONFIGURATION"
    case .unavailable: return "CLPOOL_ERROR_UNAVAILABLE"
    case .openCL: return "CLPOOL_ERROR_OPENCL"
    case .outOfMemory: return "CLPOOL_ERROR_OUT_OF_MEMORY"
    case .internal: return "CLPOOL_ERROR_INTERNAL"
    }
  }

  init(_ error: CLPoolError) {
    switch error {
    case .invalidShape, .invalidArgument, .invalidInput: self = .invalidArgument
    case .invalidConfiguration: self = .invalidConfiguration
    case .unavailable: self = .unavailable
    case .openCL: self = .openCL
    case .sizeLimit: self = .outOfMemory
    }
  }
}

extension StaticString {
  var cString: UnsafePointer<CChar> { UnsafeRawPointer(utf8Start).assumingMemoryBound(to: CChar.self) }
}

/// Runs one C call: a thrown error becomes its status code and this thread's message, so no Swift
/// error crosses the boundary.
func boundary(_ body: () throws -> Void) -> Int32 {
  do {
    try body()
    return Status.ok.rawValue
  } catch let error as CLPoolError {
    LastError.set(error.description)
    return Status(error).rawValue
  } catch {
    LastError.set("\(error)")
    return Status.internal.rawValue
  }
}

/// The message of each thread's last failed call, in thread-specific storage: C callers on
/// different threads never see each other's errors (a `static var` would race and mix them).
enum LastError {
  private static let key: pthread_key_t = {
    var key = pthread_key_t()
    // The destructor frees a thread's message when the thread exits.
    pthread_key_create(&key) { free($0) }
    return key
  }()

  static func set(_ message: String) {
    free(pthread_getspecific(key))
    pthread_setspecific(key, strdup(message))
  }

  static var message: UnsafePointer<CChar> {
    guard let stored = pthread_getspecific(key) else { return StaticString("").cString }
    return UnsafePointer(stored.assumingMemoryBound(to: CChar.self))
  }
}

/// What a `clpool_backend *` points at: the backend and its label as a C string.
final class BackendHandle {
  let backend: any Backend
  let label: UnsafeMutablePointer<CChar>

  init(_ backend: any Backend) {
    self.backend = backend
    label = strdup(backend.label)
  }

  deinit { free(label) }

  static func from(_ pointer: OpaquePointer?) throws -> BackendHandle {
    guard let pointer else { throw CLPoolError.invalidArgument("the backend is NULL; create one with clpool_backend_create") }
    return Unmanaged<BackendHandle>.fromOpaque(UnsafeRawPointer(pointer)).takeUnretainedValue()
  }
}

/// Readers of the C arguments, each refusing a value outside its domain with a one-line message.
enum Argument {
  /// Far above any rank an operation takes; it only bounds how much of `shape` is read.
  static let maximumRank: Int32 = 16

  static func shape(_ pointer: UnsafePointer<Int64>?, rank: Int32, _ what: String) throws -> [Int] {
    guard (0...maximumRank).contains(rank) else {
      throw CLPoolError.invalidShape("\(what) has rank \(rank); a rank is 0...\(maximumRank)")
    }
    guard rank == 0 || pointer != nil else { throw CLPoolError.invalidArgument("the shape of \(what) is NULL") }
    let shape = (0..<Int(rank)).map { Int(pointer![$0]) }  // Int is 64-bit on every platform clpool builds for
    _ = try Tensor.elementCount(of: shape)  // negative dimensions and overflow
    return shape
  }

  static func type(_ value: Int32) throws -> ScalarType {
    switch value {
    case 0: return .float16
    case 1: return .float32
    case 2: return .float64
    default:
      throw CLPoolError.invalidArgument("storage type \(value) is not one of CLPOOL_FLOAT16 (0), CLPOOL_FLOAT32 (1), CLPOOL_FLOAT64 (2)")
    }
  }

  static func layout(_ value: Int32) throws -> Layout {
    switch value {
    case 0: return .channelsFirst
    case 1: return .channelsLast
    default: throw CLPoolError.invalidArgument("layout \(value) is not CLPOOL_CHANNELS_FIRST (0) or CLPOOL_CHANNELS_LAST (1)")
    }
  }

  static func weightLayout(_ value: Int32) throws -> WeightLayout {
    switch value {
    case 0: return .inOut
    case 1: return .outIn
    default: throw CLPoolError.invalidArgument("weight layout \(value) is not CLPOOL_IN_OUT (0) or CLPOOL_OUT_IN (1)")
    }
  }

  static func activation(_ value: Int32) throws -> Activation {
    let activations: [Activation] = [.none, .relu, .sigmoid, .softmax]
    guard (0..<Int32(activations.count)).contains(value) else {
      throw CLPoolError.invalidArgument("activation \(value) is not NONE (0), RELU (1), SIGMOID (2) or SOFTMAX (3)")
    }
    return activations[Int(value)]
  }

  static func text(_ pointer: UnsafePointer<CChar>?) -> String? { pointer.map { String(cString: $0) } }

  /// The bytes of `elements` elements of `width` bytes at `pointer`, after checking that the size
  /// is representable, that a non-empty array is not NULL, and that it is aligned to its elements.
  static func bytes(_ pointer: UnsafeRawPointer?, elements: Int, width: Int, _ what: String) throws -> UnsafeRawBufferPointer {
    let (count, overflow) = elements.multipliedReportingOverflow(by: width)
    guard !overflow else { throw CLPoolError.sizeLimit("\(what) has \(elements) elements, more bytes than memory can address") }
    guard count > 0 else { return UnsafeRawBufferPointer(start: nil, count: 0) }
    guard let pointer else { throw CLPoolError.invalidArgument("\(what) is NULL but holds \(elements) elements") }
    guard Int(bitPattern: pointer) % width == 0 else {
      throw CLPoolError.invalidArgument("\(what) at \(pointer) is not aligned to its \(width)-byte elements")
    }
    return UnsafeRawBufferPointer(start: pointer, count: count)
  }

  static func input(_ pointer: UnsafeRawPointer?, _ shape: [Int], _ type: ScalarType, _ what: String) throws
    -> UnsafeRawBufferPointer
  {
    try bytes(pointer, elements: try Tensor.elementCount(of: shape), width: type.byteWidth, what)
  }

  static func output(_ pointer: UnsafeMutableRawPointer?, elements: Int, _ type: ScalarType, _ what: String) throws
    -> UnsafeMutableRawBufferPointer
  {
    UnsafeMutableRawBufferPointer(mutating: try bytes(pointer, elements: elements, width: type.byteWidth, what))
  }
}
