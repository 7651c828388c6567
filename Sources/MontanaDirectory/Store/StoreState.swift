import MontanaCrypto
import MontanaWire

/// The directory's in-memory state and every rule about what replaces what. Mutated only under
/// `DirectoryStore`'s lock; each mutation appends the `StoreOp`s the database must mirror.
struct StoreState {
    let alliance: AllianceDocument
    let limits: DirectoryLimits
    var records: [NodeID: StoredRecord] = [:]
    /// subject → attester → attestation.
    var attestations: [NodeID: [NodeID: ValidatedAttestation]] = [:]
    /// attester → subjects it attested (reverse index, so removing a node is cheap).
    var byAttester: [NodeID: Set<NodeID>] = [:]
    var attestationTotal = 0
    var rejections: [RecordRejection: Int] = [:]
    var changeCounter: UInt64 = 0
    var nextArrival: UInt64 = 0
    var ops: [StoreOp] = []

    init(alliance: AllianceDocument, limits: DirectoryLimits) {
        self.alliance = alliance
        self.limits = limits
    }

    mutating func reject(_ why: RecordRejection) -> OfferOutcome {
        rejections[why, default: 0] += 1
        return .rejected(why)
    }

    // MARK: records

    mutating func offerRecord(_ signed: [UInt8], now: UInt64) -> OfferOutcome {
        switch RecordValidator.validate(signed, alliance: alliance, now: now) {
        case .failure(let why): return reject(why)
        case .success(let v): return insert(v, now: now)
        }
    }

    /// A newer window replaces; in the same window only a withdrawal replaces a live record. A
    /// tombstone is replaced only by a strictly newer window; anything else older than or as
    /// old as it is refused as `withdrawn` (a repeated withdrawal is just `unchanged`).
    mutating func insert(_ v: ValidatedRecord, now: UInt64) -> OfferOutcome {
        let id = v.nodeID
        if var old = records[id] {
            if old.validated.signed == v.signed { return .unchanged }
            if old.isTombstone {
                guard v.window > old.window else { return v.isWithdrawal ? .unchanged : reject(.withdrawn) }
            } else {
                guard v.window > old.window || (v.window == old.window && v.isWithdrawal) else { return .unchanged }
            }
            old.validated = v
            if v.isWithdrawal {
                old.lastCorroborated = 0
                removeAttestations(involving: id)
            }
            records[id] = old
            ops.append(.putRecord(old))
            changeCounter += 1
            return .updated
        }
        // Make room among the records already held: a newcomer always gets in, so it can be attested.
        while records.count >= limits.maxRecords, evictOne() {}
        let stored = StoredRecord(validated: v, firstSeen: now, arrival: nextArrival, lastCorroborated: 0)
        nextArrival += 1
        records[id] = stored
        ops.append(.putRecord(stored))
        changeCounter += 1
        return .added
    }

    /// Drops the least recently corroborated record (ties: first received first).
    @discardableResult
    mutating func evictOne() -> Bool {
        guard let victim = records.values.min(by: { $0.evictsBefore($1) }) else { return false }
        removeRecord(victim.nodeID)
        return true
    }

    mutating func removeRecord(_ id: NodeID) {
        records[id] = nil
        removeAttestations(involving: id)
        ops.append(.deleteRecord(id.bytes))
    }

    // MARK: attestations

    func isLiveMember(_ id: NodeID, now: UInt64) -> Bool {
        records[id]?.validated.isLive(now: now) ?? false
    }

    mutating func offerAttestation(_ signed: [UInt8], now: UInt64) -> OfferOutcome {
        switch validateAttestation(signed, now: now) {
        case .failure(let why): return reject(why)
        case .success(let a): return accept(a, now: now)
        }
    }

