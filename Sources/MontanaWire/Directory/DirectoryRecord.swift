/// Directory protobufs (PROTOCOL.md section 8). Signing and checking them is `MontanaCrypto`'s job;
/// this file only fixes the bytes. Nested field numbers not named by the shared spec are ours and
/// documented in docs/PROTOCOL.md.

public struct NodeRoles: OptionSet, Sendable, Hashable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    public static let front = NodeRoles(rawValue: 1 << 0)
    public static let exit = NodeRoles(rawValue: 1 << 1)
    public static let directory = NodeRoles(rawValue: 1 << 2)

    /// The roles by name, as configs and status output spell them.
    public var names: [String] {
        [(NodeRoles.front, "front"), (.exit, "exit"), (.directory, "directory")].filter { contains($0.0) }.map(\.1)
    }

    /// A TOML array of the role names: `["front", "exit"]`.
    public var tomlArray: String { "[" + names.map { "\"\($0)\"" }.joined(separator: ", ") + "]" }
}

/// A carrier a node listens on. `profile` is the ladder index (0 = T0 TCP … 3 = T3 obfs4);
/// `params` is `key=value` pairs joined by `&` (for T3: `cert=…&iat-mode=0`).
public struct Endpoint: Equatable, Sendable {
    public var profile: UInt8
    public var host: String
    public var port: UInt16
    public var params: String?

    public init(profile: UInt8, host: String, port: UInt16, params: String? = nil) {
        self.profile = profile
        self.host = host
        self.port = port
        self.params = params
    }

    func encode() -> [UInt8] {
        var w = ProtoWriter()
        w.varint(1, UInt64(profile))
        w.string(2, host)
        w.varint(3, UInt64(port))
        w.string(4, ifSet: params)
        return w.bytes
    }

    static func decode(_ bytes: [UInt8]) throws(WireError) -> Endpoint {
        var e = Endpoint(profile: 0, host: "", port: 0)
        try ProtoReader.forEachField(bytes) { (field, value) throws(WireError) in
            switch field {
            case 1:
                let v = try value.asVarint("endpoint.profile")
                guard v <= UInt64(ReachabilityAdvert.maxProfile) else { throw .invalidValue(field: "endpoint.profile", value: v) }
                e.profile = UInt8(v)
            case 2: e.host = try value.asString("endpoint.host")
            case 3:
                let v = try value.asVarint("endpoint.port")
                guard v >= 1, v <= 65535 else { throw .invalidValue(field: "endpoint.port", value: v) }
                e.port = UInt16(v)
            case 4: e.params = try value.asString("endpoint.params")
            default: break
            }
        }
        guard !e.host.isEmpty, e.host.utf8.count <= 255 else { throw .invalidField("endpoint.host") }
        guard e.port != 0 else { throw .missingField("endpoint.port") }
        return e
    }
}

/// Public parameters of a member's own T1 key (section 2.2).
public struct T1Params: Equatable, Sendable {
    public var x25519PublicKey: [UInt8]
    public var shortIDs: [[UInt8]]
    public var serverName: String
    public var cover: String

    public init(x25519PublicKey: [UInt8], shortIDs: [[UInt8]], serverName: String, cover: String) {
        self.x25519PublicKey = x25519PublicKey
        self.shortIDs = shortIDs
        self.serverName = serverName
        self.cover = cover
    }

    func encode() -> [UInt8] {
        var w = ProtoWriter()
        w.lengthDelimited(1, x25519PublicKey)
        for s in shortIDs { w.lengthDelimited(2, s) }
        w.string(3, serverName)
        w.string(4, cover)
        return w.bytes
    }

    static func decode(_ bytes: [UInt8]) throws(WireError) -> T1Params {
        var p = T1Params(x25519PublicKey: [], shortIDs: [], serverName: "", cover: "")
        try ProtoReader.forEachField(bytes) { (field, value) throws(WireError) in
            switch field {
            case 1: p.x25519PublicKey = try value.asBytes("own_t1.x25519_pk")
            case 2:
                let s = try value.asBytes("own_t1.short_ids")
                guard s.count <= 8 else { throw .tooLong(field: "own_t1.short_id", length: s.count, limit: 8) }
                p.shortIDs.append(s)
            case 3: p.serverName = try value.asString("own_t1.server_name")
            case 4: p.cover = try value.asString("own_t1.cover")
            default: break
            }
        }
        guard p.x25519PublicKey.count == 32 else { throw .invalidField("own_t1.x25519_pk: must be 32 bytes") }
        return p
    }
}

