import MontanaCrypto
import MontanaWire

/// `alliance.json`: the alliance's public description, shipped to every member and (through
/// subscriptions) to every client. Nothing in it is secret.
///
/// `decode`/`load` are the checked entry points: they validate every field and normalise hex
/// and the UUID to lowercase, undashed form. Plain `Codable` decoding does not validate.
public struct AllianceDocument: Codable, Sendable, Equatable {
    public static let currentFormat = "montana-alliance-v1"
    public static let maxName = 64
    /// Issuer keys are 1952-byte ML-DSA-65 keys; an alliance trusts at most 16 of them.
    public static let maxPassIssuers = 16

    public var format: String
    /// 1...64 bytes of UTF-8, no control characters.
    public var name: String
    /// 32 lowercase hex digits (16 bytes).
    public var uuid: String
    /// `true`: records need no endorsement (for experiments; anyone may join).
    public var open: Bool
    public var universalT1: UniversalT1
    /// Hex of the ML-DSA-65 public key that signs endorsements.
    public var membershipPublicKey: String
    /// Hex ML-DSA-65 public keys whose account passes exits of this alliance accept.
    public var passIssuers: [String]

    enum CodingKeys: String, CodingKey {
        case format, name, uuid, open
        case universalT1 = "universal_t1"
        case membershipPublicKey = "membership_pk"
        case passIssuers = "pass_issuers"
    }

    public init(name: String, uuid: [UInt8], open: Bool, universalT1: UniversalT1,
                membershipPublicKey: [UInt8], passIssuers: [[UInt8]]) {
        format = Self.currentFormat
        self.name = name
        self.uuid = Hex.encode(uuid)
        self.open = open
        self.universalT1 = universalT1
        self.membershipPublicKey = Hex.encode(membershipPublicKey)
        self.passIssuers = passIssuers.map { Hex.encode($0) }
    }

    public var uuidBytes: [UInt8] { Hex.decode(uuid) ?? [] }
    public var membershipKeyBytes: [UInt8] { Hex.decode(membershipPublicKey) ?? [] }
    public var passIssuerKeys: [[UInt8]] { passIssuers.compactMap { Hex.decode($0) } }

    public static func load(path: String) throws(AllianceFileError) -> AllianceDocument {
        try decode(AllianceJSON.read(path), file: path)
    }

    /// Decodes and validates; `file` names the source in errors.
    public static func decode(_ data: [UInt8], file: String) throws(AllianceFileError) -> AllianceDocument {
        var doc = try AllianceJSON.decode(AllianceDocument.self, from: data, file: file)
        try doc.validate(file: file)
        return doc
    }

    /// Throws the first invalid field; normalises hex and the UUID.
    public mutating func validate(file: String) throws(AllianceFileError) {
        guard format == Self.currentFormat else {
            throw .invalid(file: file, key: "format", problem: "must be \"\(Self.currentFormat)\", found \"\(format)\"")
        }
        try AllianceJSON.text(name, bytes: 1...Self.maxName, file: file, key: "name")
        uuid = try AllianceJSON.uuid(uuid, file: file, key: "uuid")
        try universalT1.validate(file: file, key: "universal_t1")
        membershipPublicKey = Hex.encode(try AllianceJSON.hex(membershipPublicKey, bytes: IdentityKey.publicKeySize, file: file, key: "membership_pk"))
        guard passIssuers.count <= Self.maxPassIssuers else {
            throw .invalid(file: file, key: "pass_issuers", problem: "has \(passIssuers.count) keys, limit \(Self.maxPassIssuers)")
        }
        for (i, k) in passIssuers.enumerated() {
            passIssuers[i] = Hex.encode(try AllianceJSON.hex(k, bytes: IdentityKey.publicKeySize, file: file, key: "pass_issuers[\(i)]"))
        }
    }

    /// Pretty, sorted-key JSON with a final newline.
    public func encoded() -> [UInt8] { AllianceJSON.encode(self) }

    /// Writes atomically with mode 0644 (the file is public).
    public func write(to path: String) throws {
        try AllianceJSON.writePublic(encoded(), to: path)
    }
}