    /// Validates an attestation against the records held now: the attester must be live, the
    /// subject known and not withdrawn. Used for offers and for rows loaded from the database.
    func validateAttestation(_ signed: [UInt8], now: UInt64) -> Result<ValidatedAttestation, RecordRejection> {
        let held = records
        return RecordValidator.validateAttestation(
            signed,
            attesterKey: { id in held[id].flatMap { $0.validated.isLive(now: now) ? $0.validated.record.identityPublicKey : nil } },
            subjectKnown: { id in held[id].map { !$0.isTombstone } ?? false },
            now: now)
    }

    /// Per (subject, attester) the newest window wins. Over 16 about one subject the oldest goes;
    /// over 16384 in all the oldest anywhere goes; one not newer than what it would push out is
    /// not taken (`unchanged`). "Older" is the total order `older` (window, then subject, then
    /// attester), never arrival: stores that saw the same attestations in any order keep the same
    /// set, so their digests agree and gossip converges even with more attesters than room.
    mutating func accept(_ a: ValidatedAttestation, now: UInt64) -> OfferOutcome {
        let forSubject = attestations[a.subject] ?? [:]
        if let old = forSubject[a.attester] {
            if old.signed == a.signed { return .unchanged }
            guard a.window > old.window else { return .unchanged }
            put(a)
            noteCorroboration(a, now: now)
            changeCounter += 1
            return .updated
        }
        var victim: ValidatedAttestation?
        if forSubject.count >= limits.maxAttestationsPerSubject {
            guard let oldest = forSubject.values.min(by: Self.older), Self.older(oldest, a) else { return .unchanged }
            victim = oldest
        } else if attestationTotal >= limits.maxAttestations {
            guard let oldest = oldestAttestation(), Self.older(oldest, a) else { return .unchanged }
            victim = oldest
        }
        if let victim { removeAttestation(subject: victim.subject, attester: victim.attester) }
        put(a)
        noteCorroboration(a, now: now)
        changeCounter += 1
        return .added
    }

    static func older(_ x: ValidatedAttestation, _ y: ValidatedAttestation) -> Bool {
        if x.window != y.window { return x.window < y.window }
        if x.subject != y.subject { return x.subject.bytes.lexicographicallyPrecedes(y.subject.bytes) }
        return x.attester.bytes.lexicographicallyPrecedes(y.attester.bytes)
    }

    func oldestAttestation() -> ValidatedAttestation? {
        var best: ValidatedAttestation?
        for map in attestations.values {
            for a in map.values where best.map({ Self.older(a, $0) }) ?? true { best = a }
        }
        return best
    }

    private mutating func put(_ a: ValidatedAttestation) {
        if attestations[a.subject]?[a.attester] == nil { attestationTotal += 1 }
        attestations[a.subject, default: [:]][a.attester] = a
        byAttester[a.attester, default: []].insert(a.subject)
        ops.append(.putAttestation(a))
    }

    mutating func removeAttestation(subject: NodeID, attester: NodeID) {
        guard attestations[subject]?.removeValue(forKey: attester) != nil else { return }
        attestationTotal -= 1
        if attestations[subject]?.isEmpty == true { attestations[subject] = nil }
        byAttester[attester]?.remove(subject)
        if byAttester[attester]?.isEmpty == true { byAttester[attester] = nil }
        ops.append(.deleteAttestation(subject: subject.bytes, attester: attester.bytes))
    }

    /// Attestations about `id` and by `id`.
    mutating func removeAttestations(involving id: NodeID) {
        var touched = false
        if let about = attestations.removeValue(forKey: id) {
            attestationTotal -= about.count
            for attester in about.keys {
                byAttester[attester]?.remove(id)
                if byAttester[attester]?.isEmpty == true { byAttester[attester] = nil }
            }
            touched = true
        }
        if let subjects = byAttester.removeValue(forKey: id) {
            for s in subjects where attestations[s]?.removeValue(forKey: id) != nil {
                attestationTotal -= 1
                if attestations[s]?.isEmpty == true { attestations[s] = nil }
            }
            touched = true
        }
        if touched { ops.append(.deleteAttestationsInvolving(id.bytes)) }
    }

