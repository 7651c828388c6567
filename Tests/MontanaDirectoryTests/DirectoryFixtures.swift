import Foundation
import MontanaCrypto
@testable import MontanaDirectory
import MontanaWire
import XCTest

/// Test alliances, members and signed objects. Keys are real ML-DSA-65 keys: node ids must differ.
enum Fixtures {
    /// A fixed "now": 2025-06-15, W = 29 166 666.
    static let now: UInt64 = 1_750_000_000
    static var window: UInt32 { UInt32(TimeWindow.window(unixSeconds: now)) }

    /// One closed alliance for the whole run (keygen costs).
    static let closed: (AllianceDocument, AllianceSecret) = try! Alliance.create(name: "Test Alliance", open: false)
    static let other: (AllianceDocument, AllianceSecret) = try! Alliance.create(name: "Other Alliance", open: false)
    static var openAlliance: AllianceDocument {
        var doc = closed.0
        doc.open = true
        return doc
    }

    static func tempDir() throws -> String {
        let dir = NSTemporaryDirectory() + "montana-directory-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }

    static func unixNow() -> UInt64 { UInt64(Date().timeIntervalSince1970) }
}

/// A member node for tests: its keys and the record fields it advertises.
struct TestNode {
    let identity: IdentityKey
    let kem: [UInt8]
    var country: String
    var roles: NodeRoles
    var host: String
    var operatorLabel: String?

    init(country: String = "DE", roles: NodeRoles = [.front, .exit], host: String = "198.51.100.1", operator label: String? = nil) throws {
        identity = try IdentityKey.generate()
        kem = SecureRandom.bytes(KEMKey.publicKeySize)
        self.country = country
        self.roles = roles
        self.host = host
        operatorLabel = label
    }

    var nodeID: NodeID { identity.nodeID }

    enum EndorsedBy {
        case alliance, none, otherAlliance, wrongUUID, otherNode, otherOperator(String), garbage
    }

    /// The record as it would be signed at `now` (advertised window = W(now), valid for an hour).
    func record(now: UInt64 = Fixtures.now, window: UInt32? = nil, expiresIn: UInt64 = 3600, withdraw: Bool = false,
                endorsedBy: EndorsedBy = .alliance, alliance: (AllianceDocument, AllianceSecret) = Fixtures.closed) throws -> DirectoryRecord {
        let w = window ?? UInt32(TimeWindow.window(unixSeconds: now))
        let entry = try EgressDirectoryEntry(exitNodeID: nodeID.bytes, countryCode: country, capacityClass: .standard, advertisedWindow: w)
        var r = DirectoryRecord(entry: entry, identityPublicKey: identity.publicKey, kemPublicKey: kem, roles: roles,
                                endpoints: [Endpoint(profile: 0, host: host, port: 443)], issuedAt: now,
                                expiresAt: withdraw ? now : now + expiresIn, operatorLabel: operatorLabel)
        r.endorsement = try endorsement(endorsedBy, alliance: alliance, now: now)
        return r
    }

    func endorsement(_ by: EndorsedBy, alliance: (AllianceDocument, AllianceSecret), now: UInt64) throws -> [UInt8]? {
        var e = Endorsement(alliance: alliance.0.uuidBytes, nodeID: nodeID.bytes, operatorLabel: operatorLabel ?? "", issuedAt: now)
        var key = alliance.1.membershipKey
        switch by {
        case .alliance: break
        case .none: return nil
        case .otherAlliance:
            e.alliance = Fixtures.other.0.uuidBytes
            key = Fixtures.other.1.membershipKey
        case .wrongUUID: e.alliance = Fixtures.other.0.uuidBytes
        case .otherNode: e.nodeID = try IdentityKey.generate().nodeID.bytes
        case .otherOperator(let label): e.operatorLabel = label
        case .garbage: return [0x0a, 0x02, 0x01]
        }
        return try EndorsementSigner.sign(e, with: key).encode()
    }

    func signed(_ record: DirectoryRecord) throws -> [UInt8] {
        try RecordSigner.sign(record, with: identity).encode()
    }

    func signedRecord(now: UInt64 = Fixtures.now, window: UInt32? = nil, expiresIn: UInt64 = 3600, withdraw: Bool = false,
                      endorsedBy: EndorsedBy = .alliance) throws -> [UInt8] {
        try signed(record(now: now, window: window, expiresIn: expiresIn, withdraw: withdraw, endorsedBy: endorsedBy))
    }

    /// Signs a hand-made payload (for fields the encoder would never produce).
    func signPayload(_ payload: [UInt8]) throws -> [UInt8] {
        try SignedObject.sign(payload, label: SignedObject.recordLabel, with: identity).encode()
    }

    /// An attestation by this node about `subject`.
    func attest(_ subject: TestNode, country: String? = nil, window: UInt32 = Fixtures.window,
                method: Attestation.Method = [.sessionVerified, .egressGeolocated]) throws -> [UInt8] {
        let a = Attestation(subject: subject.nodeID.bytes, countryCode: country ?? subject.country, window: window,
                            attester: nodeID.bytes, method: method)
        return try AttestationSigner.sign(a, with: identity).encode()
    }
}

extension Array where Element == UInt8 {
    /// Replaces the first occurrence of `pattern` (which must occur).
    func replacing(_ pattern: [UInt8], with replacement: [UInt8]) -> [UInt8] {
        guard pattern.count <= count else { return self }
        for i in 0...(count - pattern.count) where Array(self[i..<i + pattern.count]) == pattern {
            return Array(self[..<i]) + replacement + Array(self[(i + pattern.count)...])
        }
        XCTFail("pattern not found")
        return self
    }
}
