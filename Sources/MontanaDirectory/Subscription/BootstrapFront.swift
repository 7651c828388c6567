import MontanaCrypto
import MontanaWire

/// One bootstrap front of a subscription: its member link, and the same facts as fields for
/// clients that do not parse links. Decoding checks that the link agrees with the fields and that
/// the link's own endpoint is one of `endpoints`.
///
///     {"link":"montana://...","node_id":hex,"kem_pk":hex,"endpoints":[{"profile":0,"host":"h","port":1}],
///      "key_mode":"universal","own_t1":null,"label":"..."}
public struct BootstrapFront: Codable, Sendable, Equatable {
    /// As a directory record: at most 16 endpoints.
    public static let maxEndpoints = DirectoryRecord.maxEndpoints
    /// Carrier parameters (`cert=…&iat-mode=0`) are short; 1024 bytes bounds them.
    public static let maxParamsBytes = 1024

    public var link: MemberLink
    public var endpoints: [Endpoint]

    public var nodeID: NodeID { link.nodeID }
    public var kemPublicKey: [UInt8] { link.kemPublicKey }
    public var keyMode: KeyMode { link.keyMode }
    public var ownT1: T1Params? { link.ownT1 }
    public var label: String? { link.label }

    /// The front of `link`, with the link's endpoint and any `more` (other carriers of the same node).
    public init(link: MemberLink, more: [Endpoint] = []) {
        self.link = link
        self.endpoints = [link.endpoint]
        for e in more where !endpoints.contains(e) { endpoints.append(e) }
    }

    /// Groups links by node: each node becomes one front whose link is its first link and whose
    /// endpoints are all of its links' endpoints, in order.
    public static func grouping(_ links: [MemberLink]) -> [BootstrapFront] {
        var fronts: [BootstrapFront] = []
        for link in links {
            if let i = fronts.firstIndex(where: { $0.link.nodeID == link.nodeID }) {
                if !fronts[i].endpoints.contains(link.endpoint) { fronts[i].endpoints.append(link.endpoint) }
            } else {
                fronts.append(BootstrapFront(link: link))
            }
        }
        return fronts
    }

    // MARK: - Codable

    enum CodingKeys: String, CodingKey {
        case link, endpoints, label
        case nodeID = "node_id"
        case kemPublicKey = "kem_pk"
        case keyMode = "key_mode"
        case ownT1 = "own_t1"
    }

    enum EndpointKeys: String, CodingKey {
        case profile, host, port, params
    }

    enum T1Keys: String, CodingKey {
        case x25519PublicKey = "x25519_pk"
        case shortIDs = "short_ids"
        case serverName = "server_name"
        case cover
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(link.text, forKey: .link)
        try c.encode(link.nodeID.hex, forKey: .nodeID)
        try c.encode(Hex.encode(link.kemPublicKey), forKey: .kemPublicKey)
        var list = c.nestedUnkeyedContainer(forKey: .endpoints)
        for e in endpoints {
            var ec = list.nestedContainer(keyedBy: EndpointKeys.self)
            try ec.encode(e.profile, forKey: .profile)
            try ec.encode(e.host, forKey: .host)
            try ec.encode(e.port, forKey: .port)
            try ec.encodeIfPresent(e.params, forKey: .params)
        }
        try c.encode(link.keyMode == .own ? "own" : "universal", forKey: .keyMode)
        if let t1 = link.ownT1 {
            var tc = c.nestedContainer(keyedBy: T1Keys.self, forKey: .ownT1)
            try tc.encode(Hex.encode(t1.x25519PublicKey), forKey: .x25519PublicKey)
            try tc.encode(t1.shortIDs.map { Hex.encode($0) }, forKey: .shortIDs)
            try tc.encode(t1.serverName, forKey: .serverName)
            try tc.encode(t1.cover, forKey: .cover)
        } else {
            try c.encodeNil(forKey: .ownT1)
        }
        if let label = link.label { try c.encode(label, forKey: .label) } else { try c.encodeNil(forKey: .label) }
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let text = try c.decode(String.self, forKey: .link)
        let link: MemberLink
        do {
            link = try MemberLink.parse(text)
        } catch {
            throw c.problem(.link, "\(error)")
        }
        guard NodeID(hex: try c.decode(String.self, forKey: .nodeID)) == link.nodeID else {
            throw c.problem(.nodeID, "must be 64 hex digits and equal the link's node")
        }
        guard try c.hex(.kemPublicKey, bytes: KEMKey.publicKeySize) == link.kemPublicKey else {
            throw c.problem(.kemPublicKey, "differs from the link's kem")
        }
        let mode = try c.decode(String.self, forKey: .keyMode)
        guard mode == "universal" || mode == "own" else { throw c.problem(.keyMode, "must be \"universal\" or \"own\"") }
        guard (mode == "own") == (link.keyMode == .own) else { throw c.problem(.keyMode, "differs from the link's mode") }
        let ownT1 = try Self.decodeT1(c)
        guard ownT1 == link.ownT1 else { throw c.problem(.ownT1, "differs from the link's own T1 parameters") }
        let label = try c.decodeIfPresent(String.self, forKey: .label)
        guard (label ?? "").isEmpty ? link.label == nil : label == link.label else { throw c.problem(.label, "differs from the link's label") }

