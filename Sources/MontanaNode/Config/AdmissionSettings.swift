import MontanaTransport

/// The `[admission]` section: per-source-prefix budgets (docs/OPERATIONS.md "Admission").
/// `[limits]` keeps `circuits_per_source`, `circuits_total` and `handshakes_per_second`; they are
/// folded in here so the node hands one `AdmissionLimits` to its listener.
enum AdmissionSettings {
    static let keys = [
        "ipv4_source_prefix", "ipv4_network_prefix", "ipv6_source_prefix", "ipv6_network_prefix",
        "source_prefaces_per_second", "source_preface_burst", "network_prefaces_per_second", "network_preface_burst",
        "node_prefaces_per_second", "node_preface_burst",
        "network_handshakes_per_second", "member_handshakes_per_second",
        "circuits_per_network", "circuits_per_member",
        "replay_capacity", "replay_per_network", "replay_per_member",
        "discard_per_network", "discard_total", "max_prefixes",
    ]

    /// Largest rate or burst: far above what any core decapsulates or signs per second.
    static let maxRate = 1_000_000
    /// Largest replay memory / prefix table: 16 Mi entries (~2.4 GiB replay memory) is beyond any
    /// sane node and keeps the products below overflow.
    static let maxEntries = 16 * 1024 * 1024

    static func parse(_ s: ConfigSection?, limits: NodeLimits) throws(ConfigurationError) -> AdmissionLimits {
        var a = AdmissionLimits()
        a.circuitsPerSource = limits.circuitsPerSource
        a.circuitsTotal = limits.circuitsTotal
        a.handshakesPerSecond = limits.handshakesPerSecond
        // Defaults that are shares follow a changed [limits] budget unless set explicitly.
        a.networkHandshakesPerSecond = max(1, limits.handshakesPerSecond / 4)
        a.memberHandshakesPerSecond = max(1, limits.handshakesPerSecond / 2)
        a.circuitsPerNetwork = min(a.circuitsPerNetwork, limits.circuitsTotal)
        a.circuitsPerNetwork = max(a.circuitsPerNetwork, min(limits.circuitsPerSource, limits.circuitsTotal))
        a.circuitsPerMember = max(1, limits.circuitsTotal / 2)
        guard let s else { return a }
        try s.allowOnly(keys)
        let rate = 1...maxRate
        let entries = 1...maxEntries
        if let v = try s.int("ipv4_source_prefix", in: 8...32) { a.ipv4SourceBits = v }
        if let v = try s.int("ipv4_network_prefix", in: 8...32) { a.ipv4NetworkBits = v }
        if let v = try s.int("ipv6_source_prefix", in: 16...128) { a.ipv6SourceBits = v }
        if let v = try s.int("ipv6_network_prefix", in: 16...128) { a.ipv6NetworkBits = v }
        if let v = try s.int("source_prefaces_per_second", in: rate) { a.sourcePrefacesPerSecond = v }
        if let v = try s.int("source_preface_burst", in: rate) { a.sourcePrefaceBurst = v }
        if let v = try s.int("network_prefaces_per_second", in: rate) { a.networkPrefacesPerSecond = v }
        if let v = try s.int("network_preface_burst", in: rate) { a.networkPrefaceBurst = v }
        if let v = try s.int("node_prefaces_per_second", in: rate) { a.nodePrefacesPerSecond = v }
        if let v = try s.int("node_preface_burst", in: rate) { a.nodePrefaceBurst = v }
        if let v = try s.int("network_handshakes_per_second", in: rate) { a.networkHandshakesPerSecond = v }
        if let v = try s.int("member_handshakes_per_second", in: rate) { a.memberHandshakesPerSecond = v }
        if let v = try s.int("circuits_per_network", in: 1...1_000_000) { a.circuitsPerNetwork = v }
        if let v = try s.int("circuits_per_member", in: 1...1_000_000) { a.circuitsPerMember = v }
        if let v = try s.int("replay_capacity", in: entries) { a.replayCapacity = v }
        if let v = try s.int("replay_per_network", in: entries) { a.replayPerNetwork = v }
        else { a.replayPerNetwork = max(1, a.replayCapacity / 8) }
        if let v = try s.int("replay_per_member", in: entries) { a.replayPerMember = v }
        else { a.replayPerMember = max(1, a.replayCapacity / 2) }
        if let v = try s.int("discard_per_network", in: 1...1_000_000) { a.discardPerNetwork = v }
        if let v = try s.int("discard_total", in: 1...1_000_000) { a.discardTotal = v }
        if let v = try s.int("max_prefixes", in: 1024...maxEntries) { a.maxPrefixes = v }

        if a.ipv4SourceBits < a.ipv4NetworkBits {
            throw s.invalid("ipv4_source_prefix", "/\(a.ipv4SourceBits) is wider than ipv4_network_prefix (/\(a.ipv4NetworkBits))")
        }
        if a.ipv6SourceBits < a.ipv6NetworkBits {
            throw s.invalid("ipv6_source_prefix", "/\(a.ipv6SourceBits) is wider than ipv6_network_prefix (/\(a.ipv6NetworkBits))")
        }
        try atMost(s, "source_prefaces_per_second", a.sourcePrefacesPerSecond, "network_prefaces_per_second", a.networkPrefacesPerSecond)
        try atMost(s, "network_prefaces_per_second", a.networkPrefacesPerSecond, "node_prefaces_per_second", a.nodePrefacesPerSecond)
        try atMost(s, "network_handshakes_per_second", a.networkHandshakesPerSecond, "limits.handshakes_per_second", a.handshakesPerSecond)
        try atMost(s, "member_handshakes_per_second", a.memberHandshakesPerSecond, "limits.handshakes_per_second", a.handshakesPerSecond)
        try atMost(s, "circuits_per_network", a.circuitsPerNetwork, "limits.circuits_total", a.circuitsTotal)
        try atMost(s, "circuits_per_member", a.circuitsPerMember, "limits.circuits_total", a.circuitsTotal)
        if a.circuitsPerNetwork < a.circuitsPerSource {
            throw s.invalid("circuits_per_network", "\(a.circuitsPerNetwork) is below limits.circuits_per_source (\(a.circuitsPerSource))")
        }
        try atMost(s, "replay_per_network", a.replayPerNetwork, "replay_capacity", a.replayCapacity)
        try atMost(s, "replay_per_member", a.replayPerMember, "replay_capacity", a.replayCapacity)
        try atMost(s, "discard_per_network", a.discardPerNetwork, "discard_total", a.discardTotal)
        return a
    }

    /// The addresses members' circuits arrive from: each peer's endpoint, when it is an IP
    /// literal (a host name is not resolved here; such a peer is treated like any source).
    static func memberAddresses(_ peers: [PeerConfiguration]) -> Set<SourceAddress> {
        Set(peers.compactMap { SourceAddress($0.endpoint.host) })
    }

    private static func atMost(_ s: ConfigSection, _ key: String, _ value: Int, _ other: String, _ bound: Int) throws(ConfigurationError) {
        guard value <= bound else { throw s.invalid(key, "\(value) exceeds \(other) (\(bound))") }
    }
}
