/// Every number admission enforces, with its default (docs/OPERATIONS.md, `[admission]` and
/// `[limits]`). "Source" is the narrow prefix (IPv4 /32, IPv6 /64 by default), "network" the
/// wide one (IPv4 /24, IPv6 /48); a member is a configured peer's address, which carries many
/// users' circuits (relays) and is exempt from the per-prefix budgets but has budgets of its own.
public struct AdmissionLimits: Equatable, Sendable {
    // Prefix lengths.
    public var ipv4SourceBits = 32
    public var ipv4NetworkBits = 24
    public var ipv6SourceBits = 64
    public var ipv6NetworkBits = 48

    // Preface token buckets, spent before decapsulation. 20/s per source is far above what one
    // user opens (one multiplexed session per exit, a new circuit on reconnect); 50/s (burst 100)
    // per network leaves a busy NAT /24 or a CGNAT address room while a flooding /24 gets
    // 50 decapsulations/s out of a node, not the thousands per second a core holds.
    public var sourcePrefacesPerSecond = 20
    public var sourcePrefaceBurst = 40
    public var networkPrefacesPerSecond = 50
    public var networkPrefaceBurst = 100
    /// The node-wide decapsulation budget, the last line against many networks at once: below
    /// what one core decapsulates (a release build opens ~3,000-4,000 prefaces/s per core here,
    /// `montana bench preface`; docs/OPERATIONS.md), so a flood from many networks costs at most
    /// about a third of one core in decapsulation.
    public var nodePrefacesPerSecond = 1000
    public var nodePrefaceBurst = 1000

    // Handshakes (an ML-DSA-65 signature each, ~2 ms of a core): node budget and shares.
    /// `[limits] handshakes_per_second`: the node-wide budget (burst: one second's worth).
    public var handshakesPerSecond = 200
    /// One network's share of the handshake budget (25 % of 200). A front also spends it on
    /// every circuit it relays for that network, so one client prefix cannot drain the share
    /// an exit gives this front.
    public var networkHandshakesPerSecond = 50
    /// One member's share at this node (50 % of 200): relayed circuits arrive from the front's
    /// address, so each front gets its own share and one flooded front cannot starve the others.
    public var memberHandshakesPerSecond = 100

    // Concurrent circuits (connections that are reading a preface or carry a session or relay).
    /// `[limits] circuits_per_source`.
    public var circuitsPerSource = 64
    public var circuitsPerNetwork = 256
    public var circuitsPerMember = 2048
    /// `[limits] circuits_total`. Discarders do not count here.
    public var circuitsTotal = 4096

    // Replay memory (entries of 240 s each; only answered prefaces are remembered).
    public var replayCapacity = 65536
    /// 1/8 of the memory per network: a network flooding at its full preface rate fills its
    /// share in ~164 s (50/s × 240 s = 12,000 > 8,192) and only it is refused from then on.
    public var replayPerNetwork = 8192
    /// 1/2 per member: a front relaying at its full handshake share (100/s × 240 s = 24,000)
    /// stays below it.
    public var replayPerMember = 32768

    // Silent discarders (refused or over-limit connections read and discarded for 10-60 s).
    public var discardPerNetwork = 64
    public var discardTotal = 4096

    /// Entries per prefix table (sources, networks); idle full buckets are evicted first, then new
    /// prefixes share one overflow budget. About 100 bytes per entry: ~6.5 MiB per table when full.
    public var maxPrefixes = 65536

    public init() {}
}
