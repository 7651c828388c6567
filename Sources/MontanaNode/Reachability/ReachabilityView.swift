import MontanaCrypto
import MontanaReachability
import MontanaWire

/// `GET /reachability` on a node's admin port: the map by vantage, each entry with the source
/// groups behind it (a count, never the groups) and whether it is actionable.
enum ReachabilityView {
    static func document(_ map: ReachabilityMap) -> [String: any Sendable] {
        map.expire(window: ReachabilityService.window())
        let vantages: [[String: any Sendable]] = map.vantages.sorted { ($0.country, $0.asn) < ($1.country, $1.asn) }.map { v in
            ["country": v.country, "asn": Int(v.asn),
             "entries": map.entries(for: v).map { e -> [String: any Sendable] in
                 ["node": Hex.encode(e.target), "profile": "t\(e.profile)", "sources": e.sources,
                  "reachable_sources": e.reachableSources, "state": e.state.rawValue,
                  "actionable": e.state != .unknown]
             }]
        }
        return ["quorum": map.limits.quorum, "vantages": vantages]
    }
}
