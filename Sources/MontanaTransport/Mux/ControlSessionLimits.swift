/// Bounds of a session without egress (ping, ip-echo, directory: small answers, few streams).
/// Anyone holding a node's public key can open such sessions, so what they can make a node hold
/// is capped per session and node-wide.
public enum ControlSessionLimits {
    /// Peer streams open at once per control session.
    public static let streamsPerSession = 8
    /// Outbound backlog per stream: a directory record (about 8 KiB) fits several times.
    public static let backlogPerStream = 32 * 1024
    /// Outbound backlog of all streams of one control session.
    public static let backlogPerSession = 128 * 1024
    /// Control streams open at once on the whole node: 128. Each may pin at most its 256 KiB
    /// receive window (answers the peer let us send but does not read) plus its 32 KiB backlog
    /// and 1 KiB of unanswered pings, so all control sessions together hold under 40 MiB.
    public static let streamsPerNode: UInt64 = 128
    /// Unanswered ping bytes a ping stream may hold: 1 KiB (32 pings). An honest pinger waits for
    /// each answer; one that keeps sending while it does not read has its stream reset.
    public static let unansweredPingBytes = 1024
}
