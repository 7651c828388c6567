import Foundation
import MontanaCrypto
import MontanaWire
import MontanaTransport
import NIOConcurrencyHelpers
import NIOCore

/// `[carriers.obfs4]`: T3, obfs4 through the Tor PT 1.0 managed interface (PROTOCOL.md 2.4).
///
/// ```toml
/// [carriers.obfs4]
/// enabled = true
/// listen = "0.0.0.0:7444"          # where obfs4proxy accepts clients
/// binary = "obfs4proxy"            # default: obfs4proxy on PATH (lyrebird works too)
/// iat_mode = 0                     # 0 off, 1 on, 2 paranoid (obfs4's inter-arrival timing)
/// state_dir = "obfs4"              # default: obfs4/ beside node.state; created 0700
/// ```
public struct Obfs4Settings: Sendable, Equatable {
    public var listen: HostPort
    public var binary: String
    public var iatMode: Int
    public var stateDirectory: String
    /// "node.toml: [carriers.obfs4]": how errors name this section.
    public var configKey: String

    static let keys = ["enabled", "listen", "binary", "iat_mode", "state_dir"]

    /// nil when the section is absent or `enabled = false`.
    static func parse(_ carriers: ConfigSection?, statePath: String, transit: HostPort) throws(ConfigurationError) -> Obfs4Settings? {
        guard let carriers else { return nil }
        try carriers.allowOnly(["obfs4", "ws", "tls"])
        guard let s = try carriers.section("obfs4") else { return nil }
        try s.allowOnly(keys)
        let enabled = try s.bool("enabled") ?? true
        guard let listen = try s.hostPort("listen") else {
            if !enabled { return nil }
            throw .missingKey(file: s.file, key: s.key("listen"))
        }
        if listen.port == transit.port && (listen.host == transit.host || listen.isWildcard || transit.isWildcard) {
            throw s.invalid("listen", "\(listen) is the T0 transit port; obfs4proxy needs a port of its own")
        }
        let binary = try s.string("binary") ?? "obfs4proxy"
        guard !binary.isEmpty else { throw s.invalid("binary", "is empty; leave it out to use obfs4proxy on PATH") }
        let iat = try s.int("iat_mode", in: 0...2) ?? 0
        let state = try s.path("state_dir") ?? ((statePath as NSString).deletingLastPathComponent as NSString).appendingPathComponent("obfs4")
        guard enabled else { return nil }
        return Obfs4Settings(listen: listen, binary: binary, iatMode: iat, stateDirectory: state, configKey: "\(s.file): [\(s.path)]")
    }
}

/// Endpoints of carriers that come up at run time (T3's cert is known only once obfs4proxy has
/// reported it), published in the node's record next to its T0 endpoint. Shared by reference:
/// the configuration is copied, the box is not.
public final class PublishedCarriers: Sendable {
    private let box = NIOLockedValueBox<[Endpoint]>([])
    private let t1 = NIOLockedValueBox<T1Params?>(nil)
    public init() {}
    public var endpoints: [Endpoint] { box.withLockedValue { $0 } }
    /// A T1 front with its own key publishes its parameters in the record (`key_mode` OWN,
    /// `own_t1`); nil: universal key or no T1.
    public var ownT1: T1Params? {
        get { t1.withLockedValue { $0 } }
        set { t1.withLockedValue { $0 = newValue } }
    }
    public var keyMode: KeyMode { ownT1 == nil ? .universal : .own }
    public func set(_ endpoint: Endpoint) {
        box.withLockedValue { list in
            list.removeAll { $0.profile == endpoint.profile }
            list.append(endpoint)
            list.sort { $0.profile < $1.profile }
        }
    }
}

/// `[carriers.ws]`: T2, WebSocket over TLS (PROTOCOL.md 2.3), usually behind a CDN.
///
/// ```toml
/// [carriers.ws]
/// enabled = true
/// listen = "127.0.0.1:8080"           # plain HTTP for the TLS-terminating CDN/proxy in front
/// path = "/k3…"                       # the secret path: "/" + at least 16 url-safe random characters
/// # tls_cert = "ws.crt"               # with both, the node terminates TLS itself (no CDN)
/// # tls_key = "ws.key"
/// public_host = "cdn.example.net"     # what clients dial (the CDN's name); default listen host
/// public_port = 443                   # default 443 (TLS always, at the CDN or here)
/// host_header = "cdn.example.net"     # HTTP Host; default public_host
/// sni = "cdn.example.net"             # TLS SNI; default host_header
/// trusted_proxies = ["127.0.0.1"]     # peers whose X-Forwarded-For / X-Real-IP are believed
/// ```
public struct WebSocketSettings: Sendable, Equatable {
    public var listen: HostPort
    public var path: String
    public var tlsCert: String?
    public var tlsKey: String?
    public var publicHost: String?
    public var publicPort: Int
    public var hostHeader: String?
    public var sni: String?
    public var trustedProxies: [String]
    public var configKey: String

    static let keys = ["enabled", "listen", "path", "tls_cert", "tls_key", "public_host", "public_port", "host_header", "sni",
                       "trusted_proxies"]

