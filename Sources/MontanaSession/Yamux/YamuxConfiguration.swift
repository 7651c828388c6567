/// Tunables of a `YamuxConnection`; the defaults follow PROTOCOL.md section 6.
public struct YamuxConfiguration: Sendable {
    /// Every stream starts with this window in both directions (fixed by the spec, not negotiable).
    public static let initialWindowSize: UInt32 = 256 * 1024

    /// Auto-tuning never grows a receive window beyond this.
    public var maxReceiveWindowSize: UInt32 = 16 * 1024 * 1024
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

    public init() {}
}
