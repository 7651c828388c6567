import Foundation
import MontanaWire
import NIOConcurrencyHelpers

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
        try carriers.allowOnly(["obfs4"])
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
    public init() {}
    public var endpoints: [Endpoint] { box.withLockedValue { $0 } }
    public func set(_ endpoint: Endpoint) {
        box.withLockedValue { list in
            list.removeAll { $0.profile == endpoint.profile }
            list.append(endpoint)
            list.sort { $0.profile < $1.profile }
        }
    }
}
