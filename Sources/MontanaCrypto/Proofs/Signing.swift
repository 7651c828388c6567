import MontanaWire

/// Domain-separated ML-DSA-65 signatures over directory records, attestations and passes.
public enum SignedObject {
    public static let recordLabel = Array("montana-directory-record-v1".utf8)
    public static let attestationLabel = Array("montana-attestation-v1".utf8)
    public static let passLabel = Array("montana-account-pass-v1".utf8)
    public static let endorsementLabel = Array("montana-endorsement-v1".utf8)

    public static func sign(_ payload: [UInt8], label: [UInt8], with key: IdentityKey) throws -> SignedEnvelope {
        SignedEnvelope(payload: payload, signature: try key.sign(label + payload))
    }

    public static func verify(_ envelope: SignedEnvelope, label: [UInt8], publicKey: [UInt8]) -> Bool {
        IdentityKey.verify(publicKey: publicKey, signature: envelope.signature, message: label + envelope.payload)
    }
}

public enum SignedObjectError: Error, Equatable, Sendable, CustomStringConvertible {
    case malformed(String)
    case badSignature
    case nodeIDMismatch
    case unknownIssuer
    case wrongAccount
    case notYetValid
    case expired

    public var description: String {
        switch self {
        case .malformed(let why): return "malformed: \(why)"
        case .badSignature: return "signature does not verify"
        case .nodeIDMismatch: return "node id does not match identity key"
        case .unknownIssuer: return "issuer is not trusted here"
        case .wrongAccount: return "pass belongs to another account"
        case .notYetValid: return "pass is not valid yet"
        case .expired: return "pass has expired"
        }
    }
}

/// Directory records: the entry's node id must be `H("mt-node" ‖ identity_pk)` and the record must
/// be signed by that identity.
public enum RecordSigner {
    public static func sign(_ record: DirectoryRecord, with key: IdentityKey) throws -> SignedEnvelope {
        try SignedObject.sign(record.encode(), label: SignedObject.recordLabel, with: key)
    }

    public static func verify(_ bytes: [UInt8]) throws(SignedObjectError) -> DirectoryRecord {
        let envelope: SignedEnvelope
        let record: DirectoryRecord
        do {
            envelope = try SignedEnvelope.decode(bytes)
            record = try DirectoryRecord.decode(envelope.payload)
        } catch {
            throw .malformed("\(error)")
        }
        guard NodeID(identityPublicKey: record.identityPublicKey).bytes == record.entry.exitNodeID else { throw .nodeIDMismatch }
        guard SignedObject.verify(envelope, label: SignedObject.recordLabel, publicKey: record.identityPublicKey) else { throw .badSignature }
        return record
    }
}

public enum AttestationSigner {
    public static func sign(_ attestation: Attestation, with key: IdentityKey) throws -> SignedEnvelope {
        try SignedObject.sign(attestation.encode(), label: SignedObject.attestationLabel, with: key)
    }

    /// `attesterPublicKey` comes from the attester's directory record.
    public static func verify(_ bytes: [UInt8], attesterPublicKey: [UInt8]) throws(SignedObjectError) -> Attestation {
        let envelope: SignedEnvelope
        let attestation: Attestation
        do {
            envelope = try SignedEnvelope.decode(bytes)
            attestation = try Attestation.decode(envelope.payload)
        } catch {
            throw .malformed("\(error)")
        }
        guard NodeID(identityPublicKey: attesterPublicKey).bytes == attestation.attester else { throw .nodeIDMismatch }
        guard SignedObject.verify(envelope, label: SignedObject.attestationLabel, publicKey: attesterPublicKey) else { throw .badSignature }
        return attestation
    }
}

public enum PassSigner {
    public static func sign(_ pass: AccountPass, with issuer: IdentityKey) throws -> SignedEnvelope {
        try SignedObject.sign(pass.encode(), label: SignedObject.passLabel, with: issuer)
    }

    public static func verify(_ bytes: [UInt8], issuers: [[UInt8]], accountID: [UInt8], now: UInt64) throws(SignedObjectError) -> AccountPass {
        let envelope: SignedEnvelope
        let pass: AccountPass
        do {
            envelope = try SignedEnvelope.decode(bytes)
            pass = try AccountPass.decode(envelope.payload)
        } catch {
            throw .malformed("\(error)")
        }
        guard let issuerKey = issuers.first(where: { NodeID(identityPublicKey: $0).bytes == pass.issuer }) else { throw .unknownIssuer }
        guard SignedObject.verify(envelope, label: SignedObject.passLabel, publicKey: issuerKey) else { throw .badSignature }
        guard ConstantTime.equal(pass.accountID, accountID) else { throw .wrongAccount }
        guard now >= pass.notBefore else { throw .notYetValid }
        guard now <= pass.notAfter else { throw .expired }
        return pass
    }
}

/// Endorsements (PROTOCOL.md section 8.5): signed by the alliance membership key, whose public
/// half is `membership_pk` in alliance.json. Whether the endorsement names the right alliance and
/// node is the caller's check (`RecordValidator`).
public enum EndorsementSigner {
    public static func sign(_ e: Endorsement, with membershipKey: IdentityKey) throws -> SignedEnvelope {
        try SignedObject.sign(e.encode(), label: SignedObject.endorsementLabel, with: membershipKey)
    }

    public static func verify(_ bytes: [UInt8], membershipPublicKey: [UInt8]) throws(SignedObjectError) -> Endorsement {
        let envelope: SignedEnvelope
        let endorsement: Endorsement
        do {
            envelope = try SignedEnvelope.decode(bytes)
            endorsement = try Endorsement.decode(envelope.payload)
        } catch {
            throw .malformed("\(error)")
        }
        guard SignedObject.verify(envelope, label: SignedObject.endorsementLabel, publicKey: membershipPublicKey) else { throw .badSignature }
        return endorsement
    }
}
