import MontanaCrypto
import MontanaWire

extension StoreState {
    /// Computed when read (PROTOCOL.md section 8.4). An attestation qualifies when it is at most
    /// 1440 windows old (and not ahead), its method includes egress geolocation, it names the
    /// record's country, and its attester is a live member now. The count is of attesters with
    /// pairwise distinct node ids, operator labels and address groups, chosen greedily newest
    /// attestation first; when greedy finds fewer than the quorum, every pair is also tried, so
    /// the corroborated/advisory decision (quorum 2) is exact. An empty operator label is a label
    /// like any other: two unlabelled attesters count once. Only exits can be corroborated.
    func corroboration(of r: StoredRecord, now: UInt64) -> Corroboration {
        let country = r.validated.record.entry.countryCode
        var qualifying: [(window: UInt32, attester: ValidatedRecord)] = []
        var contradicting = Set<NodeID>()
        for a in attestations[r.nodeID]?.values ?? [:].values {
            guard a.attestation.method.contains(.egressGeolocated),
                  RecordValidator.attestationTimeRejection(window: a.window, now: now) == nil,
                  let attester = records[a.attester], attester.validated.isLive(now: now) else { continue }
            if a.attestation.countryCode == country {
                qualifying.append((a.window, attester.validated))
            } else {
                contradicting.insert(a.attester)
            }
        }
        qualifying.sort { $0.window != $1.window ? $0.window > $1.window : $0.attester.nodeID.bytes.lexicographicallyPrecedes($1.attester.nodeID.bytes) }
        var count = Self.greedyIndependent(qualifying.map(\.attester))
        let quorum = DirectoryStore.DIRECTORY_QUORUM
        if count < quorum, Self.hasIndependentPair(qualifying.map(\.attester)) { count = 2 }
        let state: Corroboration.State = r.validated.record.roles.contains(.exit) && count >= quorum ? .corroborated : .advisory
        return Corroboration(state: state, attesters: count, contradicting: contradicting.count,
                             lastAttestedWindow: qualifying.first?.window)
    }

    static func independent(_ a: ValidatedRecord, _ b: ValidatedRecord) -> Bool {
        a.nodeID != b.nodeID && a.operatorLabel != b.operatorLabel && a.addressGroup != b.addressGroup
    }

    static func greedyIndependent(_ candidates: [ValidatedRecord]) -> Int {
        var chosen: [ValidatedRecord] = []
        for c in candidates where chosen.allSatisfy({ independent($0, c) }) { chosen.append(c) }
        return chosen.count
    }

    static func hasIndependentPair(_ c: [ValidatedRecord]) -> Bool {
        for i in c.indices {
            for j in c.indices where j > i && independent(c[i], c[j]) { return true }
        }
        return false
    }
}
