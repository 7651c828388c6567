import Foundation
import Logging
import MontanaClient
import MontanaCrypto
import MontanaTransport

/// A client's configuration (`client.toml`), validated and resolved like `NodeConfiguration`.
public struct ClientConfiguration: Sendable {
    public var file: String
    public var accountKeyPath: String
    public var account: IdentityKey
    /// Local SOCKS5 listener; nil when disabled with `socks = ""`.
    public var socks: HostPort?
    public var http: HostPort?
    /// One port that detects SOCKS5 or HTTP from the first byte.
    public var mixed: HostPort?
    /// The exit used when an app does not choose one through the proxy username.
    public var defaultExit: ExitSelection
    /// Local proxy authentication (RFC 1929 / Basic); nil means none.
    public var credentials: ProxyCredentials?
    public var alliance: [UInt8]?
    /// `exit_as_front`: an exit may be its own front (then it sees the client's address). Default false.
    public var exitAsFront: Bool
    /// `source`: the local address carrier connections are sent from; nil lets the OS choose.
    public var source: ClientSourceAddress?
    public var members: [PeerConfiguration]
    /// `subscription`: a subscription file or http:// URL; members then come from the directory.
    public var subscription: String?
    /// `admin`: loopback address of the client's status port (`/status`, `/directory`).
    public var admin: HostPort?
    /// `cache`: the directory cache (SQLite; default `client-cache.sqlite` beside the config).
    public var cachePath: String?
    /// `advisory_exits`: allow exits whose country is not corroborated.
    public var advisoryExits = false
    /// `probe_interval_seconds`: how often (on average, ±50 % jitter) a feeler probe dials one
    /// front to keep the reachability record fresh; 0 turns feelers off. Default 60 s.
    public var probeIntervalSeconds = 60
    /// `optimistic_connect`: when the local proxy answers an app's CONNECT: `known` (default) at once
    /// for destinations the exit opened in the last 10 minutes, `always`, or `never` (after the exit).
    public var optimisticConnect = OptimisticConnect.known
    /// `pass`: an account pass file (`montana pass issue`), sent to exits with `admission = "pass"`.
    public var passPath: String?
    /// `geoip`: a GeoIP database (`.mmdb`, or a `CIDR,CC[,ASN]` CSV) that names this client's vantage
    /// country from the address fronts report; without it the vantage is unknown (ZZ).
    public var geoipPath: String?
    /// `geoip_asn`: an ASN database (e.g. GeoLite2-ASN.mmdb) for the vantage's autonomous system
    /// when `geoip` has none.
    public var geoipASNPath: String?
    public var logLevel: Logger.Level
    public var warnings: [String]
    /// `carriers`: the ladder's order, e.g. `["t3", "t0"]` (default t1, t2, t3, t0; profiles
    /// this client cannot open are skipped). `carriersConfigured`: the key was set.
    public var carriers: [CarrierProfile] = CarrierProfile.defaultOrder
    public var carriersConfigured = false
    /// `obfs4_binary`: the pluggable-transport program for T3 (default obfs4proxy on PATH).
    public var obfs4Binary = "obfs4proxy"
    /// `t2_ca_file`: PEM roots T2 trusts instead of the system's (self-signed or test
    /// deployments); certificate verification itself is never off.
    public var t2CAFile: String?

    public static let defaultSOCKS = HostPort(host: "127.0.0.1", port: 1080)

    static let sections = ["client", "members", "log"]
    static let clientKeys = ["account_key", "socks", "http", "mixed", "country", "username", "password", "alliance",
                             "exit_as_front", "source",
                             "subscription", "admin", "cache", "advisory_exits", "pass", "probe_interval_seconds", "geoip", "geoip_asn",
                             "optimistic_connect", "carriers", "obfs4_binary", "t2_ca_file"]

    /// How the local proxy builds circuits, from `exit_as_front` and `source`.
    public var circuitOptions: CircuitOptions {
        var options = CircuitOptions(exitAsFront: exitAsFront, sourceAddress: source?.address)
        options.allowAdvisory = advisoryExits
        options.optimisticConnect = optimisticConnect
        return options
    }

    public static func load(path: String) throws(ConfigurationError) -> ClientConfiguration {
        try resolve(ConfigSection.load(path: path))
    }

    public static func parse(_ text: String, file: String = "client.toml", baseDirectory: String = ".") throws(ConfigurationError) -> ClientConfiguration {
        try resolve(ConfigSection.parse(text, file: file, baseDirectory: baseDirectory))
    }

