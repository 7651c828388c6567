import Foundation
import Logging
import MontanaClient
import MontanaCrypto
import MontanaTransport
import MontanaWire
import NIOCore
import NIOPosix

#if canImport(Glibc)
import Glibc
#endif

/// `montana demo`: a whole alliance on loopback. Each city is a real `montana node` child
/// process with its own keys and config; the demo adds a local web site and runs the client
/// (SOCKS5 + HTTP) in-process.
public final class DemoAlliance: @unchecked Sendable {
    public struct City: Sendable {
        public let name: String
        public let country: String
        public let roles: NodeRoles
    }

    public struct Options: Sendable {
        public var socks = HostPort(host: "127.0.0.1", port: 1080)
        public var http = HostPort(host: "127.0.0.1", port: 8080)
        public var sitePort = 0
        public var directory: String?
        /// Demo exits allow loopback destinations so the local site works; `strictPolicy` keeps
        /// the default exit policy (loopback refused), as a real exit has it.
        public var strictPolicy = false
        /// Exits admit only the demo client's account.
        public var allowListAdmission = false
        /// `[dns] servers` for the exits (nil: the system's resolv.conf).
        public var dnsServers: [HostPort]?
        /// `[dns] timeout_ms` for the exits (nil: the default).
        public var dnsTimeoutMilliseconds: Int?
        /// Where the demo's client connects to fronts from: 127.0.1.1 by default, another /24
        /// than 127.0.0.x, so traffic from 127.0.0.x (a flood, a probe) is told apart from the
        /// user's. nil lets the OS choose.
        public var clientSource: ClientSourceAddress? = DemoAlliance.defaultClientSource
        public init() {}
    }

    public static let defaultClientSource = try? ClientSourceAddress(parsing: "127.0.1.1")

    public static let cities = [
        City(name: "berlin", country: "DE", roles: [.front, .exit]),
        City(name: "amsterdam", country: "NL", roles: [.front, .exit]),
        City(name: "warsaw", country: "PL", roles: [.front]),
    ]

    struct RunningCity {
        let city: City
        let identity: IdentityKey
        let kem: KEMKey
        let transit: Int
        let admin: Int
        let process: Process
        let config: String
        let log: String
    }

    let options: Options
    let logger: Logger
    let directory: String
    private var running: [RunningCity] = []
    private var proxy: LocalProxyServer?
    private var site: DemoSite?
    private let siteGroup = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    private var account: IdentityKey?
    /// The source the client really uses (the default falls back to the OS's choice where
    /// 127.0.1.1 cannot be bound).
    private var clientSource: ClientSourceAddress?

