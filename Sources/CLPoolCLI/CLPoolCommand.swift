import ArgumentParser
import CLPool
import Foundation

/// `clpool`: the classifier-head operations on the command line. No compute logic lives here;
/// every subcommand parses, calls the library, and reports.
@main
struct CLPoolCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "clpool",
    abstract: "Global average/max pooling and dense layers on OpenCL devices and the CPU.",
    discussion: """
      Each subcommand has its own help, with an example: clpool help pool. Exit status: 0 success, \
      1 a check or the device failed, 2 bad usage or input; an error is one line on stderr (with \
      --json also a JSON object on stdout).
      """,
    subcommands: [
      SelfTestCommand.self, DevicesCommand.self, PoolCommand.self, DenseCommand.self, HeadCommand.self,
      CamCommand.self, BenchCommand.self,
    ])

  /// Runs the command line; every error ends here, in `report`.
  static func main() {
    StandardStreams.occupyClosedDescriptors()  // before any file is opened
    OutputFile.removeTemporariesOnSignals()  // an interrupted run leaves no temporary file
    signal(SIGXFSZ, SIG_IGN)  // a write past `ulimit -f` fails with EFBIG, reported in one line
    // ArgumentParser answers `help NAME` for an unknown NAME with the overview and status 0.
    let arguments = CommandLine.arguments.dropFirst()
    let names = configuration.subcommands.map { $0._commandName }
    if arguments.first == "help", let name = arguments.dropFirst().first, !names.contains(name), name != "help", !name.hasPrefix("-") {
      write("no subcommand '\(name)'; subcommands: \(names.joined(separator: ", ")) (see 'clpool help')", status: 2, buildLog: nil)
      Foundation.exit(2)
    }
    do {
      var command = try parseAsRoot()
      try command.run()
      try checkStandardOutput()
    } catch let exit as ExitCode {
      Foundation.exit(exit.rawValue)  // already reported (a failed selftest, another MPI rank's error)
    } catch {
      if !(error is CLPoolError) && exitCode(for: error) == .success {  // --help, --version
        print(fullMessage(for: error))
        do {
          try checkStandardOutput()
        } catch {
          Foundation.exit(report(error))
        }
        Foundation.exit(0)
      }
      Foundation.exit(report(error))
    }
  }

  /// What was printed reached stdout: a full disk or a closed stdout is an error, as `ls` and
  /// `cat` make it, not a silent exit 0.
  static func checkStandardOutput() throws {
    let code = StandardStreams.flushOutput()
    guard code == 0 else { throw CLPoolError.invalidInput("stdout: cannot write (\(String(cString: strerror(code))))") }
  }

  /// Reports `error` (`write`) and returns the status clpool ends with for it.
  static func report(_ error: any Error) -> Int32 {
    var log: String?
    if case .openCL(let failure) = error as? CLPoolError { log = failure.buildLog }
    let status = status(for: error)
    write(message(describing: error), status: status, buildLog: log)
    return status
  }

  /// The exit status `error` ends clpool with, per SPEC.md: 1 a check or the device failed, 2 bad
  /// usage or input (ArgumentParser's own errors included, which it would end with 64).
  static func status(for error: any Error) -> Int32 {
    switch error {
    case let error as CLPoolError: return error.isUsageError ? 2 : 1
    case let exit as ExitCode: return exit.rawValue
    default: return exitCode(for: error) == .success ? 0 : 2
    }
  }

  /// The one line that reports `error`. A usage mistake (a parse error, an option value out of its
  /// domain) also says where the subcommand's help is; a problem with a file or a device does not,
  /// since the help cannot fix it.
  static func message(describing error: any Error) -> String {
    let hint = " (see '\(helpCommand)')"
    switch error {
    case let error as CLPoolError:
      switch error {
      case .invalidArgument, .invalidConfiguration: return error.description + hint
      default: return error.description
      }
    default:
      // ArgumentParser lists valid values on lines of their own ("- nchw"); fold them into one.
      let lines = message(for: error).split(separator: "\n").map(String.init)
      let choices = lines.dropFirst().map { $0.trimmingCharacters(in: .whitespaces) }.filter { $0.hasPrefix("- ") }
        .map { String($0.dropFirst(2)) }
      let first = lines.first ?? "\(error)"
      return first + (choices.isEmpty ? "" : " " + choices.joined(separator: ", ")) + hint
    }
  }

  /// `clpool help <subcommand>` for the subcommand on the command line, else `clpool help`.
  static var helpCommand: String {
    let names = configuration.subcommands.map { $0._commandName }
    let subcommand = commandLineOptions.first { names.contains($0) }
    return subcommand.map { "clpool help \($0)" } ?? "clpool help"
  }

  /// The arguments before a `--` terminator (after it, everything is a file name).
  static var commandLineOptions: ArraySlice<String> {
    CommandLine.arguments.dropFirst().prefix { $0 != "--" }
  }

  /// One line on stderr, and with `--json` the same error as a JSON object on stdout (so a script
  /// reading stdout sees the failure too); with `--verbose`, a failed OpenCL build's whole log
  /// follows the line.
  static func write(_ message: String, status: Int32, buildLog: String? = nil) {
    let firstLine = String(message.split(separator: "\n", omittingEmptySubsequences: false).first ?? "")
    var text = "clpool: \(firstLine)\n"
    if let buildLog, commandLineOptions.contains("--verbose") { text += buildLog + "\n" }
    writeToStandardError(text)
    if commandLineOptions.contains("--json") {
      let encoder = JSONEncoder()
      encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
      if let json = try? encoder.encode(ErrorReport(error: .init(message: firstLine, exit: status))) {
        print(String(decoding: json, as: UTF8.self))
      }
    }
    fflush(nil)
  }

  /// `{"error": {"exit": 2, "message": "…"}}`.
  private struct ErrorReport: Encodable {
    struct Body: Encodable {
      let message: String
      let exit: Int32
    }
    let error: Body
  }
}