public enum KeyMode: UInt64, Sendable {
    case universal = 0
    case own = 1
}

public struct DirectoryRecord: Equatable, Sendable {
    public static let maxOperatorLabel = 64
    public static let maxEndpoints = 16
    /// An encoded endorsement envelope is about 3.5 KB (3309 bytes of signature); 8192 leaves room.
    public static let maxEndorsement = 8192

    public var entry: EgressDirectoryEntry
    public var identityPublicKey: [UInt8]
    public var kemPublicKey: [UInt8]
    public var roles: NodeRoles
    public var endpoints: [Endpoint]
    public var issuedAt: UInt64
    public var expiresAt: UInt64
    public var keyMode: KeyMode
    public var ownT1: T1Params?
    public var load: UInt8?
    public var operatorLabel: String?
    /// Field 12: the alliance's endorsement of this node, an encoded `SignedEnvelope` of an
    /// `Endorsement` (section 8.5). Absent in an open alliance. Not interpreted by the codec.
    public var endorsement: [UInt8]?

    public init(entry: EgressDirectoryEntry, identityPublicKey: [UInt8], kemPublicKey: [UInt8], roles: NodeRoles,
                endpoints: [Endpoint], issuedAt: UInt64, expiresAt: UInt64, keyMode: KeyMode = .universal,
                ownT1: T1Params? = nil, load: UInt8? = nil, operatorLabel: String? = nil, endorsement: [UInt8]? = nil) {
        self.entry = entry
        self.identityPublicKey = identityPublicKey
        self.kemPublicKey = kemPublicKey
        self.roles = roles
        self.endpoints = endpoints
        self.issuedAt = issuedAt
        self.expiresAt = expiresAt
        self.keyMode = keyMode
        self.ownT1 = ownT1
        self.load = load
        self.operatorLabel = operatorLabel
        self.endorsement = endorsement
    }

    /// `expires_at == issued_at` withdraws the member.
    public var isWithdrawal: Bool { expiresAt == issuedAt }

    public func encode() -> [UInt8] {
        var w = ProtoWriter()
        w.lengthDelimited(1, entry.encode())
        w.lengthDelimited(2, identityPublicKey)
        w.lengthDelimited(3, kemPublicKey)
        w.varint(4, UInt64(roles.rawValue))
        for e in endpoints { w.lengthDelimited(5, e.encode()) }
        w.varint(6, issuedAt)
        w.varint(7, expiresAt)
        w.varint(8, keyMode.rawValue)
        w.lengthDelimited(9, ifSet: ownT1?.encode())
        w.varint(10, ifSet: load.map(UInt64.init))
        w.string(11, ifSet: operatorLabel)
        w.lengthDelimited(12, ifSet: endorsement)
        return w.bytes
    }

