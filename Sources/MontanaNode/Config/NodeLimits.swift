/// The `[limits]` section: resource bounds a node enforces (PROTOCOL.md sections 3 and 7.4).
public struct NodeLimits: Equatable, Sendable {
    public var circuitsPerSource: Int
    public var circuitsTotal: Int
    public var handshakesPerSecond: Int
    /// PROTOCOL.md 7.4 `MAX_STREAMS_PER_SESSION`.
    public var streamsPerSession: Int
    /// PROTOCOL.md 7.4 `EGRESS_OPEN_TIMEOUT`.
    public var egressOpenTimeoutSeconds: Int
    /// PROTOCOL.md 7.4 `EGRESS_SESSION_IDLE_TIMEOUT`.
    public var egressIdleTimeoutSeconds: Int

    public init(circuitsPerSource: Int = 64, circuitsTotal: Int = 4096, handshakesPerSecond: Int = 200,
                streamsPerSession: Int = 256, egressOpenTimeoutSeconds: Int = 30, egressIdleTimeoutSeconds: Int = 240) {
        self.circuitsPerSource = circuitsPerSource
        self.circuitsTotal = circuitsTotal
        self.handshakesPerSecond = handshakesPerSecond
        self.streamsPerSession = streamsPerSession
        self.egressOpenTimeoutSeconds = egressOpenTimeoutSeconds
        self.egressIdleTimeoutSeconds = egressIdleTimeoutSeconds
    }

    static let keys = ["circuits_per_source", "circuits_total", "handshakes_per_second", "streams_per_session",
                       "egress_open_timeout_seconds", "egress_idle_timeout_seconds"]

    static func parse(_ s: ConfigSection?) throws(ConfigurationError) -> NodeLimits {
        var limits = NodeLimits()
        guard let s else { return limits }
        try s.allowOnly(keys)
        let count = 1...1_000_000
        let seconds = 1...86_400
        if let v = try s.int("circuits_per_source", in: count) { limits.circuitsPerSource = v }
        if let v = try s.int("circuits_total", in: count) { limits.circuitsTotal = v }
        if let v = try s.int("handshakes_per_second", in: count) { limits.handshakesPerSecond = v }
        // Yamux stream ids are 32-bit, but a session never needs more than a few thousand.
        if let v = try s.int("streams_per_session", in: 1...65_535) { limits.streamsPerSession = v }
        if let v = try s.int("egress_open_timeout_seconds", in: seconds) { limits.egressOpenTimeoutSeconds = v }
        if let v = try s.int("egress_idle_timeout_seconds", in: seconds) { limits.egressIdleTimeoutSeconds = v }
        if limits.circuitsPerSource > limits.circuitsTotal {
            throw s.invalid("circuits_per_source", "\(limits.circuitsPerSource) exceeds circuits_total (\(limits.circuitsTotal))")
        }
        return limits
    }
}
