import MontanaCrypto
import MontanaWire

/// `alliance.secret`: the alliance's private keys. Kept by whoever admits members (it signs
/// endorsements and passes) and never shipped to nodes or clients. JSON, mode 0600; loading
/// refuses a file group or others may read.
public struct AllianceSecret: Sendable, CustomStringConvertible {
    public static let currentFormat = "montana-alliance-secret-v1"

    /// Undashed lowercase hex; must equal the document's.
    public var uuid: String
    public let membershipKey: IdentityKey
    public let passIssuerKey: IdentityKey
    public let universalT1: T1Key

    public init(uuid: [UInt8], membershipKey: IdentityKey, passIssuerKey: IdentityKey, universalT1: T1Key) {
        self.uuid = Hex.encode(uuid)
        self.membershipKey = membershipKey
        self.passIssuerKey = passIssuerKey
        self.universalT1 = universalT1
    }

    struct File: Codable {
        var format: String
        var uuid: String
        var universalT1Private: String
        var membershipSeed: String
        var passIssuerSeed: String

        enum CodingKeys: String, CodingKey {
            case format, uuid
            case universalT1Private = "universal_t1_private"
            case membershipSeed = "membership_seed"
            case passIssuerSeed = "pass_issuer_seed"
        }
    }

    public var uuidBytes: [UInt8] { Hex.decode(uuid) ?? [] }

    /// Never the keys: printing a secret by mistake must not leak it.
    public var description: String { "AllianceSecret(uuid: \(uuid), private keys not shown)" }

    public static func load(path: String) throws(AllianceFileError) -> AllianceSecret {
        try decode(AllianceJSON.readSecret(path), file: path)
    }

    /// Decodes and checks the secret (no permission check: `load` does that).
    public static func decode(_ data: [UInt8], file: String) throws(AllianceFileError) -> AllianceSecret {
        let f = try AllianceJSON.decode(File.self, from: data, file: file)
        try AllianceJSON.format(f.format, expected: currentFormat, file: file)
        let uuid = try AllianceJSON.uuid(f.uuid, file: file, key: "uuid")
        let t1 = try AllianceJSON.hex(f.universalT1Private, bytes: 32, file: file, key: "universal_t1_private")
        let membership = try AllianceJSON.hex(f.membershipSeed, bytes: 32, file: file, key: "membership_seed")
        let issuer = try AllianceJSON.hex(f.passIssuerSeed, bytes: 32, file: file, key: "pass_issuer_seed")
        let t1Key: T1Key, membershipKey: IdentityKey, issuerKey: IdentityKey
        do { t1Key = try T1Key(privateKey: t1) } catch {
            throw .invalid(file: file, key: "universal_t1_private", problem: "not a valid X25519 private key")
        }
        do { membershipKey = try IdentityKey(seed: membership) } catch {
            throw .invalid(file: file, key: "membership_seed", problem: "not a valid ML-DSA-65 seed")
        }
        do { issuerKey = try IdentityKey(seed: issuer) } catch {
            throw .invalid(file: file, key: "pass_issuer_seed", problem: "not a valid ML-DSA-65 seed")
        }
        return AllianceSecret(uuid: Hex.decode(uuid) ?? [], membershipKey: membershipKey, passIssuerKey: issuerKey, universalT1: t1Key)
    }

    /// JSON of the secret (contains private keys: write it only with `write`).
    func encoded() -> [UInt8] {
        AllianceJSON.encode(File(format: Self.currentFormat, uuid: uuid, universalT1Private: Hex.encode(universalT1.privateKey),
                                 membershipSeed: Hex.encode(membershipKey.seed), passIssuerSeed: Hex.encode(passIssuerKey.seed)))
    }

    /// Writes with mode 0600, exclusively unless `overwrite` (as `KeyFile` does).
    public func write(to path: String, overwrite: Bool) throws {
        try KeyFile.writeSecret(encoded(), to: path, overwrite: overwrite)
    }

    /// Checks that this secret belongs to `document`: same UUID, the membership and universal T1
    /// public keys derive from these private keys, and the pass issuer key is trusted there.
    /// `file` names the secret in errors.
    public func check(matches document: AllianceDocument, file: String) throws(AllianceFileError) {
        guard uuid == document.uuid else {
            throw .invalid(file: file, key: "uuid", problem: "is \(uuid), but the alliance file says \(document.uuid)")
        }
        guard membershipKey.publicKey == document.membershipKeyBytes else {
            throw .invalid(file: file, key: "membership_seed", problem: "does not match the alliance's membership_pk")
        }
        guard universalT1.publicKey == document.universalT1.x25519PublicKeyBytes else {
            throw .invalid(file: file, key: "universal_t1_private", problem: "does not match the alliance's universal_t1.x25519_pk")
        }
        guard document.passIssuerKeys.contains(passIssuerKey.publicKey) else {
            throw .invalid(file: file, key: "pass_issuer_seed", problem: "its key is not among the alliance's pass_issuers")
        }
    }
}
