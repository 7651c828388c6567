import MontanaCrypto
import MontanaWire

/// The file `montana alliance endorse` writes and the operator hands to the node:
/// `{"format":"montana-endorsement-v1","alliance":uuid,"node_id":hex,"operator":label,"signed":hex}`.
/// `signed` is the `SignedEnvelope` the node puts into its record (field 12); the other fields
/// repeat what it says, for people, and must agree with it.
public struct EndorsementFile: Codable, Sendable, Equatable {
    public static let currentFormat = "montana-endorsement-v1"
    /// An encoded envelope is about 3.5 KB; as `DirectoryRecord.maxEndorsement`.
    public static let maxSignedBytes = DirectoryRecord.maxEndorsement

    public var format: String
    /// Undashed lowercase UUID of the alliance.
    public var alliance: String
    /// Hex node id.
    public var nodeID: String
    /// May be "".
    public var operatorLabel: String
    /// Hex of the encoded `SignedEnvelope`.
    public var signed: String

    enum CodingKeys: String, CodingKey {
        case format, alliance, signed
        case nodeID = "node_id"
        case operatorLabel = "operator"
    }

    public init(signed envelope: SignedEnvelope, endorsement: Endorsement) {
        format = Self.currentFormat
        alliance = Hex.encode(endorsement.alliance)
        nodeID = Hex.encode(endorsement.nodeID)
        operatorLabel = endorsement.operatorLabel
        signed = Hex.encode(envelope.encode())
    }

    public var signedBytes: [UInt8] { Hex.decode(signed) ?? [] }

    /// Signs an endorsement of `nodeID` with the alliance membership key. Refuses a secret that
    /// does not belong to `alliance` and an operator label over 64 bytes.
    public static func make(endorsing nodeID: NodeID, operator label: String, alliance: AllianceDocument,
                            secret: AllianceSecret, now: UInt64) throws -> EndorsementFile {
        guard secret.uuid == alliance.uuid else {
            throw AllianceFileError.invalid(file: "alliance.secret", key: "uuid", problem: "belongs to another alliance (\(secret.uuid), not \(alliance.uuid))")
        }
        guard secret.membershipKey.publicKey == alliance.membershipKeyBytes else {
            throw AllianceFileError.invalid(file: "alliance.secret", key: "membership_seed", problem: "does not match the alliance's membership_pk")
        }
        try AllianceJSON.text(label, bytes: 0...Endorsement.maxOperatorLabel, file: "(endorsement)", key: "operator")
        let e = Endorsement(alliance: alliance.uuidBytes, nodeID: nodeID.bytes, operatorLabel: label, issuedAt: now)
        return EndorsementFile(signed: try EndorsementSigner.sign(e, with: secret.membershipKey), endorsement: e)
    }

    public static func load(path: String) throws(AllianceFileError) -> EndorsementFile {
        try decode(AllianceJSON.read(path), file: path)
    }

    /// Decodes and checks that the JSON fields agree with the signed endorsement. The signature
    /// itself is checked by `verify(alliance:)` or by whoever validates the record.
    public static func decode(_ data: [UInt8], file: String) throws(AllianceFileError) -> EndorsementFile {
        var f = try AllianceJSON.decode(EndorsementFile.self, from: data, file: file)
        try AllianceJSON.format(f.format, expected: currentFormat, file: file)
        f.alliance = try AllianceJSON.uuid(f.alliance, file: file, key: "alliance")
        f.nodeID = Hex.encode(try AllianceJSON.hex(f.nodeID, bytes: 32, file: file, key: "node_id"))
        try AllianceJSON.text(f.operatorLabel, bytes: 0...Endorsement.maxOperatorLabel, file: file, key: "operator")
        guard let bytes = Hex.decode(f.signed), !bytes.isEmpty, bytes.count <= maxSignedBytes else {
            throw .invalid(file: file, key: "signed", problem: "must be hex of at most \(maxSignedBytes) bytes")
        }
        f.signed = Hex.encode(bytes)
        let e: Endorsement
        do {
            e = try Endorsement.decode(SignedEnvelope.decode(bytes).payload)
        } catch {
            throw .invalid(file: file, key: "signed", problem: "not a signed endorsement (\(error))")
        }
        guard Hex.encode(e.alliance) == f.alliance else { throw .invalid(file: file, key: "alliance", problem: "differs from the signed endorsement") }
        guard Hex.encode(e.nodeID) == f.nodeID else { throw .invalid(file: file, key: "node_id", problem: "differs from the signed endorsement") }
        guard e.operatorLabel == f.operatorLabel else { throw .invalid(file: file, key: "operator", problem: "differs from the signed endorsement") }
        return f
    }

    /// The endorsement, if it is signed by `alliance`'s membership key and names that alliance.
    public func verify(alliance: AllianceDocument, file: String = "(endorsement)") throws(AllianceFileError) -> Endorsement {
        let e: Endorsement
        do {
            e = try EndorsementSigner.verify(signedBytes, membershipPublicKey: alliance.membershipKeyBytes)
        } catch {
            throw .invalid(file: file, key: "signed", problem: "not signed by this alliance's membership key (\(error))")
        }
        guard e.alliance == alliance.uuidBytes else {
            throw .invalid(file: file, key: "alliance", problem: "endorsement is for alliance \(Hex.encode(e.alliance)), not \(alliance.uuid)")
        }
        return e
    }

    public func encoded() -> [UInt8] { AllianceJSON.encode(self) }

    /// Writes atomically, mode 0644 (an endorsement is public: it travels in every record).
    public func write(to path: String) throws {
        try AllianceJSON.writePublic(encoded(), to: path)
    }
}
