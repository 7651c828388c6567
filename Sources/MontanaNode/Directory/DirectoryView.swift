import MontanaDirectory
import MontanaTransport
import MontanaWire

/// The `/directory` JSON document, one shape for a node's admin port and a client's:
/// `{"alliance": {...}, "members": [{node_id, country, roles, endpoints, operator, corroboration,
/// attesters, contradicting, last_refresh, key_mode}], "countries": {CC: {exits, corroborated}},
/// "rejected": {reason: n}, "records", "attestations"}`. Public facts of the directory only.
public enum DirectoryView {
    public static func document(store: DirectoryStore, alliance: AllianceDocument, now: UInt64 = WallClock.now(),
                                extra: [String: any Sendable] = [:]) -> [String: any Sendable] {
        let members = store.members(now: now)
        var countries: [String: [String: Int]] = [:]
        for m in members where m.roles.contains(.exit) {
            countries[m.country, default: ["exits": 0, "corroborated": 0]]["exits", default: 0] += 1
            if m.corroboration.state == .corroborated { countries[m.country]!["corroborated", default: 0] += 1 }
        }
        var rejected: [String: Int] = [:]
        for (reason, n) in store.rejections { rejected[reason.rawValue] = n }
        var document: [String: any Sendable] = [
            "alliance": ["name": alliance.name, "uuid": alliance.uuid, "open": alliance.open] as [String: any Sendable],
            "generated_at": Int(clamping: now),
            "members": members.map(entry),
            "countries": countries,
            "rejected": rejected,
            "records": store.recordCount,
            "attestations": store.attestationCount,
        ]
        for (k, v) in extra { document[k] = v }
        return document
    }

    static func entry(_ m: DirectoryMember) -> [String: any Sendable] {
        [
            "node_id": m.nodeID.hex,
            "country": m.country,
            "roles": m.roles.names,
            "endpoints": m.record.endpoints.map { e -> [String: any Sendable] in
                ["profile": Int(e.profile), "host": e.host, "port": Int(e.port)]
            },
            "operator": m.operatorLabel,
            "corroboration": m.corroboration.state.rawValue,
            "attesters": m.corroboration.attesters,
            "contradicting": m.corroboration.contradicting,
            "last_refresh": Int(clamping: m.record.issuedAt),
            "key_mode": m.record.keyMode == .own ? "own" : "universal",
            "load": m.record.load.map { Int($0) as any Sendable } ?? -1,
        ]
    }
}