    public init(options: Options, logger: Logger) throws {
        self.options = options
        self.logger = logger
        if let dir = options.directory {
            directory = dir
        } else {
            directory = NSTemporaryDirectory() + "montana-demo-\(getpid())"
        }
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    /// A free loopback port (bound and released; the small race is acceptable for a demo).
    static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) == 0 && getsockname(fd, $0, &len) == 0 }
        }
        guard ok else { throw DemoError.noFreePort }
        return Int(UInt16(bigEndian: addr.sin_port))
    }

    static func executablePath() -> String {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    }

    public func start() async throws {
        let account = try IdentityKey.generate()
        self.account = account
        try KeyFile(kind: .account, seed: account.seed).write(to: path("client-account.key"), overwrite: true)
        // Keys and ports first: every city's config lists the others as peers.
        var prepared: [(City, IdentityKey, KEMKey, Int, Int)] = []
        for city in Self.cities {
            let identity = try IdentityKey.generate()
            let kem = try KEMKey.generate()
            try FileManager.default.createDirectory(atPath: path(city.name), withIntermediateDirectories: true)
            try KeyFile(kind: .nodeIdentity, seed: identity.seed).write(to: path("\(city.name)/identity.key"), overwrite: true)
            try KeyFile(kind: .nodeKEM, seed: kem.seed).write(to: path("\(city.name)/kem.key"), overwrite: true)
            prepared.append((city, identity, kem, try Self.freePort(), try Self.freePort()))
        }
        for (city, identity, kem, transit, admin) in prepared {
            let peers = prepared.filter { $0.0.name != city.name }
            let otherAdmins = prepared.filter { $0.0.name != city.name }.map { $0.4 }
            let config = nodeConfig(city: city, transit: transit, admin: admin, otherAdmins: otherAdmins,
                                    peers: peers.map { ($0.0, $0.1, $0.2, $0.3) }, account: account)
            let configPath = path("\(city.name)/node.toml")
            try config.write(toFile: configPath, atomically: true, encoding: .utf8)
            let logPath = path("\(city.name)/node.log")
            _ = FileManager.default.createFile(atPath: logPath, contents: nil)
            let process = Process()
            process.executableURL = URL(fileURLWithPath: Self.executablePath())
            process.arguments = ["node", "--config", configPath]
            let log = FileHandle(forWritingAtPath: logPath)
            process.standardOutput = log
            process.standardError = log
            process.standardInput = FileHandle.nullDevice
            // The city stops by itself if the demo dies without stopping it (ParentWatch).
            var environment = ProcessInfo.processInfo.environment
            environment["MONTANA_EXIT_WITH_PARENT"] = "1"
            process.environment = environment
            try process.run()
            running.append(RunningCity(city: city, identity: identity, kem: kem, transit: transit, admin: admin, process: process,
                                       config: configPath, log: logPath))
        }
        for city in running {
            try await waitForPort(city.transit, process: city.process, name: city.city.name, log: city.log)
        }
        site = try await DemoSite.start(group: siteGroup, host: "127.0.0.1", port: options.sitePort)
        let members = running.map { c in
            AllianceMember(nodeID: c.identity.nodeID, kemPublicKey: c.kem.publicKey, host: "127.0.0.1", port: c.transit,
                           country: c.city.roles.contains(.exit) ? c.city.country : nil, roles: c.city.roles, name: c.city.name)
        }
        var source = options.clientSource
        if let chosen = source, let problem = chosen.bindProblem() {
            guard chosen == Self.defaultClientSource else { throw DemoError.sourceUnusable("--client-source \(chosen): \(problem)") }
            logger.notice("the demo client connects from the OS's choice of address", metadata: ["reason": "\(problem)"])
            source = nil
        }
        clientSource = source
        let proxy = LocalProxyServer(account: account, members: members, defaultSelection: .automatic, alliance: nil, auth: nil,
                                     options: CircuitOptions(sourceAddress: source?.address), logger: logger)
        do {
            try await proxy.start([.init(kind: .socks5, host: options.socks.host, port: options.socks.port),
                                   .init(kind: .http, host: options.http.host, port: options.http.port)])
        } catch {
            throw DemoError.portInUse("\(options.socks) or \(options.http): \(error) (choose others with --socks/--http)")
        }
        self.proxy = proxy
    }

    private func path(_ name: String) -> String { (directory as NSString).appendingPathComponent(name) }

    private func nodeConfig(city: City, transit: Int, admin: Int, otherAdmins: [Int], peers: [(City, IdentityKey, KEMKey, Int)],
                            account: IdentityKey) -> String {
        var text = """
        # Generated by `montana demo` for the city \(city.name).
        [node]
        identity_key = "identity.key"
        kem_key = "kem.key"
        roles = \(city.roles.tomlArray)
        country = "\(city.country)"
        operator = "demo \(city.name)"

        [listen]
        transit = "127.0.0.1:\(transit)"
        admin = "127.0.0.1:\(admin)"

        [log]
        level = "info"

        """
        if city.roles.contains(.exit), options.dnsServers != nil || options.dnsTimeoutMilliseconds != nil {
            text += "\n[dns]\n"
            if let servers = options.dnsServers {
                text += "servers = [\(servers.map { "\"\($0)\"" }.joined(separator: ", "))]\n"
            }
            if let timeout = options.dnsTimeoutMilliseconds { text += "timeout_ms = \(timeout)\n" }
        }
        if city.roles.contains(.exit) {
            let admission = options.allowListAdmission ? "allow-list" : "any-account"
            let accounts = options.allowListAdmission ? "\"\(Hex.encode(account.accountID))\"" : ""
            let allow = options.strictPolicy ? "" : "\"127.0.0.0/8\", \"::1\""
            text += """

            [exit]
            admission = "\(admission)"
            allow_accounts = [\(accounts)]
            policy = "default-allow"
            # The demo lets its exits reach loopback so the local web site works (only
            # allow_private re-opens built-in denials; this exit's admin port and every member's
            # transit port stay denied). The other cities' admin ports share this machine's
            # loopback here, which real members never do, so they are denied by port.
            allow = []
            allow_private = [\(allow)]
            deny = [\(otherAdmins.map { "\"\($0)\"" }.joined(separator: ", "))]

            """
        }
        for (peer, identity, kem, port) in peers {
            text += "\n# \(peer.name)\n" + PeerConfiguration(nodeID: identity.nodeID, kemPublicKey: kem.publicKey,
                                                               endpoint: HostPort(host: "127.0.0.1", port: port),
                                                               country: peer.country, roles: peer.roles).tomlBlock(name: "peers")
        }
        return text
    }

    private func waitForPort(_ port: Int, process: Process, name: String, log: String) async throws {
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            guard process.isRunning else {
                let tail = (try? String(contentsOfFile: log, encoding: .utf8)).map { String($0.suffix(2000)) } ?? ""
                throw DemoError.cityFailed(name, tail)
            }
            if Self.canConnect(port) { return }
            try await Task.sleep(nanoseconds: 100_000_000)
        }
        throw DemoError.cityFailed(name, "did not listen within 30 s (see \(log))")
    }

    static func canConnect(_ port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        return withUnsafePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
    }

    // MARK: output

    public var socksPort: Int { proxy?.bound.first { $0.0 == .socks5 }?.1.port ?? options.socks.port }
    public var httpPort: Int { proxy?.bound.first { $0.0 == .http }?.1.port ?? options.http.port }
    public var sitePort: Int { site?.port ?? 0 }

    public func banner() -> String {
        let site = "http://127.0.0.1:\(sitePort)"
        var lines: [String] = []
        lines.append("Montana Alliance demo: \(running.count) cities on loopback, a local web site, and your proxy.")
        lines.append("")
        lines.append(pad("city", 11) + pad("node id", 14) + pad("roles", 12) + pad("country", 9) + pad("transit", 18) + "admin (/metrics)")
        for c in running {
            let roles = describe(c.city.roles)
            lines.append(pad(c.city.name, 11) + pad(c.identity.nodeID.short, 14) + pad(roles, 12)
                         + pad(c.city.roles.contains(.exit) ? c.city.country : "-", 9) + pad("127.0.0.1:\(c.transit)", 18) + "127.0.0.1:\(c.admin)")
        }
        lines.append("")
        lines.append("Proxy:  SOCKS5 127.0.0.1:\(socksPort)   HTTP 127.0.0.1:\(httpPort)   (exit per connection via the proxy username)")
        lines.append("Client: connects to fronts from \(clientSource?.text ?? "the OS's choice of address")")
        lines.append("Site:   \(site)/   (also /bytes/N and /whoami)")
        if options.strictPolicy {
            lines.append("Exit policy: default (loopback destinations are refused, as on a real exit).")
        } else {
            lines.append("Note: the demo's exits allow loopback destinations (127.0.0.0/8, ::1) so the local site works.")
        }
        lines.append("")
        lines.append("Try:")
        lines.append("  curl --socks5-hostname 127.0.0.1:\(socksPort) \(site)/")
        for c in running where c.city.roles.contains(.exit) {
            lines.append("  curl --socks5-hostname 127.0.0.1:\(socksPort) -U country-\(c.city.country.lowercased()):x \(site)/whoami      # exit in \(c.city.country)")
        }
        lines.append("  curl --proxy http://127.0.0.1:\(httpPort) -o /dev/null -w '%{speed_download} B/s\\n' \(site)/bytes/104857600")
        lines.append("  curl --proxy http://country-nl:x@127.0.0.1:\(httpPort) \(site)/")
        lines.append("")
        lines.append("Files (keys, configs, logs): \(directory)")
        lines.append("Live circuits below; Ctrl-C stops everything.")
        return lines.joined(separator: "\n")
    }

    private func pad(_ s: String, _ n: Int) -> String { s.count >= n ? s + " " : s + String(repeating: " ", count: n - s.count) }

    /// The machine-readable description for scripts, tests and independent implementations.
    public func statusJSON() throws -> Data {
        var cities: [[String: Any]] = []
        for c in running {
            var entry: [String: Any] = [
                "name": c.city.name, "node_id": c.identity.nodeID.hex, "kem_pk": Hex.encode(c.kem.publicKey),
                "identity_pk": Hex.encode(c.identity.publicKey),
                "roles": c.city.roles.names,
                "country": c.city.country, "transit": ["host": "127.0.0.1", "port": c.transit, "profile": "T0"],
                "admin": ["host": "127.0.0.1", "port": c.admin], "pid": Int(c.process.processIdentifier),
                "config": c.config, "log": c.log,
            ]
            if c.city.roles.contains(.exit) {
                entry["exit_admission"] = options.allowListAdmission ? "allow-list" : "any-account"
                entry["exit_policy"] = options.strictPolicy ? "default" : "default + allow loopback"
            }
            cities.append(entry)
        }
        let root: [String: Any] = [
            "format": "montana-demo-status-v1",
            "pid": Int(getpid()),
            "directory": directory,
            "cities": cities,
            "client": ["socks": ["host": "127.0.0.1", "port": socksPort], "http": ["host": "127.0.0.1", "port": httpPort],
                       "account_id": Hex.encode(account?.accountID ?? []), "account_key": path("client-account.key"),
                       "source": clientSource.map { $0.text as Any } ?? NSNull()],
            "site": ["url": "http://127.0.0.1:\(sitePort)/", "port": sitePort],
        ]
        return try JSONSerialization.data(withJSONObject: root, options: [.prettyPrinted, .sortedKeys])
    }

    public func circuits() async -> [CircuitStatus] {
        (try? await proxy?.status()) ?? []
    }

    /// Cities whose process has exited (e.g. killed), for the live display.
    public var deadCities: [String] { running.filter { !$0.process.isRunning }.map(\.city.name) }

    public func stop() async {
        await proxy?.shutdown()
        try? await site?.channel.close()
        for c in running where c.process.isRunning { c.process.terminate() }
        let deadline = Date().addingTimeInterval(5)
        for c in running {
            while c.process.isRunning && Date() < deadline { try? await Task.sleep(nanoseconds: 50_000_000) }
            if c.process.isRunning { kill(c.process.processIdentifier, SIGKILL) }
        }
        try? await siteGroup.shutdownGracefully()
    }
}

public enum DemoError: Error, CustomStringConvertible {
    case noFreePort
    case cityFailed(String, String)
    case portInUse(String)
    case sourceUnusable(String)

    public var description: String {
        switch self {
        case .sourceUnusable(let why): return why
        case .noFreePort: return "could not find a free loopback port"
        case .cityFailed(let name, let log): return "city \(name) failed to start:\n\(log)"
        case .portInUse(let what): return "cannot listen on \(what)"
        }
    }
}
