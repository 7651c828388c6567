import MontanaCrypto
import MontanaWire

/// Every check a signed directory record or attestation must pass before a store keeps it
/// (PROTOCOL.md section 8.4). Never traps: sizes are checked before decoding, all time
/// arithmetic is on `UInt64` with explicit guards.
public enum RecordValidator {
    /// A record with 16 endpoints, an own T1 key and an endorsement is about 11 KB.
    public static let maxSignedRecordBytes = 16384
    /// An attestation envelope is about 3.4 KB.
    public static let maxSignedAttestationBytes = 8192
    /// A record older than 7 windows is stale (section 8.1).
    public static let freshWindows: UInt64 = 7
    /// Attestations count for 24 h = 1440 windows.
    public static let attestationWindows: UInt64 = 1440
    /// Clock skew tolerated on `issued_at`: 300 s; on windows: one window.
    public static let maxSkewSeconds: UInt64 = 300
    public static let maxSkewWindows: UInt64 = 1

    /// `advertised_window + 7 ≥ W_now`.
    public static func isFresh(window: UInt32, now: UInt64) -> Bool {
        UInt64(window) + freshWindows >= TimeWindow.window(unixSeconds: now)
    }

    /// Maps a decoder's error to a rejection by the field it names.
    static func rejection(for error: WireError) -> RecordRejection {
        if case .tooLong = error { return .oversized }
        switch error.field {
        case "country_code": return .country
        case "capacity_class": return .capacity
        default: return .malformed
        }
    }

    /// Checks, in order: size; decoding (country, capacity, oversized fields, malformed); node id;
    /// signature; endorsement unless the alliance is open; time.
    public static func validate(_ signed: [UInt8], alliance: AllianceDocument, now: UInt64) -> Result<ValidatedRecord, RecordRejection> {
        guard signed.count <= maxSignedRecordBytes else { return .failure(.oversized) }
        let envelope: SignedEnvelope
        let record: DirectoryRecord
        do throws(WireError) {
            envelope = try SignedEnvelope.decode(signed)
            record = try DirectoryRecord.decode(envelope.payload)
        } catch {
            return .failure(rejection(for: error))
        }
        let nodeID = NodeID(identityPublicKey: record.identityPublicKey)
        guard nodeID.bytes == record.entry.exitNodeID else { return .failure(.nodeIDMismatch) }
        guard SignedObject.verify(envelope, label: SignedObject.recordLabel, publicKey: record.identityPublicKey) else {
            return .failure(.badSignature)
        }
        var endorsement: Endorsement?
        if !alliance.open {
            switch checkEndorsement(record, alliance: alliance, nodeID: nodeID) {
            case .success(let e): endorsement = e
            case .failure(let why): return .failure(why)
            }
        }
        if let why = timeRejection(record, now: now) { return .failure(why) }
        return .success(ValidatedRecord(record: record, signed: signed, nodeID: nodeID, endorsement: endorsement))
    }

    /// Absent → no_endorsement; undecodable → bad_endorsement; not signed by `membership_pk` or
    /// for another alliance UUID → foreign_endorsement; another node or operator → bad_endorsement.
    static func checkEndorsement(_ record: DirectoryRecord, alliance: AllianceDocument, nodeID: NodeID) -> Result<Endorsement, RecordRejection> {
        guard let bytes = record.endorsement else { return .failure(.noEndorsement) }
        let envelope: SignedEnvelope
        let e: Endorsement
        do {
            envelope = try SignedEnvelope.decode(bytes)
            e = try Endorsement.decode(envelope.payload)
        } catch {
            return .failure(.badEndorsement)
        }
        guard SignedObject.verify(envelope, label: SignedObject.endorsementLabel, publicKey: alliance.membershipKeyBytes),
              e.alliance == alliance.uuidBytes else { return .failure(.foreignEndorsement) }
        guard e.nodeID == nodeID.bytes, e.operatorLabel == (record.operatorLabel ?? "") else { return .failure(.badEndorsement) }
        return .success(e)
    }

    /// A withdrawal only needs a fresh, not-future window; anything else must also not be expired.
    static func timeRejection(_ record: DirectoryRecord, now: UInt64) -> RecordRejection? {
        let wNow = TimeWindow.window(unixSeconds: now)
        let window = UInt64(record.entry.advertisedWindow)
        if !record.isWithdrawal, record.expiresAt < now { return .expired }
        if window + freshWindows < wNow { return .stale }
        if record.issuedAt > now, record.issuedAt - now > maxSkewSeconds { return .future }
        if window > wNow, window - wNow > maxSkewWindows { return .future }
        return nil
    }

    /// Checks, in order: size (8192); decoding (country, malformed); the attester has a live
    /// record (`attesterKey` returns its identity key, else unknown_attester); the subject is
    /// known (`subjectKnown`, else unknown_subject); attester ≠ subject; signature; the window is
    /// at most one ahead of ours (future) and at most 1440 behind (stale).
    public static func validateAttestation(_ signed: [UInt8], attesterKey: (NodeID) -> [UInt8]?,
                                           subjectKnown: (NodeID) -> Bool, now: UInt64) -> Result<ValidatedAttestation, RecordRejection> {
        guard signed.count <= maxSignedAttestationBytes else { return .failure(.oversized) }
        let envelope: SignedEnvelope
        let a: Attestation
        let subject: NodeID
        let attester: NodeID
        do throws(WireError) {
            envelope = try SignedEnvelope.decode(signed)
            a = try Attestation.decode(envelope.payload)
            subject = try NodeID(bytes: a.subject)
            attester = try NodeID(bytes: a.attester)
        } catch {
            return .failure(rejection(for: error))
        }
        guard let key = attesterKey(attester) else { return .failure(.unknownAttester) }
        guard subjectKnown(subject) else { return .failure(.unknownSubject) }
        guard attester != subject else { return .failure(.selfAttestation) }
        guard NodeID(identityPublicKey: key) == attester,
              SignedObject.verify(envelope, label: SignedObject.attestationLabel, publicKey: key) else { return .failure(.badSignature) }
        if let why = attestationTimeRejection(window: a.window, now: now) { return .failure(why) }
        return .success(ValidatedAttestation(attestation: a, signed: signed, subject: subject, attester: attester))
    }

    /// nil when `window` is within one window ahead and 1440 behind `now`'s.
    public static func attestationTimeRejection(window: UInt32, now: UInt64) -> RecordRejection? {
        let wNow = TimeWindow.window(unixSeconds: now)
        let w = UInt64(window)
        if w > wNow, w - wNow > maxSkewWindows { return .future }
        if wNow > w, wNow - w > attestationWindows { return .stale }
        return nil
    }
}
