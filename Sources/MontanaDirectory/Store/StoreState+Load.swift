import MontanaCrypto
import MontanaWire

extension StoreState {
    /// Takes in what the database held, re-validating every row at `now`; rows that fail, are
    /// duplicates or do not fit the limits are deleted from the file. Returns nothing: the
    /// deletions are in `ops`.
    mutating func load(records rows: [StoreDatabase.RecordRow], attestations attRows: [StoreDatabase.AttestationRow], now: UInt64) {
        for row in rows {
            guard let signed = row.signed, case .success(let v) = RecordValidator.validate(signed, alliance: alliance, now: now),
                  row.nodeID == v.nodeID.bytes, records[v.nodeID] == nil else {
                if let id = row.nodeID { ops.append(.deleteRecord(id)) }
                continue
            }
            let firstSeen = row.firstSeen.flatMap { UInt64(exactly: $0) } ?? now
            let corroborated = row.lastCorroborated.flatMap { UInt32(exactly: $0) } ?? 0
            records[v.nodeID] = StoredRecord(validated: v, firstSeen: firstSeen, arrival: nextArrival,
                                             lastCorroborated: v.isWithdrawal ? 0 : corroborated)
            nextArrival += 1
        }
        while records.count > limits.maxRecords, evictOne() {}
        for row in attRows {
            let outcome: OfferOutcome
            if let signed = row.signed {
                switch validateAttestation(signed, now: now) {
                case .success(let a) where a.subject.bytes == row.subject && a.attester.bytes == row.attester:
                    outcome = accept(a, now: now)
                default: outcome = .unchanged
                }
            } else {
                outcome = .unchanged
            }
            if outcome == .unchanged, let s = row.subject, let a = row.attester {
                ops.append(.deleteAttestation(subject: s, attester: a))
            }
        }
        // Re-writing rows just read is pointless; deletions and corroboration marks stay.
        ops.removeAll { if case .putAttestation = $0 { return true } else { return false } }
    }
}
