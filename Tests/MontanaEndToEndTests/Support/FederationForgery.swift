import Foundation
import MontanaCrypto
import MontanaDirectory
import MontanaTransport
import MontanaWire

/// Hostile directory records built in-test with the product's own types, one per rejection
/// reason of PROTOCOL.md 8.4. Each uses a fresh identity, so its node id must never appear in
/// any directory.
struct ForgedRecord {
    /// What the forgery is, for messages.
    let name: String
    /// The `reason` label the validator must count it under.
    let reason: String
    /// The node id the record claims (hex).
    let nodeID: String
    /// The signed envelope as sent.
    let signed: [UInt8]
    /// The identity that made it (for pushing it as its own `self_record`).
    let identity: IdentityKey
}

struct RecordForger {
    let alliance: AllianceDocument
    let secret: AllianceSecret
    /// Another alliance's keys (foreign endorsements).
    let foreign: (AllianceDocument, AllianceSecret)

    init(alliancePath: String, secretPath: String) throws {
        alliance = try AllianceDocument.load(path: alliancePath)
        secret = try AllianceSecret.load(path: secretPath)
        foreign = try Alliance.create(name: "Some other alliance", open: false)
    }

    /// The operator label every forgery claims (and its endorsement names).
    static let operatorLabel = "Forgers Inc"
    /// A 20 KiB endpoint `params` string: the record is over the 16384-byte bound.
    static let oversizedParamsBytes = 20 * 1024
    /// One byte over `DirectoryRecord.maxOperatorLabel` (64).
    static let longOperatorBytes = DirectoryRecord.maxOperatorLabel + 1

    /// Every forgery, at `now`.
    func all(now: UInt64 = WallClock.now()) throws -> [ForgedRecord] {
        let window = UInt32(TimeWindow.window(unixSeconds: now))
        var out: [ForgedRecord] = []

        // Signed correctly, then one signature byte flipped.
        var key = try IdentityKey.generate()
        var signed = try sign(record(key, window: window, now: now, endorsement: endorse(key)), key)
        signed[signed.count - 1] ^= 0x01
        out.append(ForgedRecord(name: "bad signature", reason: "bad_signature", nodeID: key.nodeID.hex, signed: signed, identity: key))

        // The entry names another node than the identity key's.
        key = try IdentityKey.generate()
        var r = try record(key, window: window, now: now, endorsement: endorse(key))
        r.entry.exitNodeID = SecureRandom.bytes(32)
        out.append(ForgedRecord(name: "node id mismatch", reason: "node_id_mismatch", nodeID: Hex.encode(r.entry.exitNodeID),
                                signed: try sign(r, key), identity: key))

        // A closed alliance's record without field 12.
        key = try IdentityKey.generate()
        out.append(ForgedRecord(name: "no endorsement", reason: "no_endorsement", nodeID: key.nodeID.hex,
                                signed: try sign(record(key, window: window, now: now, endorsement: nil), key), identity: key))

        // Endorsed by another alliance's membership key.
        key = try IdentityKey.generate()
        let foreignEndorsement = try EndorsementFile.make(endorsing: key.nodeID, operator: Self.operatorLabel, alliance: foreign.0,
                                                          secret: foreign.1, now: now).signedBytes
        out.append(ForgedRecord(name: "foreign endorsement", reason: "foreign_endorsement", nodeID: key.nodeID.hex,
                                signed: try sign(record(key, window: window, now: now, endorsement: foreignEndorsement), key), identity: key))

        // ZZ (user-assigned, not an ISO country) and capacity class 3: EgressDirectoryEntry's
        // init refuses both, so the 39 entry bytes are written by hand into the record.
        key = try IdentityKey.generate()
        out.append(ForgedRecord(name: "unassigned country ZZ", reason: "country", nodeID: key.nodeID.hex,
                                signed: try signPatched(record(key, window: window, now: now, endorsement: endorse(key)), key,
                                                        entry: rawEntry(key.nodeID.bytes, country: "ZZ", capacity: 1, window: window)),
                                identity: key))
        key = try IdentityKey.generate()
        out.append(ForgedRecord(name: "capacity class 3", reason: "capacity", nodeID: key.nodeID.hex,
                                signed: try signPatched(record(key, window: window, now: now, endorsement: endorse(key)), key,
                                                        entry: rawEntry(key.nodeID.bytes, country: "DE", capacity: 3, window: window)),
                                identity: key))

        // Advertised 8 windows ago: one past the 7 a record stays fresh.
        key = try IdentityKey.generate()
        let staleWindow = window - UInt32(RecordValidator.freshWindows + 1)
        out.append(ForgedRecord(name: "stale window", reason: "stale", nodeID: key.nodeID.hex,
                                signed: try sign(record(key, window: staleWindow, now: now, endorsement: endorse(key)), key), identity: key))

        // An operator label of 65 bytes (the bound is 64).
        key = try IdentityKey.generate()
        r = try record(key, window: window, now: now, endorsement: endorse(key))
        r.operatorLabel = String(repeating: "o", count: Self.longOperatorBytes)
        out.append(ForgedRecord(name: "operator of 65 bytes", reason: "oversized", nodeID: key.nodeID.hex, signed: try sign(r, key), identity: key))

        // A 20 KiB record (the bound is 16384 signed bytes).
        key = try IdentityKey.generate()
        r = try record(key, window: window, now: now, endorsement: endorse(key))
        r.endpoints[0].params = String(repeating: "p", count: Self.oversizedParamsBytes)
        let big = try sign(r, key)
        guard big.count > RecordValidator.maxSignedRecordBytes else { throw E2EError("the oversized forgery is only \(big.count) bytes") }
        out.append(ForgedRecord(name: "20 KiB record", reason: "oversized", nodeID: key.nodeID.hex, signed: big, identity: key))
        return out
    }

