import Foundation

/// A `montana client` as a user sets it up: `montana client init DIR` (account key and a
/// commented client.toml), the proxy ports edited into client.toml, then
/// `montana client --config DIR/client.toml --subscription SUB --admin 127.0.0.1:P` as a child
/// process, stopped by PID. (`montana client` has no `--socks`/`--http` flags: the ports are
/// client.toml's `socks` and `http`.)
final class FederationClient: @unchecked Sendable {
    /// How long the client may take to listen on its three ports.
    static let startTimeout: TimeInterval = 30

    let name: String
    let directory: String
    let configPath: String
    let socksPort: Int
    let httpPort: Int
    let adminPort: Int
    /// The account id `montana client init` printed (64 hex digits).
    let accountID: String
    private(set) var process: ChildProcess?

    var adminAddress: String { "127.0.0.1:\(adminPort)" }

    /// `montana client init` and the port edits; `clientKeys` are more `[client]` keys
    /// (TOML values, e.g. `pass`). Does not start the client.
    init(name: String, root: String, clientKeys: [(String, String)] = []) throws {
        self.name = name
        directory = (root as NSString).appendingPathComponent(name)
        configPath = (directory as NSString).appendingPathComponent("client.toml")
        socksPort = try Net.freePort()
        httpPort = try Net.freePort()
        adminPort = try Net.freePort()
        let out = try FederationCLI.check(["client", "init", directory], logDirectory: root)
        accountID = try FederationCLI.field("account_id:", in: out)
        var edits: [(section: String, key: String, value: String)] = [
            ("client", "socks", TOMLEdit.string("127.0.0.1:\(socksPort)")),
            ("client", "http", TOMLEdit.string("127.0.0.1:\(httpPort)")),
        ]
        for (key, value) in clientKeys { edits.append(("client", key, value)) }
        try TOMLEdit.apply(edits, to: configPath)
    }

    /// Starts the client on `subscription` (a file) with more flags (`--advisory-exits`) and waits
    /// until its ports accept.
    func start(subscription: String, arguments: [String] = []) throws {
        guard process == nil else { return }
        let child = try ChildProcess(name: "client", executable: try Paths.montana(),
                                     arguments: ["client", "--config", configPath, "--subscription", subscription,
                                                 "--admin", adminAddress] + arguments,
                                     logDirectory: directory)
        process = child
        let up = poll(timeout: Self.startTimeout, interval: 0.05) {
            !child.isRunning || [socksPort, httpPort, adminPort].allSatisfy { Net.canConnect($0) }
        }
        guard up, child.isRunning else {
            throw E2EError("montana client \(name) did not listen within \(Int(Self.startTimeout)) s:\n\(diagnostics())")
        }
    }

    func stop() {
        process?.stop(grace: 5)
    }

    /// Starts the stopped client again on the same directory (its caches and key stay).
    func restart(subscription: String, arguments: [String] = []) throws {
        if let process, process.isRunning { throw E2EError("client \(name) is still running") }
        process = nil
        try start(subscription: subscription, arguments: arguments)
    }

    func directoryView() throws -> DirectoryDocument {
        try DirectoryDocument.fetch(admin: adminAddress)
    }

    /// Fetches `url` through the SOCKS5 port, names resolved at the exit; `user` picks the exit.
    func curlSOCKS(_ url: String, user: String? = nil, extra: [String] = [], timeout: TimeInterval = 30) throws -> CurlResult {
        try Curl.run(Curl.socks(socksPort, user: user) + extra + [url], timeout: timeout)
    }

    /// Fetches `url` through the HTTP proxy port (`-i`: the status line and headers come too).
    func curlHTTP(_ url: String, user: String? = nil, extra: [String] = [], timeout: TimeInterval = 30) throws -> CurlResult {
        try Curl.run(Curl.httpProxy(httpPort, user: user) + extra + [url], timeout: timeout)
    }

    func diagnostics(_ count: Int = 2500) -> String {
        let state = process.map { $0.isRunning ? "running, pid \($0.pid)" : "GONE (status \($0.process.terminationStatus))" } ?? "not started"
        return "client \(name) \(state)\n" + (process?.outputTail(count) ?? "")
    }
}

/// The test's web site: the project's `FileServer` (python3 http.server), whose request log on
/// stderr names the source address of every request, i.e. the exit's egress address.
extension FileServer {
    /// The source addresses of the logged requests whose line contains `tag`.
    func sources(tagged tag: String) -> [String] {
        process.stderr.split(whereSeparator: \.isNewline).filter { $0.contains(tag) }
            .compactMap { $0.split(separator: " ").first.map(String.init) }
    }

    /// Waits (≤ 5 s: the server logs as it answers) until a request with `tag` was logged.
    func waitForSource(tagged tag: String) -> String? {
        var found: String?
        poll(timeout: 5, interval: 0.05) {
            found = sources(tagged: tag).first
            return found != nil
        }
        return found
    }
}

/// What came back through the HTTP proxy with `curl -i`: the status code and the body.
struct HTTPAnswer: CustomStringConvertible {
    let status: Int?
    let body: String

    init(_ result: CurlResult) {
        let text = result.stdoutText
        let head = text.components(separatedBy: "\r\n\r\n").first ?? ""
        status = head.split(separator: " ").dropFirst().first.flatMap { Int($0) }
        body = text.range(of: "\r\n\r\n").map { String(text[$0.upperBound...]) } ?? ""
    }

    var description: String { "HTTP \(status.map(String.init) ?? "?"): \(body.trimmingCharacters(in: .whitespacesAndNewlines))" }
}
