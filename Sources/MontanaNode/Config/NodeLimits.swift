import MontanaExit

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
    /// Concurrent exit sessions per account; a session beyond gets status 3 on every EgressOpen.
    public var sessionsPerAccount = 8
    /// Egress streams per account across all its sessions; the next EgressOpen gets status 3.
    public var streamsPerAccount = 1024
    /// Addresses dialled per TCP EgressOpen at most (happy eyeballs).
    public var connectAttemptsPerOpen = 4
    /// Accounting rows of accounts idle this many days are folded into the rollup row.
    public var accountingIdleDays = AccountingStore.defaultIdleDays
    /// Hard cap on per-account accounting rows; the oldest are folded first.
    public var accountingMaxRows = AccountingStore.defaultMaxRows
    /// Node-wide budget for yamux receive-window growth beyond each stream's initial 256 KiB, in
    /// MiB (256): the buffered data all sessions together may be allowed to have in flight.
    public var windowBudgetMiB = 256
    /// How long an exit holds a session whose carrier was lost, waiting for the client to resume
    /// it (PROTOCOL.md 5.3); 0 turns resumption off (`features` then advertises 0).
    public var resumeHoldSeconds = 60
    /// Sessions held without a carrier at once; the one waiting longest is closed past it.
    public var resumeDetachedMax = 1024
    /// Unacknowledged data (MiB) all held sessions may keep together; the one waiting longest is
    /// closed past it.
    public var resumeBudgetMiB = 256
    /// Relay bulk circuits (fronts) in the kernel with splice(2) once they carried 256 KiB (Linux);
    /// false keeps every relayed circuit on the event loop.
    public var kernelSplice = true
    /// glibc malloc arenas at most (ProcessMemory.capArenas); 0 leaves glibc's default (8 per core).
    public var mallocArenas = 1
    /// Exits: once this many egress TCP connections are open, new ones read into buffers of at
    /// most 8 KiB instead of 64 KiB (EgressReceiveBuffers); 0 always uses the small buffers.
    public var egressSmallBuffersAfter = EgressReceiveBuffers.defaultThreshold

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

    /// The exit's per-account and fan-out keys.
    static let egressKeys = ["sessions_per_account", "streams_per_account", "connect_attempts_per_open"]

    /// Bounds on the exit's per-account accounting rows.
    static let accountingKeys = ["accounting_idle_days", "accounting_max_rows"]

    /// Memory bounds for sessions.
    static let memoryKeys = ["window_budget_mib", "malloc_arenas", "egress_small_buffers_after"]

    /// Session resumption at an exit.
    static let resumeKeys = ["resume_hold_seconds", "resume_detached_max", "resume_budget_mib"]

    /// The front's relay.
    static let relayKeys = ["kernel_splice"]

    static func parse(_ s: ConfigSection?) throws(ConfigurationError) -> NodeLimits {
        var limits = NodeLimits()
        guard let s else { return limits }
        try s.allowOnly(keys + egressKeys + accountingKeys + memoryKeys + resumeKeys + relayKeys)
        let count = 1...1_000_000
        let seconds = 1...86_400
        if let v = try s.int("circuits_per_source", in: count) { limits.circuitsPerSource = v }
        if let v = try s.int("circuits_total", in: count) { limits.circuitsTotal = v }
        if let v = try s.int("handshakes_per_second", in: count) { limits.handshakesPerSecond = v }
        // Yamux stream ids are 32-bit, but a session never needs more than a few thousand.
        if let v = try s.int("streams_per_session", in: 1...65_535) { limits.streamsPerSession = v }
        if let v = try s.int("egress_open_timeout_seconds", in: seconds) { limits.egressOpenTimeoutSeconds = v }
        if let v = try s.int("egress_idle_timeout_seconds", in: seconds) { limits.egressIdleTimeoutSeconds = v }
        if let v = try s.int("sessions_per_account", in: 1...65_536) { limits.sessionsPerAccount = v }
        if let v = try s.int("streams_per_account", in: 1...1_000_000) { limits.streamsPerAccount = v }
        // RFC 8305 needs 2 (one per family); more than 16 only multiplies sockets.
        if let v = try s.int("connect_attempts_per_open", in: 1...16) { limits.connectAttemptsPerOpen = v }
        // A day is the accounting clock's resolution; 100 years means "never" without overflow.
        if let v = try s.int("accounting_idle_days", in: 1...36_500) { limits.accountingIdleDays = v }
        // 10 million rows of ~80 bytes is under 1 GiB of SQLite.
        if let v = try s.int("accounting_max_rows", in: 1...10_000_000) { limits.accountingMaxRows = v }
        // 0 turns growth off (every window stays at 256 KiB); 64 GiB is more than any node has.
        if let v = try s.int("window_budget_mib", in: 0...65_536) { limits.windowBudgetMiB = v }
        // glibc itself allows up to 8 per core; 64 covers any machine a node runs on.
        if let v = try s.int("malloc_arenas", in: 0...64) { limits.mallocArenas = v }
        if let v = try s.int("egress_small_buffers_after", in: 0...1_000_000) { limits.egressSmallBuffersAfter = v }
        // An hour is far beyond any carrier change; a held session keeps its streams' buffers.
        if let v = try s.int("resume_hold_seconds", in: 0...3_600) { limits.resumeHoldSeconds = v }
        if let v = try s.int("resume_detached_max", in: 1...1_000_000) { limits.resumeDetachedMax = v }
        if let v = try s.int("resume_budget_mib", in: 1...65_536) { limits.resumeBudgetMiB = v }
        if let v = try s.bool("kernel_splice") { limits.kernelSplice = v }
        if limits.circuitsPerSource > limits.circuitsTotal {
            throw s.invalid("circuits_per_source", "\(limits.circuitsPerSource) exceeds circuits_total (\(limits.circuitsTotal))")
        }
        return limits
    }
}