    public static func decode(_ bytes: [UInt8]) throws(WireError) -> DirectoryRecord {
        var entry: EgressDirectoryEntry?
        var identity: [UInt8]?
        var kem: [UInt8]?
        var roles = NodeRoles()
        var endpoints: [Endpoint] = []
        var issuedAt: UInt64?
        var expiresAt: UInt64?
        var keyMode = KeyMode.universal
        var ownT1: T1Params?
        var load: UInt8?
        var label: String?
        var endorsement: [UInt8]?
        try ProtoReader.forEachField(bytes) { (field, value) throws(WireError) in
            switch field {
            case 1: entry = try EgressDirectoryEntry.decode(value.asBytes("entry"))
            case 2:
                let v = try value.asBytes("identity_pk")
                guard v.count == 1952 else { throw .invalidField("identity_pk: must be 1952 bytes") }
                identity = v
            case 3:
                let v = try value.asBytes("kem_pk")
                guard v.count == 1216 else { throw .invalidField("kem_pk: must be 1216 bytes") }
                kem = v
            case 4:
                let v = try value.asUInt32("roles")
                guard v & ~UInt32(7) == 0 else { throw .invalidValue(field: "roles", value: UInt64(v)) }
                roles = NodeRoles(rawValue: v)
            case 5:
                guard endpoints.count < maxEndpoints else { throw .tooLong(field: "endpoints", length: endpoints.count + 1, limit: maxEndpoints) }
                endpoints.append(try Endpoint.decode(value.asBytes("endpoint")))
            case 6: issuedAt = try value.asVarint("issued_at")
            case 7: expiresAt = try value.asVarint("expires_at")
            case 8:
                let v = try value.asVarint("key_mode")
                guard let m = KeyMode(rawValue: v) else { throw .invalidValue(field: "key_mode", value: v) }
                keyMode = m
            case 9: ownT1 = try T1Params.decode(value.asBytes("own_t1"))
            case 10:
                let v = try value.asVarint("load")
                guard v <= 100 else { throw .invalidValue(field: "load", value: v) }
                load = UInt8(v)
            case 11:
                let s = try value.asString("operator")
                guard s.utf8.count <= maxOperatorLabel else { throw .tooLong(field: "operator", length: s.utf8.count, limit: maxOperatorLabel) }
                label = s
            case 12:
                let v = try value.asBytes("endorsement")
                guard v.count <= maxEndorsement else { throw .tooLong(field: "endorsement", length: v.count, limit: maxEndorsement) }
                endorsement = v
            default: break
            }
        }
        guard let entry else { throw .missingField("entry") }
        guard let identity else { throw .missingField("identity_pk") }
        guard let kem else { throw .missingField("kem_pk") }
        guard let issuedAt else { throw .missingField("issued_at") }
        guard let expiresAt else { throw .missingField("expires_at") }
        guard expiresAt >= issuedAt else { throw .invalidField("expires_at before issued_at") }
        if keyMode == .own && ownT1 == nil { throw .missingField("own_t1 (key_mode is OWN)") }
        return DirectoryRecord(entry: entry, identityPublicKey: identity, kemPublicKey: kem, roles: roles,
                               endpoints: endpoints, issuedAt: issuedAt, expiresAt: expiresAt, keyMode: keyMode,
                               ownT1: ownT1, load: load, operatorLabel: label, endorsement: endorsement)
    }
}

/// `{ payload(1): bytes; signature(2): bytes }`: the envelope of records, attestations and passes.
/// The payload stays as received bytes so the signature is checked over exactly what was signed.
public struct SignedEnvelope: Equatable, Sendable {
    public static let signatureSize = 3309

    public var payload: [UInt8]
    public var signature: [UInt8]

    public init(payload: [UInt8], signature: [UInt8]) {
        self.payload = payload
        self.signature = signature
    }

    public func encode() -> [UInt8] {
        var w = ProtoWriter()
        w.lengthDelimited(1, payload)
        w.lengthDelimited(2, signature)
        return w.bytes
    }

    public static func decode(_ bytes: [UInt8]) throws(WireError) -> SignedEnvelope {
        var payload: [UInt8]?
        var signature: [UInt8]?
        try ProtoReader.forEachField(bytes) { (field, value) throws(WireError) in
            switch field {
            case 1: payload = try value.asBytes("payload")
            case 2: signature = try value.asBytes("signature")
            default: break
            }
        }
        guard let payload else { throw .missingField("payload") }
        guard let signature else { throw .missingField("signature") }
        guard signature.count == signatureSize else { throw .invalidField("signature: must be \(signatureSize) bytes") }
        return SignedEnvelope(payload: payload, signature: signature)
    }
}

public struct Attestation: Equatable, Sendable {
    public struct Method: OptionSet, Sendable {
        public let rawValue: UInt32
        public init(rawValue: UInt32) { self.rawValue = rawValue }
        public static let sessionVerified = Method(rawValue: 1)
        public static let egressGeolocated = Method(rawValue: 2)
    }

    public var subject: [UInt8]
    public var countryCode: String
    public var window: UInt32
    public var attester: [UInt8]
    public var method: Method
    public var observedEgressIP: [UInt8]?

    public init(subject: [UInt8], countryCode: String, window: UInt32, attester: [UInt8], method: Method, observedEgressIP: [UInt8]? = nil) {
        self.subject = subject
        self.countryCode = countryCode
        self.window = window
        self.attester = attester
        self.method = method
        self.observedEgressIP = observedEgressIP
    }