    /// Remembers the newest window in which the subject's country was confirmed, for eviction.
    private mutating func noteCorroboration(_ a: ValidatedAttestation, now: UInt64) {
        guard var subject = records[a.subject], a.attestation.method.contains(.egressGeolocated),
              a.attestation.countryCode == subject.validated.record.entry.countryCode,
              isLiveMember(a.attester, now: now), a.window > subject.lastCorroborated else { return }
        subject.lastCorroborated = a.window
        records[a.subject] = subject
        ops.append(.setLastCorroborated(a.subject.bytes, a.window))
    }

    // MARK: expiry

    /// Drops records no longer live (stale or expired), tombstones 7 windows old, attestations
    /// more than 1440 windows old. Returns the number of records (and tombstones) dropped.
    mutating func expire(now: UInt64) -> Int {
        let gone = records.values.filter { !$0.isKept(now: now) }.map(\.nodeID)
        for id in gone { removeRecord(id) }
        var staleAttestations: [ValidatedAttestation] = []
        for map in attestations.values {
            for a in map.values where RecordValidator.attestationTimeRejection(window: a.window, now: now) == .stale {
                staleAttestations.append(a)
            }
        }
        for a in staleAttestations { removeAttestation(subject: a.subject, attester: a.attester) }
        if !gone.isEmpty || !staleAttestations.isEmpty { changeCounter += 1 }
        return gone.count
    }

    // MARK: reading

    func attestationDigest(_ subject: NodeID) -> [UInt8] {
        guard let map = attestations[subject], !map.isEmpty else { return [UInt8](repeating: 0, count: 8) }
        var items = map.values.map { a -> [UInt8] in
            var b = a.attester.bytes
            b.appendLE(a.window)
            return b
        }
        items.sort { $0.lexicographicallyPrecedes($1) }
        return Array(Digests.sha256(items.flatMap { $0 }).prefix(8))
    }

    func sortedRecords() -> [StoredRecord] {
        records.values.sorted { $0.nodeID.bytes.lexicographicallyPrecedes($1.nodeID.bytes) }
    }

    func digest() -> [DigestEntry] {
        sortedRecords().map { DigestEntry(nodeID: $0.nodeID.bytes, window: $0.window, attestationDigest: attestationDigest($0.nodeID)) }
    }

    /// Records the peer lacks or holds older (tombstones also when it holds the same window: it
    /// may hold the live record of that window), kept ones only; then all attestations about
    /// every subject whose attestation digest differs from the peer's.
    func newer(than theirs: [DigestEntry], now: UInt64) -> (records: [[UInt8]], attestations: [[UInt8]]) {
        var peer: [[UInt8]: DigestEntry] = [:]
        for e in theirs where peer[e.nodeID] == nil { peer[e.nodeID] = e }
        var outRecords: [[UInt8]] = []
        for r in sortedRecords() where r.isKept(now: now) {
            if let t = peer[r.nodeID.bytes] {
                guard r.window > t.window || (r.isTombstone && r.window == t.window) else { continue }
            }
            outRecords.append(r.validated.signed)
        }
        var outAttestations: [[UInt8]] = []
        let subjects = attestations.keys.sorted { $0.bytes.lexicographicallyPrecedes($1.bytes) }
        for s in subjects {
            guard let map = attestations[s], peer[s.bytes]?.attestationDigest != attestationDigest(s) else { continue }
            let sorted = map.values.sorted { $0.attester.bytes.lexicographicallyPrecedes($1.attester.bytes) }
            outAttestations += sorted.map(\.signed)
        }
        return (outRecords, outAttestations)
    }

    func member(_ r: StoredRecord, now: UInt64) -> DirectoryMember {
        DirectoryMember(nodeID: r.nodeID, record: r.validated.record, signed: r.validated.signed,
                        operatorLabel: r.validated.operatorLabel, addressGroup: r.validated.addressGroup,
                        corroboration: corroboration(of: r, now: now))
    }
}
