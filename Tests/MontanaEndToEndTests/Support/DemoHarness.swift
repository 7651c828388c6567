import Foundation
import XCTest

/// One `montana demo` process (3 cities as child processes, a site, a client with SOCKS5 and
/// HTTP ports) on free loopback ports, described by its status JSON. `stop()` ends the demo
/// and each city by PID (SIGTERM, then SIGKILL after a grace period).
final class DemoHarness: @unchecked Sendable {
    struct Options {
        var strictExitPolicy = false
        var allowList = false
        /// More `montana demo` arguments (e.g. `--dns-server`), appended as given.
        var extraArguments: [String] = []
    }

    let directory: String
    let process: ChildProcess
    let status: DemoStatus
    private var stopped = false

    var socksPort: Int { status.client.socks.port }
    var httpPort: Int { status.client.http.port }
    var siteURL: String { "http://127.0.0.1:\(status.site.port)" }

    /// Starts a demo and waits (bounded) for its status JSON.
    static func start(_ options: Options = Options(), timeout: TimeInterval = 90) throws -> DemoHarness {
        let montana = try Paths.montana()
        reapOrphans()
        let directory = try Paths.makeTemporaryDirectory("montana-e2e-demo")
        let statusPath = (directory as NSString).appendingPathComponent("status.json")
        var arguments = ["demo", "--socks", "127.0.0.1:\(try Net.freePort())", "--http", "127.0.0.1:\(try Net.freePort())",
                         "--status-json", statusPath, "--dir", (directory as NSString).appendingPathComponent("alliance"),
                         "--quiet"]
        if options.strictExitPolicy { arguments.append("--strict-exit-policy") }
        if options.allowList { arguments.append("--allow-list") }
        arguments += options.extraArguments
        let process = try ChildProcess(name: "demo", executable: montana, arguments: arguments, logDirectory: directory)
        var status: DemoStatus?
        var lastError = ""
        let ready = poll(timeout: timeout, interval: 0.1) {
            guard process.isRunning else { return true }
            guard let data = FileManager.default.contents(atPath: statusPath), !data.isEmpty else { return false }
            do {
                status = try JSONDecoder().decode(DemoStatus.self, from: data)
                return true
            } catch {
                lastError = "\(error)" // the file may be half-written; try again
                return false
            }
        }
        guard let status else {
            let why = !process.isRunning ? "the demo exited with status \(process.waitForExit(timeout: 1) ?? -1)"
                : ready ? "unreadable status JSON: \(lastError)" : "no status JSON within \(Int(timeout)) s \(lastError)"
            let tail = process.outputTail()
            process.stop()
            // Cities may have started before the failure; the demo stops them, but be sure.
            ProcessKiller.stop(Self.cityPIDs(in: directory), expecting: "montana", grace: 2)
            Paths.removeTemporaryDirectory(directory)
            throw E2EError("montana demo did not come up: \(why)\n\(tail)")
        }
        return DemoHarness(directory: directory, process: process, status: status)
    }

    private init(directory: String, process: ChildProcess, status: DemoStatus) {
        self.directory = directory
        self.process = process
        self.status = status
    }

    /// Stops demos left behind by an earlier test run that crashed (its tearDown never ran):
    /// their directory names carry the test process's pid, which is gone.
    static func reapOrphans() {
        let marker = "montana-e2e-demo-"
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        var orphans: [Int32] = []
        for pid in entries.compactMap(Int32.init) {
            let cmd = ProcessKiller.commandLine(pid)
            guard cmd.contains("montana"), cmd.contains(" demo "), let range = cmd.range(of: marker) else { continue }
            let owner = Int32(cmd[range.upperBound...].prefix { $0.isNumber }) ?? 0
            if owner != getpid() && !ProcessKiller.isAlive(owner) { orphans.append(pid) }
        }
        ProcessKiller.stop(orphans, expecting: marker, grace: 5)
    }

    /// PIDs of `montana node` processes whose config lives under `directory` (for cleanup
    /// when the status JSON never appeared).
    private static func cityPIDs(in directory: String) -> [Int32] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap(Int32.init).filter { pid in
            let cmd = ProcessKiller.commandLine(pid)
            return cmd.contains("montana") && cmd.contains(" node ") && cmd.contains(directory)
        }
    }

    /// Stops the demo and every city by PID. Safe to call twice.
    func stop() {
        guard !stopped else { return }
        stopped = true
        let cities = status.cities.map(\.pid)
        // The demo stops its cities on SIGTERM; whatever survives the grace period is killed.
        ProcessKiller.stop([process.pid] + cities, expecting: "montana", grace: 5)
        process.stop(grace: 1)
        Paths.removeTemporaryDirectory(directory)
    }

    /// Which of the demo's processes still run (something outside the test may have stopped
    /// them: the demo prints "stopping the demo alliance" when it gets SIGINT/SIGTERM).
    var liveness: String {
        var parts: [String] = []
        if process.isRunning {
            parts.append("demo pid \(process.pid) running")
        } else {
            let how = process.process.terminationReason == .uncaughtSignal ? "signal" : "status"
            parts.append("demo pid \(process.pid) is GONE (\(how) \(process.process.terminationStatus))")
        }
        for city in status.cities {
            parts.append("\(city.name) pid \(city.pid) \(ProcessKiller.isAlive(city.pid) ? "running" : "is GONE")")
        }
        return parts.joined(separator: ", ")
    }

    /// The demo's output and every city's log tail, for failure messages.
    func diagnostics(_ count: Int = 2000) -> String {
        var parts = ["processes: \(liveness)", process.outputTail(count)]
        for city in status.cities {
            let log = (try? String(contentsOfFile: city.log, encoding: .utf8)) ?? "(no log)"
            parts.append("--- \(city.name) log ---\n\(log.suffix(count))")
            // Which side reset streams and why (an app connection that ended early).
            if let metrics = try? PrometheusText.scrape(city) {
                parts.append("--- \(city.name) stream resets ---\n\(metrics.lines("montana_mux_stream_resets_total"))")
            }
        }
        return parts.joined(separator: "\n")
    }

    /// Fetches `url` through the SOCKS port (names resolved at the exit).
    func curlSOCKS(_ url: String, user: String? = nil, extra: [String] = [], timeout: TimeInterval = 30) throws -> CurlResult {
        try Curl.run(Curl.socks(socksPort, user: user) + extra + [url], timeout: timeout)
    }

    /// The client's `/status` `circuits` (one per session to an exit).
    func clientStatusCircuits() throws -> [[String: Any]] {
        guard let admin = status.client.admin else { throw E2EError("the demo's client has no admin port") }
        let answer = try Curl.get("http://\(admin.host):\(admin.port)/status")
        guard let doc = try JSONSerialization.jsonObject(with: answer.stdout) as? [String: Any],
              let circuits = doc["circuits"] as? [[String: Any]] else { throw E2EError("no circuits in the client's /status: \(answer)") }
        return circuits
    }

    /// Fetches `url` through the HTTP proxy port.
    func curlHTTP(_ url: String, user: String? = nil, extra: [String] = [], timeout: TimeInterval = 30) throws -> CurlResult {
        try Curl.run(Curl.httpProxy(httpPort, user: user) + extra + [url], timeout: timeout)
    }
}

/// The byte at `offset` of every demo-site `/bytes/N` response (DemoSite.patternByte).
func demoSitePattern(count: Int) -> [UInt8] {
    (0..<count).map { offset in UInt8(truncatingIfNeeded: (offset &* 2654435761) >> 13) }
}
