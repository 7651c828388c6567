import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A child process started by a test, with stdout and stderr in files (no pipes to drain, no
/// deadlocks on big output). Stopped by PID: SIGTERM, then SIGKILL after a grace period.
final class ChildProcess: @unchecked Sendable {
    let name: String
    let process: Process
    let stdoutPath: String
    let stderrPath: String

    var pid: Int32 { process.processIdentifier }
    var isRunning: Bool { process.isRunning }

    /// The environment children get: the test's own, minus every proxy variable, so nothing
    /// (curl above all) is routed through a proxy the test did not choose.
    static var cleanEnvironment: [String: String] {
        var env = ProcessInfo.processInfo.environment
        for key in ["http_proxy", "https_proxy", "ftp_proxy", "all_proxy", "no_proxy", "socks_proxy", "HTTP_PROXY",
                    "HTTPS_PROXY", "FTP_PROXY", "ALL_PROXY", "NO_PROXY", "SOCKS_PROXY", "CURL_HOME"] {
            env[key] = nil
        }
        return env
    }

    /// Starts `executable` with `arguments`; output goes to `<logDirectory>/<name>.stdout|.stderr`.
    init(name: String, executable: String, arguments: [String], logDirectory: String,
         currentDirectory: String? = nil) throws {
        self.name = name
        stdoutPath = (logDirectory as NSString).appendingPathComponent("\(name).stdout")
        stderrPath = (logDirectory as NSString).appendingPathComponent("\(name).stderr")
        _ = FileManager.default.createFile(atPath: stdoutPath, contents: nil)
        _ = FileManager.default.createFile(atPath: stderrPath, contents: nil)
        process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.environment = Self.cleanEnvironment
        if let currentDirectory { process.currentDirectoryURL = URL(fileURLWithPath: currentDirectory) }
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle(forWritingAtPath: stdoutPath)
        process.standardError = FileHandle(forWritingAtPath: stderrPath)
        try process.run()
    }

    var stdout: String { (try? String(contentsOfFile: stdoutPath, encoding: .utf8)) ?? "" }
    var stderr: String { (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? "" }

    /// The last part of both outputs, for failure messages.
    func outputTail(_ count: Int = 3000) -> String {
        "--- \(name) stdout ---\n\(stdout.suffix(count))\n--- \(name) stderr ---\n\(stderr.suffix(count))"
    }

    /// Waits for the process to exit; returns its status, or nil if it still runs after `timeout`.
    func waitForExit(timeout: TimeInterval) -> Int32? {
        guard poll(timeout: timeout, interval: 0.02, { !process.isRunning }) else { return nil }
        process.waitUntilExit()
        return process.terminationStatus
    }

    /// SIGTERM, then SIGKILL after `grace`; reaps the child.
    func stop(grace: TimeInterval = 5) {
        guard process.isRunning else { return }
        ProcessKiller.stop([pid], grace: grace)
        if process.isRunning { kill(pid, SIGKILL) }
        process.waitUntilExit()
    }
}

/// Stops processes by PID, including ones the test did not start directly (the demo's cities).
enum ProcessKiller {
    /// True while `pid` runs (a zombie counts as gone: it only waits to be reaped by its parent).
    static func isAlive(_ pid: Int32) -> Bool {
        guard pid > 0, kill(pid, 0) == 0 else { return false }
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return true }
        let state = stat[stat.index(after: close)...].trimmingCharacters(in: .whitespaces).first
        return state != "Z" && state != "X"
    }

    /// The command line of `pid` (NUL separators as spaces), or "" when it is gone.
    static func commandLine(_ pid: Int32) -> String {
        guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return "" }
        return String(decoding: data.map { $0 == 0 ? 0x20 : $0 }, as: UTF8.self)
    }

    /// SIGTERM to every live pid whose command line contains `expecting` (guards against a
    /// recycled pid), then SIGKILL to whatever is still alive after `grace`.
    static func stop(_ pids: [Int32], expecting: String? = nil, grace: TimeInterval = 5) {
        let targets = pids.filter { pid in
            isAlive(pid) && (expecting.map { commandLine(pid).contains($0) } ?? true)
        }
        guard !targets.isEmpty else { return }
        for pid in targets { kill(pid, SIGTERM) }
        poll(timeout: grace, interval: 0.05) { targets.allSatisfy { !isAlive($0) } }
        for pid in targets where isAlive(pid) { kill(pid, SIGKILL) }
        poll(timeout: 2, interval: 0.05) { targets.allSatisfy { !isAlive($0) } }
    }

    static func killHard(_ pid: Int32) {
        if isAlive(pid) { kill(pid, SIGKILL) }
    }
}