    /// An exit record in DE on a loopback /16 no member uses, valid for an hour.
    func record(_ key: IdentityKey, window: UInt32, now: UInt64, endorsement: [UInt8]?) throws -> DirectoryRecord {
        let entry = try EgressDirectoryEntry(exitNodeID: key.nodeID.bytes, countryCode: "DE", capacityClass: .standard, advertisedWindow: window)
        return DirectoryRecord(entry: entry, identityPublicKey: key.publicKey, kemPublicKey: try KEMKey.generate().publicKey,
                               roles: [.front, .exit], endpoints: [Endpoint(profile: 0, host: "127.99.0.1", port: 7443)],
                               issuedAt: now, expiresAt: now + 3600, operatorLabel: Self.operatorLabel, endorsement: endorsement)
    }

    /// This alliance's endorsement of `key`'s node (as `montana alliance endorse` makes it).
    func endorse(_ key: IdentityKey) throws -> [UInt8] {
        try EndorsementFile.make(endorsing: key.nodeID, operator: Self.operatorLabel, alliance: alliance, secret: secret,
                                 now: WallClock.now()).signedBytes
    }

    func sign(_ record: DirectoryRecord, _ key: IdentityKey) throws -> [UInt8] {
        try RecordSigner.sign(record, with: key).encode()
    }

    /// Replaces the record's encoded entry (field 1, written first: tag 0x0a, length 39) with
    /// `entry`, then signs the payload bytes as they are.
    func signPatched(_ record: DirectoryRecord, _ key: IdentityKey, entry: [UInt8]) throws -> [UInt8] {
        var payload = record.encode()
        guard entry.count == EgressDirectoryEntry.size, payload.count > 2 + entry.count, payload[0] == 0x0a,
              payload[1] == UInt8(EgressDirectoryEntry.size) else { throw E2EError("unexpected record encoding") }
        payload.replaceSubrange(2..<(2 + entry.count), with: entry)
        return try SignedObject.sign(payload, label: SignedObject.recordLabel, with: key).encode()
    }

    /// `exit_node_id (32) ‖ country_code (2) ‖ capacity_class u8 ‖ advertised_window u32 LE`.
    func rawEntry(_ nodeID: [UInt8], country: String, capacity: UInt8, window: UInt32) -> [UInt8] {
        var bytes = nodeID + Array(country.utf8) + [capacity]
        withUnsafeBytes(of: window.littleEndian) { bytes += $0 }
        return bytes
    }
}