    static func parse(_ carriers: ConfigSection?, transit: HostPort) throws(ConfigurationError) -> WebSocketSettings? {
        guard let carriers else { return nil }
        guard let s = try carriers.section("ws") else { return nil }
        try s.allowOnly(keys)
        let enabled = try s.bool("enabled") ?? true
        guard enabled else { return nil }
        guard let listen = try s.hostPort("listen") else { throw .missingKey(file: s.file, key: s.key("listen")) }
        if listen.port == transit.port && (listen.host == transit.host || listen.isWildcard || transit.isWildcard) {
            throw s.invalid("listen", "\(listen) is the T0 transit port; the WebSocket listener needs a port of its own")
        }
        guard let path = try s.string("path") else {
            throw s.invalid("path", "is missing; set a secret path such as \"\(WebSocketCarrier.randomPath())\"")
        }
        if let problem = WebSocketCarrier.pathProblem(path) { throw s.invalid("path", "\"\(path.prefix(40))\" \(problem)") }
        let cert = try s.path("tls_cert"), key = try s.path("tls_key")
        if (cert == nil) != (key == nil) {
            throw s.invalid(cert == nil ? "tls_cert" : "tls_key", "is missing: set both tls_cert and tls_key, or neither (TLS at the CDN)")
        }
        for (name, file) in [("tls_cert", cert), ("tls_key", key)] {
            if let file, !FileManager.default.isReadableFile(atPath: file) { throw s.invalid(name, "\(file) cannot be read") }
        }
        let names: [(String, String?)] = [("public_host", try s.string("public_host")), ("host_header", try s.string("host_header")),
                                          ("sni", try s.string("sni"))]
        for (name, value) in names {
            if let value, value.isEmpty || value.utf8.count > 253 || value.unicodeScalars.contains(where: { $0.value <= 0x20 || $0 == "&" || $0 == "=" || $0.value == 0x7f }) {
                throw s.invalid(name, "\"\(value.prefix(40))\" is not a host name")
            }
        }
        let port = try s.int("public_port", in: 1...65535) ?? 443
        let proxies = try s.strings("trusted_proxies") ?? []
        for p in proxies where (try? SocketAddress(ipAddress: p, port: 0)) == nil {
            throw s.invalid("trusted_proxies", "\"\(p.prefix(40))\" is not an IP address")
        }
        return WebSocketSettings(listen: listen, path: path, tlsCert: cert, tlsKey: key, publicHost: names[0].1, publicPort: port,
                                 hostHeader: names[1].1, sni: names[2].1, trustedProxies: proxies, configKey: "\(s.file): [\(s.path)]")
    }
}

/// `[carriers.tls]`: T1, TLS 1.3 mimicry relayed through a real cover site (PROTOCOL.md 2.2).
///
/// ```toml
/// [carriers.tls]
/// enabled = true
/// listen = "0.0.0.0:443"            # what visitors, probers and Montana clients connect to
/// cover = "127.0.0.1:8443"          # the real TLS 1.3 site every connection is relayed to (own site: nginx on loopback)
/// sni = ["www.example.org"]         # the cover names a token may carry; the first is published
///                                   # (universal key: default the alliance's universal_t1.server_name)
/// key = "t1.key"                    # own key (`montana keygen t1`) or the alliance's universal key
///                                   # (`montana alliance t1-key`), 0600
/// short_ids = ["5e1f00aa"]          # hex, ≤ 8 bytes each; the first is published (default: from the
///                                   # node id; universal key: the alliance's short ids)
/// public_port = 443                 # the port clients dial (default: the listen port)
/// ```
public struct TLSCarrierSettings: Sendable, Equatable {
    public var listen: HostPort
    public var cover: HostPort
    public var serverNames: [String]
    public var keyPath: String
    public var shortIDs: [[UInt8]]
    public var publicPort: Int?
    public var configKey: String

    static let keys = ["enabled", "listen", "cover", "sni", "key", "short_ids", "public_port"]

    static func parse(_ carriers: ConfigSection?, transit: HostPort) throws(ConfigurationError) -> TLSCarrierSettings? {
        guard let carriers else { return nil }
        guard let s = try carriers.section("tls") else { return nil }
        try s.allowOnly(keys)
        guard try s.bool("enabled") ?? true else { return nil }
        guard let listen = try s.hostPort("listen") else { throw .missingKey(file: s.file, key: s.key("listen")) }
        if listen.port == transit.port && (listen.host == transit.host || listen.isWildcard || transit.isWildcard) {
            throw s.invalid("listen", "\(listen) is the T0 transit port; T1 needs a port of its own")
        }
        guard let cover = try s.hostPort("cover") else {
            throw s.invalid("cover", "is missing: the host:port of the real TLS 1.3 site every non-Montana connection reaches (e.g. your own nginx on 127.0.0.1:8443)")
        }
        // Empty: the alliance's universal name, if the key turns out to be the universal one (checked at start).
        let names = try s.strings("sni") ?? []
        guard names.count <= 16 else { throw s.invalid("sni", "has \(names.count) names; at most 16") }
        for n in names where n.isEmpty || n.utf8.count > 253 || !n.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7f && $0 != 0x26 && $0 != 0x3d }) {
            throw s.invalid("sni", "\"\(n.prefix(40))\" is not a host name")
        }
        guard let key = try s.path("key") else {
            throw s.invalid("key", "is missing: create this front's T1 key with `montana keygen t1 --out DIR` and name DIR/t1.key here")
        }
        var ids: [[UInt8]] = []
        for text in try s.strings("short_ids") ?? [] {
            guard let b = Hex.decode(text), !b.isEmpty, b.count <= T1Token.maxShortIDLength else {
                throw s.invalid("short_ids", "\"\(text.prefix(40))\" must be hex of 1 to 8 bytes")
            }
            ids.append(b)
        }
        guard ids.count <= 16 else { throw s.invalid("short_ids", "has \(ids.count) entries; at most 16") }
        let port = try s.int("public_port", in: 1...65535)
        return TLSCarrierSettings(listen: listen, cover: cover, serverNames: names, keyPath: key, shortIDs: ids, publicPort: port,
                                  configKey: "\(s.file): [\(s.path)]")
    }
}
