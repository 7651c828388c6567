import Foundation
import Logging
import MontanaClient
import MontanaCrypto
import MontanaDirectory
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
        /// How many cities (3...12).
        public var cityCount = 3
        /// The client's status port (`/status`, `/directory`); nil: a free loopback port.
        public var clientAdmin: HostPort?
        /// How long `start` waits for every exit to be corroborated at the client.
        public var convergenceTimeout: TimeInterval = 60
        /// T2 for one city behind a demo nginx when nginx and openssl are installed (`--no-t2`: off).
        public var t2 = true
        /// The demo client's ladder (`[client] carriers`, e.g. ["t2"]); nil: the default ladder.
        public var clientCarriers: [String]?
        public init() {}
    }

    public static let defaultClientSource = try? ClientSourceAddress(parsing: "127.0.1.1")

    /// The demo's cities, in start order; `--cities N` takes the first N (3...12). Each runs on
    /// its own loopback /16 (city i on 127.(i+1).0.1) with one of three operators, so every exit
    /// can be corroborated by two attesters of other operators on other /16s.
    public static let allCities = [
        City(name: "berlin", country: "DE", roles: [.front, .exit]),
        City(name: "amsterdam", country: "NL", roles: [.front, .exit]),
        City(name: "warsaw", country: "PL", roles: [.front]),
        City(name: "paris", country: "FR", roles: [.front, .exit]),
        City(name: "stockholm", country: "SE", roles: [.front, .exit]),
        City(name: "vienna", country: "AT", roles: [.front]),
        City(name: "madrid", country: "ES", roles: [.front, .exit]),
        City(name: "rome", country: "IT", roles: [.front, .exit]),
        City(name: "prague", country: "CZ", roles: [.front]),
        City(name: "helsinki", country: "FI", roles: [.front, .exit]),
        City(name: "lisbon", country: "PT", roles: [.front, .exit]),
        City(name: "dublin", country: "IE", roles: [.front, .exit]),
    ]
    public static let operators = ["Northwind Hosting", "Bluefin Networks", "Riverside VPN"]
    public static let cityCountRange = 3...12

    /// The first three, as before (kept for scripts that list the default demo).
    public static var cities: [City] { Array(allCities.prefix(3)) }

    public static func address(ofCity index: Int) -> String { "127.\(index + 1).0.1" }
    public static func operatorLabel(ofCity index: Int) -> String { operators[index % operators.count] }

    struct RunningCity {
        let city: City
        let host: String
        let operatorLabel: String
        let link: MemberLink
        let identity: IdentityKey
        let kem: KEMKey
        let transit: Int
        let admin: Int
        let process: Process
        let config: String
        let log: String
        /// The city's T1 port (`[carriers.tls]`), relaying to the demo's cover site.
        let t1: Int
        /// What this city offers (`DemoCarrier.carriers(forCity:t2Available:)`).
        let carriers: [DemoCarrier]
    }

    /// T2's plan, fixed before the cities' configs are written: nginx's port, the city's
    /// plain-HTTP listener and the secret path.
    struct T2Plan {
        let city: Int
        let nginxPort: Int
        let wsListen: String
        let path: String
        let tools: (nginx: String, openssl: String)
    }

    let options: Options
    let logger: Logger
    let directory: String
    private var running: [RunningCity] = []
    private var client: ClientRuntime?
    private var proxy: LocalProxyServer? { client?.proxy }
    private var alliance: AllianceDocument?
    /// Seconds from start until every exit was corroborated at the client (nil: not within the timeout).
    public private(set) var convergedAfter: TimeInterval?
    private var site: DemoSite?
    /// The cover site every city's T1 front relays to (the part of an operator's own web site).
    private var cover: CoverSite?
    public static let coverName = "www.montana-demo.example"
    private let siteGroup = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    private var account: IdentityKey?
    /// The source the client really uses (the default falls back to the OS's choice where
    /// 127.0.1.1 cannot be bound).
    private var clientSource: ClientSourceAddress?
    private var t2Plan: T2Plan?
    private var nginx: DemoNginx?
    /// Why the demo runs without T2 ("nginx not installed"); nil when T2 is up.
    public private(set) var t2Skipped: String?

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
    static func freePort(host: String = "127.0.0.1") throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr(host)
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
        let began = Date()
        let count = options.cityCount
        guard Self.cityCountRange.contains(count) else { throw DemoError.badCityCount(count) }
        let cities = Array(Self.allCities.prefix(count))
        let account = try IdentityKey.generate()
        self.account = account
        try KeyFile(kind: .account, seed: account.seed).write(to: path("client-account.key"), overwrite: true)
        // The alliance: public file, secret (0600), and a GeoIP table for the loopback /16s.
        let (alliance, secret) = try Alliance.create(name: "Montana demo", open: false, serverName: Self.coverName)
        self.alliance = alliance
        try alliance.write(to: path("alliance.json"))
        try? FileManager.default.removeItem(atPath: path("alliance.secret"))
        try secret.write(to: path("alliance.secret"), overwrite: true)
        let geoip = cities.enumerated().map { i, c in "127.\(i + 1).0.0/16,\(c.country)" }
        try ("# Loopback GeoIP for `montana demo`: city i lives on 127.(i+1).0.0/16.\n" + geoip.joined(separator: "\n") + "\n")
            .write(toFile: path("geoip-loopback.csv"), atomically: true, encoding: .utf8)
        // T1: every city is a universal-key T1 front (the alliance's key, exported as `montana
        // alliance t1-key` does) relaying to one cover site on loopback.
        let cover = try await CoverSite.start(group: siteGroup, host: "127.0.0.1", port: 0, name: Self.coverName)
        self.cover = cover
        // T2 for one city when nginx and openssl are here (the banner says why not otherwise).
        if !options.t2 {
            t2Skipped = "off (--no-t2)"
        } else if let tools = DemoNginx.tools() {
            let index = DemoCarrier.t2CityIndex
            t2Plan = T2Plan(city: index, nginxPort: try Self.freePort(),
                            wsListen: "\(Self.address(ofCity: index)):\(try Self.freePort(host: Self.address(ofCity: index)))",
                            path: WebSocketCarrier.randomPath(), tools: tools)
        } else {
            t2Skipped = DemoNginx.missingTool
        }
        // Keys, endorsements, ports and links first: each city bootstraps from the one before it.
        var prepared: [(City, IdentityKey, KEMKey, String, Int, Int, String, MemberLink)] = []
        for (i, city) in cities.enumerated() {
            let identity = try IdentityKey.generate()
            let kem = try KEMKey.generate()
            let host = Self.address(ofCity: i)
            let label = Self.operatorLabel(ofCity: i)
            try FileManager.default.createDirectory(atPath: path(city.name), withIntermediateDirectories: true)
            try KeyFile(kind: .nodeIdentity, seed: identity.seed).write(to: path("\(city.name)/identity.key"), overwrite: true)
            try KeyFile(kind: .nodeKEM, seed: kem.seed).write(to: path("\(city.name)/kem.key"), overwrite: true)
            try KeyFile(kind: .t1, seed: secret.universalT1.privateKey).write(to: path("\(city.name)/t1.key"), overwrite: true)
            try EndorsementFile.make(endorsing: identity.nodeID, operator: label, alliance: alliance, secret: secret, now: WallClock.now())
                .write(to: path("\(city.name)/endorsement.json"))
            let transit = try Self.freePort(host: host)
            let link = MemberLink(alliance: alliance.uuidBytes, host: host, port: UInt16(transit), nodeID: identity.nodeID,
                                  kemPublicKey: kem.publicKey, profile: 0, keyMode: .universal, ownT1: nil, label: city.name)
            prepared.append((city, identity, kem, host, transit, try Self.freePort(), label, link))
        }
        let admins = prepared.map { $0.5 }
        // Exits refuse the demo's own service ports on loopback: other cities' admin ports, and
        // T2's nginx and plain-HTTP listener.
        let t2Ports = t2Plan.map { plan in [plan.nginxPort, Int(plan.wsListen.split(separator: ":").last ?? "") ?? 0] } ?? []
        for (i, (city, identity, kem, host, transit, admin, label, link)) in prepared.enumerated() {
            let bootstrap = prepared[(i + count - 1) % count].7
            let t1 = try Self.freePort(host: host)
            let carriers = DemoCarrier.carriers(forCity: i, t2Available: t2Plan != nil)
            let config = nodeConfig(city: city, host: host, transit: transit, admin: admin,
                                    otherAdmins: admins.filter { $0 != admin } + t2Ports, operatorLabel: label, bootstrap: bootstrap,
                                    account: account, t1: (t1, cover.port))
                + carriers.map { carrierConfig($0, city: i) }.joined()
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
            running.append(RunningCity(city: city, host: host, operatorLabel: label, link: link, identity: identity, kem: kem,
                                       transit: transit, admin: admin, process: process, config: configPath, log: logPath, t1: t1,
                                       carriers: carriers))
        }
        for city in running {
            try await waitForPort(city.transit, host: city.host, process: city.process, name: city.city.name, log: city.log)
            try await waitForPort(city.t1, host: city.host, process: city.process, name: city.city.name, log: city.log)
        }
        if let plan = t2Plan {
            do {
                nginx = try await DemoNginx.start(tools: plan.tools, prefix: path("t2-nginx"), port: plan.nginxPort, wsPath: plan.path,
                                                  upstream: plan.wsListen)
            } catch {
                // The city still advertises T2; the client's ladder falls back to T0 for it.
                t2Skipped = "nginx did not start (\(error)); see \(path("t2-nginx"))"
                logger.notice("T2 skipped", metadata: ["reason": "\(error)"])
            }
        }
        site = try await DemoSite.start(group: siteGroup, host: "127.0.0.1", port: options.sitePort)
        // The client imports a subscription naming one bootstrap front only: the directory tells it the rest.
        let subscription = try SubscriptionDocument.create(alliance: alliance, links: [running[0].link], title: "Montana demo", now: WallClock.now())
        try subscription.write(to: path("subscription.json"))
        var source = options.clientSource
        if let chosen = source, let problem = chosen.bindProblem() {
            guard chosen == Self.defaultClientSource else { throw DemoError.sourceUnusable("--client-source \(chosen): \(problem)") }
            logger.notice("the demo client connects from the OS's choice of address", metadata: ["reason": "\(problem)"])
            source = nil
        }
        clientSource = source
        var clientText = """
        [client]
        account_key = "client-account.key"
        subscription = "subscription.json"
        cache = "client-cache.sqlite"
        socks = "\(options.socks)"
        http = "\(options.http)"
        admin = "\(try options.clientAdmin ?? HostPort(host: "127.0.0.1", port: Self.freePort()))"

        """
        if let source { clientText += "source = \"\(source.text)\"\n" }
        // T2 verifies the demo nginx's certificate against the demo's throw-away CA.
        if let nginx { clientText += "t2_ca_file = \"\(nginx.caFile)\"\n" }
        if let carriers = options.clientCarriers {
            if nginx == nil, !carriers.contains("t0") {
                throw DemoError.clientFailed("--carriers \(carriers.joined(separator: ",")): no city offers them (T2: \(t2Skipped ?? "skipped"))")
            }
            clientText += "carriers = [\(carriers.map { "\"\($0)\"" }.joined(separator: ", "))]\n"
        }
        try clientText.write(toFile: path("client.toml"), atomically: true, encoding: .utf8)
        let configuration = try ClientConfiguration.parse(clientText, file: path("client.toml"), baseDirectory: directory)
        do {
            client = try await ClientRuntime.start(configuration, logger: logger)
        } catch let error as ClientRuntimeError {
            throw DemoError.clientFailed("\(error)")
        } catch {
            throw DemoError.portInUse("\(options.socks) or \(options.http): \(error) (choose others with --socks/--http)")
        }
        // Wait until the client's directory lists every city and every exit is corroborated.
        let deadline = Date().addingTimeInterval(options.convergenceTimeout)
        while Date() < deadline {
            if let directory = client?.directory {
                let members = directory.members()
                let exits = members.filter(\.isExit)
                if members.count == count && exits.count == cities.filter({ $0.roles.contains(.exit) }).count && exits.allSatisfy(\.corroborated) {
                    convergedAfter = Date().timeIntervalSince(began)
                    break
                }
            }
            for c in running where !c.process.isRunning {
                let tail = (try? String(contentsOfFile: c.log, encoding: .utf8)).map { String($0.suffix(2000)) } ?? ""
                throw DemoError.cityFailed(c.city.name, tail)
            }
            try await Task.sleep(nanoseconds: 200_000_000)
        }
    }

    private func path(_ name: String) -> String { (directory as NSString).appendingPathComponent(name) }

    /// The node.toml block for one carrier of city `index` (T0 is `[listen] transit`: none).
    /// T1 goes here too (`[carriers.tls]` with the city's loopback cover).
    private func carrierConfig(_ carrier: DemoCarrier, city index: Int) -> String {
        switch carrier {
        case .t0, .t1:
            // T0 is [listen] transit; T1's [carriers.tls] block is part of nodeConfig.
            return ""
        case .t2:
            guard let plan = t2Plan, plan.city == index else { return "" }
            return """

            [carriers.ws]
            # T2 behind the demo's nginx (TLS for \(DemoNginx.hostName) on 127.0.0.1:\(plan.nginxPort)):
            # the record advertises nginx; nginx's X-Forwarded-For names the client.
            listen = "\(plan.wsListen)"
            path = "\(plan.path)"
            public_host = "127.0.0.1"
            public_port = \(plan.nginxPort)
            host_header = "\(DemoNginx.hostName)"
            sni = "\(DemoNginx.hostName)"
            trusted_proxies = ["127.0.0.1"]

            """
        }
    }

    /// The city's carriers for the banner: "t0", "t0+t2".
    private func carrierSummary(_ c: RunningCity) -> String {
        c.carriers.map(\.rawValue).joined(separator: "+")
    }

    private func nodeConfig(city: City, host: String, transit: Int, admin: Int, otherAdmins: [Int], operatorLabel: String,
                            bootstrap: MemberLink, account: IdentityKey, t1: (port: Int, cover: Int)) -> String {
        var text = """
        # Generated by `montana demo` for the city \(city.name).
        [node]
        identity_key = "identity.key"
        kem_key = "kem.key"
        roles = \(city.roles.tomlArray)
        country = "\(city.country)"
        operator = "\(operatorLabel)"
        alliance = "../alliance.json"
        endorsement = "endorsement.json"

        [listen]
        transit = "\(host):\(transit)"
        admin = "127.0.0.1:\(admin)"

        [directory]
        # One other city only: the rest arrives by gossip.
        bootstrap = ["\(bootstrap.text)"]
        geoip = "../geoip-loopback.csv"

        [log]
        level = "info"

        [carriers.tls]
        # T1 with the alliance's universal key: the cover name and short ids are the alliance's.
        listen = "\(host):\(t1.port)"
        cover = "127.0.0.1:\(t1.cover)"
        key = "t1.key"

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
            # Egress leaves from the city's own loopback address, so attestations geolocate it.
            egress_source = ["\(host)"]
            # The demo lets its exits reach loopback so the local web site works (only
            # allow_private re-opens built-in denials; this exit's admin port and every member's
            # transit port stay denied). The other cities' admin ports share this machine's
            # loopback here, which real members never do, so they are denied by port.
            allow = []
            allow_private = [\(allow)]
            deny = [\(otherAdmins.map { "\"\($0)\"" }.joined(separator: ", "))]

            """
        }
        return text
    }

    private func waitForPort(_ port: Int, host: String, process: Process, name: String, log: String) async throws {
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            guard process.isRunning else {
                let tail = (try? String(contentsOfFile: log, encoding: .utf8)).map { String($0.suffix(2000)) } ?? ""
                throw DemoError.cityFailed(name, tail)
            }
            if Self.canConnect(port, host: host) { return }
            try await Task.sleep(nanoseconds: 100_000_000)
        }
        throw DemoError.cityFailed(name, "did not listen within 30 s (see \(log))")
    }

    static func canConnect(_ port: Int, host: String = "127.0.0.1") -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr(host)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        return withUnsafePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
    }

    // MARK: output

    public var socksPort: Int { proxy?.bound.first { $0.0 == .socks5 }?.1.port ?? options.socks.port }
    public var httpPort: Int { proxy?.bound.first { $0.0 == .http }?.1.port ?? options.http.port }
    public var sitePort: Int { site?.port ?? 0 }

    public var clientAdminPort: Int? { client?.adminPort }

    public func banner() -> String {
        let site = "http://127.0.0.1:\(sitePort)"
        var lines: [String] = []
        lines.append("Montana Alliance demo: alliance \"\(alliance?.name ?? "?")\" of \(running.count) cities on loopback /16s, a local web site, and your proxy.")
        lines.append("")
        let members = client?.directory?.members() ?? []
        lines.append(pad("city", 11) + pad("node id", 14) + pad("roles", 12) + pad("country", 9) + pad("operator", 19) + pad("transit", 20)
                     + pad("carriers", 10) + pad("admin", 17) + "country check")
        for c in running {
            let roles = describe(c.city.roles)
            let seen = members.first { $0.nodeID == c.identity.nodeID }
            let check = !c.city.roles.contains(.exit) ? "-" : seen == nil ? "not in directory yet" : (seen!.corroborated ? "corroborated" : "advisory")
            lines.append(pad(c.city.name, 11) + pad(c.identity.nodeID.short, 14) + pad(roles, 12) + pad(c.city.country, 9)
                         + pad(c.operatorLabel, 19) + pad("\(c.host):\(c.transit)", 20) + pad(carrierSummary(c), 10)
                         + pad("127.0.0.1:\(c.admin)", 17) + check)
        }
        lines.append("")
        if let nginx, let plan = t2Plan {
            let name = running[plan.city].city.name
            lines.append("T2: \(name) also offers T2 behind the demo nginx https://127.0.0.1:\(nginx.port) (TLS for \(DemoNginx.hostName), "
                         + "a throw-away CA the client trusts: \(nginx.caFile)).")
            if let carriers = options.clientCarriers {
                lines.append("    The client's ladder is \(carriers.joined(separator: ", ")) (--carriers); the live view shows each circuit's carrier.")
            } else {
                lines.append("    The client's ladder starts at T1 (every city offers it); "
                             + "`montana demo --carriers t2` sends every circuit over T2 through \(name).")
            }
        } else {
            lines.append("T2: \(t2Skipped ?? "not offered"), skipped (every city offers T0 and T1).")
        }
        var countries: [String: (exits: Int, corroborated: Int)] = [:]
        for m in members where m.isExit {
            guard let cc = m.country else { continue }
            countries[cc, default: (0, 0)].exits += 1
            if m.corroborated { countries[cc, default: (0, 0)].corroborated += 1 }
        }
        lines.append("Exit countries at your client: " + (countries.isEmpty ? "none yet" : countries.sorted { $0.key < $1.key }.map { cc, n in
            "\(cc) \(n.exits) exit\(n.exits == 1 ? "" : "s") (\(n.corroborated) corroborated)"
        }.joined(separator: ", ")))
        if let after = convergedAfter {
            lines.append(String(format: "Directory: every city gossiped and every exit attested by 2 other operators in %.1f s.", after))
        } else {
            lines.append("Directory: not every exit is corroborated yet (attestations still running); `montana directory show --admin 127.0.0.1:\(clientAdminPort ?? 0)` tells.")
        }
        lines.append("")
        lines.append("Proxy:  SOCKS5 127.0.0.1:\(socksPort)   HTTP 127.0.0.1:\(httpPort)   (exit per connection via the proxy username)")
        lines.append("Client: imported \(directory)/subscription.json (1 bootstrap front); status at 127.0.0.1:\(clientAdminPort ?? 0); connects from \(clientSource?.text ?? "the OS's choice of address")")
        lines.append("Site:   \(site)/   (also /bytes/N and /whoami)")
        if let cover {
            lines.append("T1:     every city also listens for T1 (TLS relayed to the cover site \(Self.coverName), 127.0.0.1:\(cover.port)); "
                         + "a browser or prober sees that site: curl -k --resolve \(Self.coverName):\(running.first?.t1 ?? 0):\(running.first?.host ?? "") https://\(Self.coverName):\(running.first?.t1 ?? 0)/")
        }
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
        lines.append("  curl --socks5-hostname 127.0.0.1:\(socksPort) --limit-rate 2M -o /dev/null -w '%{size_download} bytes\\n' \(site)/bytes/209715200"
                     + "   # a long download: kill its front (below) and it carries on")
        lines.append("  montana status --admin 127.0.0.1:\(clientAdminPort ?? 0)")
        // Mutual insurance, live: kill the front a circuit uses and watch the next connection
        // (and the live view) move to the warm reserve, same exit and country.
        for c in running where c.city.roles.contains(.front) {
            let alsoExit = c.city.roles.contains(.exit) ? " (also the \(c.city.country) exit: sessions to it end)" : ""
            lines.append("  kill \(c.process.processIdentifier)    # stop \(c.city.name): sessions it fronts resume through their reserve (same exit, connections kept)\(alsoExit)")
        }
        lines.append("  montana directory show --admin 127.0.0.1:\(clientAdminPort ?? 0)")
        lines.append("")
        lines.append("Files (alliance, keys, configs, logs): \(directory)")
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
                "country": c.city.country, "transit": ["host": c.host, "port": c.transit, "profile": "T0"],
                "t1": ["host": c.host, "port": c.t1, "profile": "T1", "key_mode": "universal"],
                "operator": c.operatorLabel, "link": c.link.text, "alliance": alliance?.uuid ?? "",
                "endorsement": path("\(c.city.name)/endorsement.json"),
                "admin": ["host": "127.0.0.1", "port": c.admin], "pid": Int(c.process.processIdentifier),
                "config": c.config, "log": c.log, "carriers": c.carriers.map(\.rawValue),
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
            "alliance": ["file": path("alliance.json"), "secret": path("alliance.secret"), "uuid": alliance?.uuid ?? "",
                         "name": alliance?.name ?? "", "subscription": path("subscription.json"), "geoip": path("geoip-loopback.csv")],
            "client": ["socks": ["host": "127.0.0.1", "port": socksPort], "http": ["host": "127.0.0.1", "port": httpPort],
                       "admin": ["host": "127.0.0.1", "port": clientAdminPort ?? 0], "config": path("client.toml"),
                       "account_id": Hex.encode(account?.accountID ?? []), "account_key": path("client-account.key"),
                       "source": clientSource.map { $0.text as Any } ?? NSNull()],
            "site": ["url": "http://127.0.0.1:\(sitePort)/", "port": sitePort],
            "cover": ["name": Self.coverName, "host": "127.0.0.1", "port": cover?.port ?? 0],
            "t2": t2Status(),
        ]
        return try JSONSerialization.data(withJSONObject: root, options: [.prettyPrinted, .sortedKeys])
    }

    /// `t2` of the status JSON: state "running" (city, nginx pid and port, CA) or "skipped" (reason).
    private func t2Status() -> [String: Any] {
        guard let nginx, let plan = t2Plan else { return ["state": "skipped", "reason": t2Skipped ?? "not offered"] }
        return ["state": "running", "city": running[plan.city].city.name, "ca": nginx.caFile, "host_name": DemoNginx.hostName,
                "nginx": ["host": "127.0.0.1", "port": nginx.port, "pid": Int(nginx.pid)] as [String: Any], "listen": plan.wsListen]
    }

    public func circuits() async -> [CircuitStatus] {
        (try? await proxy?.status()) ?? []
    }

    /// Cities whose process has exited (e.g. killed), for the live display.
    public var deadCities: [String] { running.filter { !$0.process.isRunning }.map(\.city.name) }

    public func stop() async {
        await client?.shutdown()
        try? await site?.channel.close()
        try? await cover?.channel.close()
        for c in running where c.process.isRunning { c.process.terminate() }
        let deadline = Date().addingTimeInterval(5)
        for c in running {
            while c.process.isRunning && Date() < deadline { try? await Task.sleep(nanoseconds: 50_000_000) }
            if c.process.isRunning { kill(c.process.processIdentifier, SIGKILL) }
        }
        nginx?.stop()
        try? await siteGroup.shutdownGracefully()
    }
}

public enum DemoError: Error, CustomStringConvertible {
    case noFreePort
    case cityFailed(String, String)
    case portInUse(String)
    case sourceUnusable(String)
    case badCityCount(Int)
    case clientFailed(String)
    case nginxFailed(String)

    public var description: String {
        switch self {
        case .nginxFailed(let why): return why
        case .sourceUnusable(let why): return why
        case .badCityCount(let n): return "--cities \(n): the demo runs 3 to 12 cities"
        case .clientFailed(let why): return "the demo's client did not start: \(why)"
        case .noFreePort: return "could not find a free loopback port"
        case .cityFailed(let name, let log): return "city \(name) failed to start:\n\(log)"
        case .portInUse(let what): return "cannot listen on \(what)"
        }
    }
}
