import MontanaCrypto
import MontanaTransport
import MontanaWire

/// Another alliance member, listed statically (`[[peers]]` for a node, `[[members]]` for a
/// client) until the directory makes membership dynamic.
public struct PeerConfiguration: Sendable {
    public var nodeID: NodeID
    /// X-Wing public key (1216 bytes) that prefaces to this member are sealed to.
    public var kemPublicKey: [UInt8]
    public var endpoint: HostPort
    /// Required for exits: it is the country clients choose them by.
    public var country: String?
    public var roles: NodeRoles
    /// `carriers = [{ profile = "t3", endpoint = "host:port", params = "cert=…&iat-mode=0" }]`:
    /// the member's carriers besides T0 (`endpoint`), as its record would list them (at most 4).
    public var carriers: [CarrierEndpoint] = []

    public init(nodeID: NodeID, kemPublicKey: [UInt8], endpoint: HostPort, country: String?, roles: NodeRoles) {
        self.nodeID = nodeID
        self.kemPublicKey = kemPublicKey
        self.endpoint = endpoint
        self.country = country
        self.roles = roles
    }

    static let keys = ["node_id", "kem_pk", "endpoint", "country", "roles", "carriers"]
    static let carrierKeys = ["profile", "endpoint", "params"]
    static let maxCarriers = 4

    static func parseCarriers(_ s: ConfigSection) throws(ConfigurationError) -> [CarrierEndpoint] {
        let list = try s.sections("carriers")
        guard list.count <= maxCarriers else { throw s.invalid("carriers", "\(list.count) carriers; at most \(maxCarriers)") }
        var out: [CarrierEndpoint] = []
        for c in list {
            try c.allowOnly(carrierKeys)
            let name = try c.requiredString("profile")
            guard let profile = CarrierProfile(name: name), profile != .t0 else {
                throw c.invalid("profile", "\"\(name)\" is not a carrier profile besides t0 (t1, t2, t3); T0 is the member's endpoint")
            }
            guard !out.contains(where: { $0.profile == profile }) else { throw c.invalid("profile", "\(profile) is listed twice") }
            guard let address = try c.hostPort("endpoint") else { throw .missingKey(file: c.file, key: c.key("endpoint")) }
            let params: [String: String]
            let text = try c.string("params") ?? ""
            do { params = try CarrierEndpoint.parseParams(text) } catch { throw c.invalid("params", error.description) }
            if profile == .t3, params["cert"] == nil {
                throw c.invalid("params", "a t3 carrier needs cert=… (and iat-mode=…) from the member's record or its operator")
            }
            if profile == .t2 {
                guard let path = params["path"] else {
                    throw c.invalid("params", "a t2 carrier needs path=… (the secret WebSocket path; and host=…, sni=… for a CDN)")
                }
                if let problem = WebSocketCarrier.pathProblem(path) { throw c.invalid("params", "path \(problem)") }
            }
            let endpoint = CarrierEndpoint(profile: profile, host: address.host, port: address.port, params: params)
            if profile == .t1 {
                do { _ = try T1Connector.arguments(endpoint) } catch {
                    throw c.invalid("params", "a t1 carrier needs pbk=… (64 hex digits), sid=… (hex, ≤ 8 bytes) and sni=… from the member's record: \(error)")
                }
            }
            out.append(endpoint)
        }
        return out
    }

    static func parse(_ s: ConfigSection) throws(ConfigurationError) -> PeerConfiguration {
        try s.allowOnly(keys)
        guard let id = try s.hex("node_id", bytes: 32, what: "a node id") else { throw .missingKey(file: s.file, key: s.key("node_id")) }
        guard let kem = try s.hex("kem_pk", bytes: KEMKey.publicKeySize, what: "an X-Wing public key") else {
            throw .missingKey(file: s.file, key: s.key("kem_pk"))
        }
        guard let endpoint = try s.hostPort("endpoint") else { throw .missingKey(file: s.file, key: s.key("endpoint")) }
        guard let roles = try s.roles("roles") else { throw .missingKey(file: s.file, key: s.key("roles")) }
        let country = try s.country("country")
        if roles.contains(.exit) && country == nil {
            throw s.invalid("country", "required for a member with the \"exit\" role")
        }
        // NodeID(hex:) cannot fail after the length and hex checks above.
        var peer = PeerConfiguration(nodeID: NodeID(hex: Hex.encode(id))!, kemPublicKey: kem, endpoint: endpoint,
                                     country: country, roles: roles)
        peer.carriers = try parseCarriers(s)
        return peer
    }

    /// Parses a `[[name]]` list, refusing duplicate node ids and (for a node) its own id.
    static func parseList(_ root: ConfigSection, name: String, ownID: NodeID?) throws(ConfigurationError) -> [PeerConfiguration] {
        var peers: [PeerConfiguration] = []
        var seen: [NodeID: Int] = [:]
        for (i, section) in try root.sections(name).enumerated() {
            let peer = try parse(section)
            if let first = seen[peer.nodeID] {
                throw section.invalid("node_id", "duplicate: \(name)[\(first)] has the same node id")
            }
            if peer.nodeID == ownID {
                throw section.invalid("node_id", "this is the node's own id (from node.identity_key); list only other members")
            }
            seen[peer.nodeID] = i
            peers.append(peer)
        }
        return peers
    }

    /// The `[[name]]` block for a template, so configs can be pasted between members.
    func tomlBlock(name: String) -> String {
        var lines = ["[[\(name)]]",
                     "node_id = \"\(nodeID.hex)\"",
                     "kem_pk = \"\(Hex.encode(kemPublicKey))\"",
                     "endpoint = \"\(endpoint)\""]
        if let country { lines.append("country = \"\(country)\"") }
        lines.append("roles = \(roles.tomlArray)")
        return lines.joined(separator: "\n") + "\n"
    }
}
