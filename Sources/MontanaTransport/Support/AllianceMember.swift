import MontanaCrypto
import MontanaWire

/// A member as a node or client knows it: enough to seal a preface to it and dial it.
public struct AllianceMember: Sendable, Equatable {
    public let nodeID: NodeID
    public let kemPublicKey: [UInt8]
    public let host: String
    public let port: Int
    public let country: String?
    public let roles: NodeRoles
    public let name: String?
    /// For exits from a directory: whether ≥ 2 independent members corroborate its country.
    /// Statically configured members are taken as given (true).
    public var corroborated: Bool = true
    /// Operator label (from the endorsement), when known.
    public var operatorLabel: String?
    /// Every carrier the member offers that this side can parse (PROTOCOL.md 2, 8.2), T0 first
    /// (`host`/`port` are the T0 endpoint, kept for everything that only speaks T0).
    public var endpoints: [CarrierEndpoint]

    public init(nodeID: NodeID, kemPublicKey: [UInt8], host: String, port: Int, country: String?, roles: NodeRoles, name: String? = nil,
                endpoints: [CarrierEndpoint] = []) {
        let t0 = CarrierEndpoint(profile: .t0, host: host, port: port)
        self.endpoints = [t0] + endpoints.filter { $0 != t0 && $0.profile != .t0 }
        self.nodeID = nodeID
        self.kemPublicKey = kemPublicKey
        self.host = host
        self.port = port
        self.country = country
        self.roles = roles
        self.name = name
    }

    public var isFront: Bool { roles.contains(.front) }
    public var isExit: Bool { roles.contains(.exit) }
    /// The member's endpoint of `profile`, if it offers one.
    public func endpoint(_ profile: CarrierProfile) -> CarrierEndpoint? { endpoints.first { $0.profile == profile } }
    public var target: RelayTarget { RelayTarget(nodeID: nodeID, kemPublicKey: kemPublicKey, host: host, port: port) }
    /// A short human label for tables: the name, else the node id prefix.
    public var label: String { name ?? nodeID.short }

    public static func == (a: AllianceMember, b: AllianceMember) -> Bool { a.nodeID == b.nodeID }
}
