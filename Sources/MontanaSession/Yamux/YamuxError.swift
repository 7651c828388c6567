/// Why a yamux operation failed. Peer violations (`isProtocolViolation`) are fatal: the connection
/// has queued GoAway(protocol error) and the caller should flush the outbound bytes and close.
public enum YamuxError: Error, Equatable, Sendable, CustomStringConvertible {
    // Peer protocol violations.
    case unsupportedVersion(UInt8)
    case unknownFrameType(UInt8)
    case streamFrameOnSessionID(YamuxFrameType)
    case wrongStreamIDParity(UInt32)
    case duplicateStream(UInt32)
    case streamIDNotIncreasing(UInt32)
    case windowExceeded(stream: UInt32, length: UInt32, window: UInt32)
    case windowOverflow(stream: UInt32)
    case dataAfterFIN(stream: UInt32)
    /// The peer sent ping SYNs faster than `pingsPerSecond` beyond `pingBurst`.
    case pingFlood
    /// The peer kept opening streams we had to refuse, beyond `refusedStreamBurst`.
    case refusedStreamFlood

    // The connection is unusable or the caller asked for something impossible.
    case connectionFailed
    case goingAway
    case streamIDsExhausted
    case unknownStream(YamuxStreamID)
    case streamNotWritable(YamuxStreamID)
    case streamClosedForWriting(YamuxStreamID)

    /// True when the peer broke the protocol (the connection sent GoAway(protocol error)).
    public var isProtocolViolation: Bool {
        switch self {
        case .unsupportedVersion, .unknownFrameType, .streamFrameOnSessionID, .wrongStreamIDParity,
             .duplicateStream, .streamIDNotIncreasing, .windowExceeded, .windowOverflow, .dataAfterFIN,
             .pingFlood, .refusedStreamFlood:
            return true
        default:
            return false
        }
    }

    public var description: String {
        switch self {
        case .unsupportedVersion(let v): return "yamux: unsupported version \(v)"
        case .unknownFrameType(let t): return "yamux: unknown frame type \(t)"
        case .streamFrameOnSessionID(let t): return "yamux: \(t) frame on stream 0"
        case .wrongStreamIDParity(let id): return "yamux: peer opened stream \(id) of our parity"
        case .duplicateStream(let id): return "yamux: SYN for existing stream \(id)"
        case .streamIDNotIncreasing(let id): return "yamux: peer reused or lowered stream id \(id)"
        case .windowExceeded(let id, let length, let window):
            return "yamux: \(length) data bytes on stream \(id) exceed its window of \(window)"
        case .windowOverflow(let id): return "yamux: window update overflows stream \(id)'s window"
        case .dataAfterFIN(let id): return "yamux: data on stream \(id) after the peer's FIN"
        case .pingFlood: return "yamux: ping flood (more pings than the session allows)"
        case .refusedStreamFlood: return "yamux: the peer keeps opening streams that are refused"
        case .connectionFailed: return "yamux: connection already failed"
        case .goingAway: return "yamux: go-away sent or received, no new streams"
        case .streamIDsExhausted: return "yamux: stream ids exhausted, open a new session"
        case .unknownStream(let id): return "yamux: unknown \(id)"
        case .streamNotWritable(let id): return "yamux: \(id) is not writable, wait for .writable"
        case .streamClosedForWriting(let id): return "yamux: \(id) was closed for writing"
        }
    }
}