    public func encode() -> [UInt8] {
        var w = ProtoWriter()
        w.lengthDelimited(1, subject)
        w.string(2, countryCode)
        w.varint(3, UInt64(window))
        w.lengthDelimited(4, attester)
        w.varint(5, UInt64(method.rawValue))
        w.lengthDelimited(6, ifSet: observedEgressIP)
        return w.bytes
    }

    public static func decode(_ bytes: [UInt8]) throws(WireError) -> Attestation {
        var a = Attestation(subject: [], countryCode: "", window: 0, attester: [], method: [])
        var sawWindow = false
        try ProtoReader.forEachField(bytes) { (field, value) throws(WireError) in
            switch field {
            case 1: a.subject = try value.asBytes("subject")
            case 2: a.countryCode = try CountryCode.decode(value.asBytes("country_code"), allowUnknownVantage: false, field: "country_code")
            case 3: a.window = try value.asUInt32("window"); sawWindow = true
            case 4: a.attester = try value.asBytes("attester")
            case 5: a.method = Method(rawValue: try value.asUInt32("method") & 3)
            case 6:
                let ip = try value.asBytes("observed_egress_ip")
                guard ip.count == 4 || ip.count == 16 else { throw .invalidField("observed_egress_ip: must be 4 or 16 bytes") }
                a.observedEgressIP = ip
            default: break
            }
        }
        guard a.subject.count == 32 else { throw .invalidField("subject: must be a 32-byte node id") }
        guard a.attester.count == 32 else { throw .invalidField("attester: must be a 32-byte node id") }
        guard !a.countryCode.isEmpty else { throw .missingField("country_code") }
        guard sawWindow else { throw .missingField("window") }
        return a
    }
}

/// An account's admission pass (section 7.1).
public struct AccountPass: Equatable, Sendable {
    public var accountID: [UInt8]
    public var notBefore: UInt64
    public var notAfter: UInt64
    public var tier: UInt32
    public var issuer: [UInt8]
    public var quotaBytes: UInt64

    public init(accountID: [UInt8], notBefore: UInt64, notAfter: UInt64, tier: UInt32 = 0, issuer: [UInt8], quotaBytes: UInt64 = 0) {
        self.accountID = accountID
        self.notBefore = notBefore
        self.notAfter = notAfter
        self.tier = tier
        self.issuer = issuer
        self.quotaBytes = quotaBytes
    }

    public func encode() -> [UInt8] {
        var w = ProtoWriter()
        w.lengthDelimited(1, accountID)
        w.varint(2, notBefore)
        w.varint(3, notAfter)
        w.varint(4, UInt64(tier))
        w.lengthDelimited(5, issuer)
        w.varint(6, quotaBytes)
        return w.bytes
    }

    public static func decode(_ bytes: [UInt8]) throws(WireError) -> AccountPass {
        var p = AccountPass(accountID: [], notBefore: 0, notAfter: 0, issuer: [])
        try ProtoReader.forEachField(bytes) { (field, value) throws(WireError) in
            switch field {
            case 1: p.accountID = try value.asBytes("account_id")
            case 2: p.notBefore = try value.asVarint("not_before")
            case 3: p.notAfter = try value.asVarint("not_after")
            case 4: p.tier = try value.asUInt32("tier")
            case 5: p.issuer = try value.asBytes("issuer")
            case 6: p.quotaBytes = try value.asVarint("quota_bytes")
            default: break
            }
        }
        guard p.accountID.count == 32 else { throw .invalidField("account_id: must be 32 bytes") }
        guard p.issuer.count == 32 else { throw .invalidField("issuer: must be a 32-byte node id") }
        guard p.notAfter >= p.notBefore else { throw .invalidField("not_after before not_before") }
        return p
    }
}

extension WireError {
    /// The field an error is about (`country_code`, `capacity_class`, `endorsement.operator`, …),
    /// or nil for errors about the framing (truncation, trailing bytes, varints). For
    /// `invalidField` it is the text before the first `:` or space, which is how every decoder
    /// here names the field. Lets validators map errors to reasons without matching messages.
    public var field: String? {
        switch self {
        case .tooLong(let f, _, _), .invalidValue(let f, _): return f
        case .invalidField(let text), .missingField(let text):
            return String(text.prefix(while: { $0 != ":" && $0 != " " }))
        case .truncated, .trailingBytes, .unknownType, .varintOverflow, .unsupportedWireType: return nil
        }
    }
}
