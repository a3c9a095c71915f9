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
    subcommands: [
      SelfTestCommand.self, DevicesCommand.self, PoolCommand.self, DenseCommand.self, HeadCommand.self,
      CamCommand.self, BenchCommand.self,
    ])

  /// Exit status per SPEC.md: 0 success, 1 a check or the device failed, 2 bad usage or input;
  /// always one line on stderr, never a stack trace.
  static func main() {
    do {
      var command = try parseAsRoot()
      try command.run()
    } catch let error as CLPoolError {
      var log: String?
      if case .openCL(let failure) = error { log = failure.buildLog }
      fail(error.description, status: status(for: error), buildLog: log)
    } catch let exit as ExitCode {
      Foundation.exit(exit.rawValue)
    } catch {
      if exitCode(for: error) == .success {  // --help, --version
        print(fullMessage(for: error))
        Foundation.exit(0)
      }
      // ArgumentParser lists valid values on lines of their own ("- nchw"); fold them into one.
      let lines = self.message(for: error).split(separator: "\n").map(String.init)
      let choices = lines.dropFirst().map { $0.trimmingCharacters(in: .whitespaces) }.filter { $0.hasPrefix("- ") }.map { String($0.dropFirst(2)) }
      let first = lines.first ?? "\(error)"
      fail(first + (choices.isEmpty ? "" : " " + choices.joined(separator: ", ")) + " (see 'clpool --help')", status: 2)
    }
  }

  /// The exit status `error` ends clpool with.
  static func status(for error: any Error) -> Int32 {
    switch error {
    case let error as CLPoolError: return error.isUsageError ? 2 : 1
    case let exit as ExitCode: return exit.rawValue
    default: return exitCode(for: error).rawValue
    }
  }

  /// One line on stderr; with `--verbose`, a failed OpenCL build's whole log follows it.
  static func fail(_ message: String, status: Int32, buildLog: String? = nil) -> Never {
    let firstLine = message.split(separator: "\n", omittingEmptySubsequences: false).first ?? ""
    var text = "clpool: \(firstLine)\n"
    if let buildLog, CommandLine.arguments.contains("--verbose") { text += buildLog + "\n" }
    FileHandle.standardError.write(Data(text.utf8))
    Foundation.exit(status)
  }
}
