import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Runs `montana` subcommands the way an operator types them (`alliance init`, `node init`,
/// `alliance endorse`, `node link`, `subscription create`, `pass issue`, `node deregister`,
/// `status`), each as a child process with its output in files, bounded in time.
enum FederationCLI {
    /// A command that has not finished after 60 s is killed: key generation and signing take well
    /// under a second, a deregistration dials every member with a 10 s timeout each; 60 s covers
    /// a loaded 2-core machine that also runs the federation.
    static let timeout: TimeInterval = 60

    struct Output: CustomStringConvertible {
        let arguments: [String]
        let status: Int32
        let stdout: String
        let stderr: String

        var description: String {
            "montana \(arguments.joined(separator: " ")) -> status \(status)\n--- stdout ---\n\(stdout.suffix(3000))\n--- stderr ---\n\(stderr.suffix(3000))"
        }
    }

    private static let counter = LockedCounter()

    /// Runs `montana ARGUMENTS` with its output under `logDirectory`; never throws for a non-zero
    /// status (the caller decides), only when the command cannot run or does not end in time.
    static func run(_ arguments: [String], logDirectory: String) throws -> Output {
        let montana = try Paths.montana()
        let name = "cli-\(counter.next())-\(arguments.prefix(2).joined(separator: "-"))"
        let child = try ChildProcess(name: name, executable: montana, arguments: arguments, logDirectory: logDirectory)
        guard let status = child.waitForExit(timeout: timeout) else {
            let tail = child.outputTail()
            child.stop(grace: 1)
            throw E2EError("montana \(arguments.joined(separator: " ")) did not finish within \(Int(timeout)) s\n\(tail)")
        }
        return Output(arguments: arguments, status: status, stdout: child.stdout, stderr: child.stderr)
    }

    /// Runs a command that must succeed; returns its stdout.
    @discardableResult
    static func check(_ arguments: [String], logDirectory: String) throws -> String {
        let output = try run(arguments, logDirectory: logDirectory)
        guard output.status == 0 else { throw E2EError("a CLI step failed: \(output)") }
        return output.stdout
    }

    /// The value after `label` on the first stdout line that starts with it (`node_id: …`).
    static func field(_ label: String, in text: String) throws -> String {
        for line in text.split(whereSeparator: \.isNewline) {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.hasPrefix(label) {
                return trimmed.dropFirst(label.count).trimmingCharacters(in: .whitespaces)
            }
        }
        throw E2EError("no \"\(label)\" line in:\n\(text)")
    }
}

/// A thread-safe sequence number (names of CLI runs, so their log files never collide).
final class LockedCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var value = 0

    func next() -> Int {
        lock.lock()
        defer { lock.unlock() }
        value += 1
        return value
    }
}

/// Edits the TOML files `montana node init` and `montana client init` write, as a user would
/// with an editor: a key is replaced where it stands (also a commented-out `# key = …` line of
/// the template), added under its section header otherwise, and a missing section is appended.
enum TOMLEdit {
    /// A TOML basic string (paths and labels here never hold control characters).
    static func string(_ value: String) -> String {
        "\"" + value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
    }

    static func array(_ values: [String]) -> String {
        "[" + values.map(string).joined(separator: ", ") + "]"
    }

    /// Sets `key = value` (value already in TOML syntax) in `[section]`.
    static func set(_ text: String, section: String, key: String, value: String) -> String {
        var lines = text.components(separatedBy: "\n")
        let header = "[\(section)]"
        guard let start = lines.firstIndex(where: { $0.trimmingCharacters(in: .whitespaces) == header }) else {
            return text + (text.hasSuffix("\n") ? "" : "\n") + "\n\(header)\n\(key) = \(value)\n"
        }
        var end = lines.count
        for i in (start + 1)..<lines.count where lines[i].trimmingCharacters(in: .whitespaces).hasPrefix("[") {
            end = i
            break
        }
        let line = "\(key) = \(value)"
        for i in (start + 1)..<end where defines(lines[i], key: key) {
            lines[i] = line
            return lines.joined(separator: "\n")
        }
        lines.insert(line, at: start + 1)
        return lines.joined(separator: "\n")
    }

    /// Whether `line` is `key = …` or its commented-out template form `# key = …`.
    private static func defines(_ line: String, key: String) -> Bool {
        var rest = Substring(line.trimmingCharacters(in: .whitespaces))
        if rest.hasPrefix("#") { rest = rest.dropFirst().drop(while: { $0 == " " }) }
        guard rest.hasPrefix(key) else { return false }
        return rest.dropFirst(key.count).drop(while: { $0 == " " }).hasPrefix("=")
    }

    /// Applies `edits` (section, key, TOML value) to the file at `path`.
    static func apply(_ edits: [(section: String, key: String, value: String)], to path: String) throws {
        var text = try String(contentsOfFile: path, encoding: .utf8)
        for edit in edits { text = set(text, section: edit.section, key: edit.key, value: edit.value) }
        try text.write(toFile: path, atomically: true, encoding: .utf8)
    }
}

/// Loopback sockets on any 127.x address (the support in `Net` binds 127.0.0.1 only).
enum FederationNet {
    /// A free TCP port on `host`: bind port 0 there, read it back, release it.
    static func freePort(host: String) throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw E2EError("socket() failed: errno \(errno)") }
        defer { close(fd) }
        var addr = address(host, port: 0)
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) == 0 && getsockname(fd, $0, &len) == 0 }
        }
        guard ok else { throw E2EError("could not bind a free port on \(host): errno \(errno)") }
        return Int(UInt16(bigEndian: addr.sin_port))
    }

    static func canConnect(host: String, port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var addr = address(host, port: port)
        return withUnsafePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
    }

    private static func address(_ host: String, port: Int) -> sockaddr_in {
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr(host)
        addr.sin_port = in_port_t(UInt16(clamping: port).bigEndian)
        return addr
    }

    /// Stops processes an earlier run of these tests left behind when it crashed before its
    /// tearDown: their command lines name a directory `montana-e2e-fed-<pid>-…` whose pid is gone.
    static func reapOrphans(marker: String = FederationRoot.marker) {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        var orphans: [Int32] = []
        for pid in entries.compactMap(Int32.init) {
            let cmd = ProcessKiller.commandLine(pid)
            guard let range = cmd.range(of: marker + "-") else { continue }
            guard let owner = Int32(cmd[range.upperBound...].prefix { $0.isNumber }) else { continue }
            if owner != getpid() && !ProcessKiller.isAlive(owner) { orphans.append(pid) }
        }
        ProcessKiller.stop(orphans, expecting: marker, grace: 3)
    }
}

/// Where a federation's files live.
enum FederationRoot {
    /// Directory prefix of every federation; the test process's pid follows it.
    static let marker = "montana-e2e-fed"
}
