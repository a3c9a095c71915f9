/// Every error the library throws. Messages are one line and name the problem and the value.
public enum CLPoolError: Error, Equatable, CustomStringConvertible {
  /// A tensor shape that the operation cannot take (wrong rank, mismatched sizes, empty extent).
  case invalidShape(String)
  /// An argument or option value outside its domain.
  case invalidArgument(String)
  /// An input file that cannot be read or is malformed; the message names the file.
  case invalidInput(String)
  /// A malformed `CLPOOL_*` environment variable or backend/device selection.
  case invalidConfiguration(String)
  /// A request larger than the device or the host can hold; the message names the limit.
  case sizeLimit(String)
  /// The requested backend or device is not available here; the message says why.
  case unavailable(String)
  /// An OpenCL call failed.
  case openCL(OpenCLError)

  public var description: String {
    switch self {
    case .invalidShape(let message), .invalidArgument(let message), .invalidInput(let message),
      .invalidConfiguration(let message), .sizeLimit(let message), .unavailable(let message):
      return message
    case .openCL(let error):
      return error.description
    }
  }

  /// True for errors caused by the caller's input or configuration (the CLI exits 2), false for
  /// device and runtime failures (exit 1).
  public var isUsageError: Bool {
    switch self {
    case .invalidShape, .invalidArgument, .invalidInput, .invalidConfiguration, .sizeLimit:
      return true
    case .unavailable, .openCL: return false
    }
  }

  /// `text` (from a file: a header, a label) with its control characters escaped (`\u{1B}`), so
  /// that printing it neither breaks a one-line message nor sends a terminal escape sequence.
  public static func printable(_ text: String) -> String {
    text.unicodeScalars.map { $0.properties.generalCategory == .control ? $0.escaped(asASCII: true) : String($0) }.joined()
  }
}