    private static func resolve(_ root: ConfigSection) throws(ConfigurationError) -> ClientConfiguration {
        try root.allowOnly(sections)
        guard let client = try root.section("client") else { throw .missingKey(file: root.file, key: "client") }
        try client.allowOnly(clientKeys)
        var warnings: [String] = []

        guard let accountPath = try client.path("account_key") else { throw .missingKey(file: root.file, key: "client.account_key") }
        let account: IdentityKey
        do { account = try KeyFile.loadIdentity(accountPath, kind: .account) } catch { throw client.invalid("account_key", "\(error)") }

        // An absent key takes the default; an empty string switches the listener off.
        let socks = client.contains("socks") ? try optionalListener(client, "socks") : defaultSOCKS
        let http = try optionalListener(client, "http")
        let mixed = try optionalListener(client, "mixed")
        let listeners = [("socks", socks), ("http", http), ("mixed", mixed)].compactMap { name, address in address.map { (name, $0) } }
        guard !listeners.isEmpty else { throw client.invalid("socks", "every listener (socks, http, mixed) is off; enable at least one") }
        for (i, (name, address)) in listeners.enumerated() {
            if let other = listeners[..<i].first(where: { $0.1 == address }) {
                throw client.invalid(name, "\(address) is already used by \(client.key(other.0))")
            }
        }

        let username = try client.string("username") ?? ""
        let password = try client.string("password") ?? ""
        if username.isEmpty != password.isEmpty {
            throw client.invalid(username.isEmpty ? "username" : "password", "set both username and password, or neither")
        }
        let credentials = username.isEmpty ? nil : ProxyCredentials(username: username, password: password)
        if credentials == nil {
            for (name, address) in listeners where !address.isLoopback {
                warnings.append("\(root.file): \(client.key(name)) \(address) is not loopback and has no username/password: anyone who can reach it can use your account")
            }
        }

        let exitAsFront = try client.bool("exit_as_front") ?? false
        var source: ClientSourceAddress?
        if let text = try client.string("source"), !text.isEmpty {
            do { source = try ClientSourceAddress(parsing: text) } catch { throw client.invalid("source", error.description) }
        }

        let members = try PeerConfiguration.parseList(root, name: "members", ownID: nil)
        var subscription = try client.string("subscription")
        if let text = subscription, text.isEmpty { subscription = nil }
        if let text = subscription, !text.hasPrefix("http://"), !text.hasPrefix("https://") {
            subscription = client.resolve(text.hasPrefix("file://") ? String(text.dropFirst(7)) : text)
        }
        if members.isEmpty && subscription == nil {
            warnings.append("\(root.file): no subscription and no [[members]]: the client has no front or exit to connect to")
        }
        let admin = try optionalListener(client, "admin")
        if let admin, !admin.isLoopback {
            warnings.append("\(root.file): \(client.key("admin")) \(admin) is not loopback: your status would be readable from the network")
        }
        let cachePath = try client.path("cache") ?? client.resolve("client-cache.sqlite")
        let advisory = try client.bool("advisory_exits") ?? false
        let passPath = try client.path("pass")
        let probeInterval = try client.int("probe_interval_seconds", in: 0...86_400) ?? 60
        var configuration = ClientConfiguration(file: root.file, accountKeyPath: accountPath, account: account, socks: socks, http: http,
                                   mixed: mixed, defaultExit: try defaultExit(client), credentials: credentials,
                                   alliance: try SharedSettings.alliance(client), exitAsFront: exitAsFront, source: source,
                                   members: members,
                                   logLevel: try SharedSettings.logLevel(root), warnings: warnings)
        configuration.subscription = subscription
        configuration.admin = admin
        configuration.cachePath = cachePath
        configuration.advisoryExits = advisory
        configuration.passPath = passPath
        configuration.probeIntervalSeconds = probeInterval
        if let text = try client.string("optimistic_connect") {
            guard let mode = OptimisticConnect(rawValue: text) else {
                throw client.invalid("optimistic_connect", "\"\(text)\" is not one of never, known, always")
            }
            configuration.optimisticConnect = mode
        }
        configuration.geoipPath = try client.path("geoip")
        configuration.geoipASNPath = try client.path("geoip_asn")
        if let names = try client.strings("carriers") {
            configuration.carriers = try carrierOrder(client, names)
            configuration.carriersConfigured = true
        }
        if let binary = try client.string("obfs4_binary") {
            guard !binary.isEmpty else { throw client.invalid("obfs4_binary", "is empty; leave it out to use obfs4proxy on PATH") }
            configuration.obfs4Binary = binary
        }
        if let ca = try client.path("t2_ca_file") {
            guard FileManager.default.isReadableFile(atPath: ca) else { throw client.invalid("t2_ca_file", "\(ca) cannot be read") }
            configuration.t2CAFile = ca
        }
        return configuration
    }

    private static func carrierOrder(_ client: ConfigSection, _ names: [String]) throws(ConfigurationError) -> [CarrierProfile] {
        guard !names.isEmpty else { throw client.invalid("carriers", "is empty; list at least one of \"t1\", \"t2\", \"t3\", \"t0\"") }
        var out: [CarrierProfile] = []
        for (i, name) in names.enumerated() {
            guard let p = CarrierProfile(name: name) else {
                throw .invalidValue(file: client.file, key: "\(client.key("carriers"))[\(i)]", problem: "\"\(name)\" is not a carrier profile (t0, t1, t2, t3)")
            }
            guard !out.contains(p) else {
                throw .invalidValue(file: client.file, key: "\(client.key("carriers"))[\(i)]", problem: "\(p) is listed twice")
            }
            out.append(p)
        }
        return out
    }

    private static func optionalListener(_ client: ConfigSection, _ name: String) throws(ConfigurationError) -> HostPort? {
        if try client.string(name)?.isEmpty ?? true { return nil }
        return try client.hostPort(name)
    }

    private static func defaultExit(_ client: ConfigSection) throws(ConfigurationError) -> ExitSelection {
        guard let text = try client.string("country"), !text.isEmpty, text != "auto" else { return .automatic }
        guard let code = try client.country("country") else { return .automatic }
        return .country(code)
    }
}
