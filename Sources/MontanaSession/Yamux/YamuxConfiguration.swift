/// Tunables of a `YamuxConnection`; the defaults follow PROTOCOL.md section 6.
public struct YamuxConfiguration: Sendable {
    /// Every stream starts with this window in both directions (fixed by the spec, not negotiable).
    public static let initialWindowSize: UInt32 = 256 * 1024

    /// Auto-tuning never grows a receive window beyond this.
    public var maxReceiveWindowSize: UInt32 = 32 * 1024 * 1024
    /// Remote-opened streams open at once; a SYN beyond this is answered with RST.
    public var maxInboundStreams: Int = 256
    /// Outbound bytes a stream may hold while the peer's window is exhausted; at or above it the
    /// stream is not writable and `write` throws until a `.writable` event.
    public var maxPendingOutboundBytesPerStream: Int = 256 * 1024
    /// Larger writes are split so that streams interleave on the session.
    public var maxDataFrameSize: Int = 16 * 1024
    /// The round-trip time auto-tuning assumes until a ping has measured one.
    public var assumedRTTNanoseconds: UInt64 = 100_000_000
    /// A receive window doubles when the interval between two of its window updates (each handing
    /// back at least half the window) is shorter than this many RTTs: the window, not the consumer,
    /// is then what limits the stream.
    public var autoTuneRTTMultiple: UInt64 = 2

    // Bounds against a hostile peer (docs/SECURITY.md). Every number here caps memory or work
    // that remote input can cause without an account.

    /// Outbound bytes all streams together may hold while windows are exhausted: 8 MiB. At or above
    /// it no stream is writable, so a peer that opens many streams and never grants window cannot
    /// make the session queue more than this (plus one write per stream).
    public var maxPendingOutboundBytesPerSession: Int = 8 * 1024 * 1024
    /// How far auto-tuning may grow the receive windows of all streams together beyond their
    /// initial 256 KiB each: 64 MiB per session (one stream at 32 MiB fills a 50 ms path at 600 MB/s).
    /// Windows stop growing at the budget (they never shrink below the initial size, which the
    /// spec fixes).
    public var maxReceiveWindowGrowthPerSession: UInt64 = 64 * 1024 * 1024
    /// A node-wide budget the growth is also drawn from (shared by every session), or nil.
    public var sharedWindowBudget: (any YamuxWindowBudget)?
    /// Ping SYNs the peer may send in a burst; each costs us an answer. Legitimate peers ping every
    /// few tens of seconds, so 32 in a burst refilled at 2 per second is generous.
    public var pingBurst: UInt64 = 32
    /// Ping tokens regained per second. A peer that pings faster is closed as abusive.
    public var pingsPerSecond: UInt64 = 2
    /// SYNs we answer with RST (over the stream limit, after GoAway) in a burst, refilled at
    /// `refusedStreamsPerSecond`: 1024 and 64/s. A peer that keeps opening refused streams is
    /// closed as abusive instead of being answered forever.
    public var refusedStreamBurst: UInt64 = 1024
    public var refusedStreamsPerSecond: UInt64 = 64

    public init() {}
}
