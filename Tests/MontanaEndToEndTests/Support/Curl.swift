import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// What one curl run did.
struct CurlResult: CustomStringConvertible {
    let arguments: [String]
    let exitCode: Int32
    let stdout: Data
    let stderr: String
    let elapsed: TimeInterval
    /// Our own watchdog had to kill curl (curl's --max-time did not end it).
    let killed: Bool

    var stdoutText: String { String(decoding: stdout, as: UTF8.self) }
    var succeeded: Bool { exitCode == 0 && !killed }

    var description: String {
        let shown = stdout.count > 400 ? "\(stdout.count) bytes" : "\"\(stdoutText)\""
        return "curl \(arguments.joined(separator: " ")) -> exit \(exitCode)\(killed ? " (killed by the test's watchdog)" : "") "
            + "in \(String(format: "%.2f", elapsed)) s; stdout \(shown); stderr \"\(stderr.trimmingCharacters(in: .whitespacesAndNewlines))\""
    }
}

/// Runs the real /usr/bin/curl. `-q` (first, so no .curlrc is read) and `-sS` always; the
/// child environment has no proxy variables, so only the proxy a test names is used.
enum Curl {
    static let path = "/usr/bin/curl"

    /// curl exit codes the tests name.
    static let couldNotConnect: Int32 = 7
    static let timedOut: Int32 = 28
    static let proxyError: Int32 = 97

    /// Runs curl with `--max-time timeout`; a watchdog kills it 5 s later if it still runs.
    static func run(_ arguments: [String], timeout: TimeInterval = 30) throws -> CurlResult {
        let directory = NSTemporaryDirectory()
        let tag = UUID().uuidString
        let outPath = (directory as NSString).appendingPathComponent("curl-\(tag).out")
        let errPath = (directory as NSString).appendingPathComponent("curl-\(tag).err")
        _ = FileManager.default.createFile(atPath: outPath, contents: nil)
        _ = FileManager.default.createFile(atPath: errPath, contents: nil)
        defer {
            try? FileManager.default.removeItem(atPath: outPath)
            try? FileManager.default.removeItem(atPath: errPath)
        }
        let full = ["-q", "-sS", "--max-time", String(format: "%.1f", timeout)] + arguments
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = full
        process.environment = ChildProcess.cleanEnvironment
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle(forWritingAtPath: outPath)
        process.standardError = FileHandle(forWritingAtPath: errPath)
        let start = Date()
        try process.run()
        let exited = poll(timeout: timeout + 5, interval: 0.01) { !process.isRunning }
        if !exited { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
        let elapsed = Date().timeIntervalSince(start)
        return CurlResult(arguments: full, exitCode: process.terminationStatus,
                          stdout: FileManager.default.contents(atPath: outPath) ?? Data(),
                          stderr: (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? "",
                          elapsed: elapsed, killed: !exited)
    }

    /// Arguments for fetching through the SOCKS5 port with names resolved at the exit;
    /// `user` (e.g. `country-de`) picks the exit.
    static func socks(_ port: Int, user: String? = nil) -> [String] {
        var args = ["--socks5-hostname", "127.0.0.1:\(port)"]
        if let user { args += ["-U", "\(user):x"] }
        return args
    }

    /// Arguments for fetching through the HTTP proxy port; `user` picks the exit.
    static func httpProxy(_ port: Int, user: String? = nil) -> [String] {
        ["--proxy", user.map { "http://\($0):x@127.0.0.1:\(port)" } ?? "http://127.0.0.1:\(port)"]
    }

    /// GET a URL directly (no proxy), e.g. an admin endpoint; fails on HTTP errors.
    static func get(_ url: String, timeout: TimeInterval = 10) throws -> CurlResult {
        try run(["--fail", url], timeout: timeout)
    }
}