        var list = try c.nestedUnkeyedContainer(forKey: .endpoints)
        var endpoints: [Endpoint] = []
        while !list.isAtEnd {
            guard endpoints.count < Self.maxEndpoints else { throw c.problem(.endpoints, "more than \(Self.maxEndpoints) endpoints") }
            endpoints.append(try Self.decodeEndpoint(list.nestedContainer(keyedBy: EndpointKeys.self)))
        }
        guard endpoints.contains(link.endpoint) else {
            throw c.problem(.endpoints, "must include the link's endpoint (profile \(link.profile), \(link.host) port \(link.port))")
        }
        self.link = link
        self.endpoints = endpoints
    }

    private static func decodeT1(_ c: KeyedDecodingContainer<CodingKeys>) throws -> T1Params? {
        guard try c.contains(.ownT1) && !c.decodeNil(forKey: .ownT1) else { return nil }
        let t = try c.nestedContainer(keyedBy: T1Keys.self, forKey: .ownT1)
        let pk = try t.hex(.x25519PublicKey, bytes: 32)
        let texts = try t.decode([String].self, forKey: .shortIDs)
        guard texts.count <= MemberLink.maxShortIDs else { throw t.problem(.shortIDs, "more than \(MemberLink.maxShortIDs) short ids") }
        var shortIDs: [[UInt8]] = []
        for s in texts {
            guard let b = Hex.decode(s), b.count <= MemberLink.maxShortIDBytes else {
                throw t.problem(.shortIDs, "each must be hex of at most \(MemberLink.maxShortIDBytes) bytes")
            }
            shortIDs.append(b)
        }
        let serverName = try t.text(.serverName, bytes: 0...MemberLink.maxHostBytes)
        let cover = try t.text(.cover, bytes: 0...MemberLink.maxCoverBytes)
        return T1Params(x25519PublicKey: pk, shortIDs: shortIDs, serverName: serverName, cover: cover)
    }

    private static func decodeEndpoint(_ e: KeyedDecodingContainer<EndpointKeys>) throws -> Endpoint {
        let profile = UInt8(try e.integer(.profile, in: 0...Int(ReachabilityAdvert.maxProfile)))
        let host = try e.decode(String.self, forKey: .host)
        if host.contains(":") {
            guard IPLiteral.parse(host)?.count == 16 else { throw e.problem(.host, "\(Printable.quote(host, limit: 48)) is not an IPv6 address") }
        } else if let problem = MemberLink.hostProblem(host) {
            throw e.problem(.host, problem)
        }
        let port = UInt16(try e.integer(.port, in: 1...65535))
        let params = try e.decodeIfPresent(String.self, forKey: .params)
        if let params {
            guard params.utf8.count <= maxParamsBytes, !params.unicodeScalars.contains(where: Printable.isControl) else {
                throw e.problem(.params, "must be at most \(maxParamsBytes) bytes without control characters")
            }
        }
        return Endpoint(profile: profile, host: host, port: port, params: params)
    }
}
