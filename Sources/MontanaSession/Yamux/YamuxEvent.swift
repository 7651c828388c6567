import NIOCore

/// A go-away error code (0 normal, 1 protocol error, 2 internal error; others are passed through).
public struct YamuxGoAwayCode: RawRepresentable, Hashable, Sendable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    public static let normal = YamuxGoAwayCode(rawValue: 0)
    public static let protocolError = YamuxGoAwayCode(rawValue: 1)
    public static let internalError = YamuxGoAwayCode(rawValue: 2)
}

/// What `YamuxConnection.receive` reports to its caller.
public enum YamuxEvent: Equatable, Sendable {
    /// The peer opened this stream (already ACKed in the outbound bytes).
    case streamOpened(YamuxStreamID)
    /// Stream bytes for the application. Hand them on, then call `consumed` to reopen the window.
    case data(YamuxStreamID, ByteBuffer)
    /// The peer half-closed the stream (FIN): no more data will arrive on it.
    case remoteClosed(YamuxStreamID)
    /// The peer reset the stream (RST); it is gone and its pending outbound data dropped.
    case reset(YamuxStreamID)
    /// A stream that was not writable fell below its pending-outbound limit: resume reading the source.
    case writable(YamuxStreamID)
    /// The peer will open no more streams; existing streams continue.
    case goAway(YamuxGoAwayCode)
    /// A ping sent with `ping(now:)` came back after this many nanoseconds.
    case pingRTT(nanoseconds: UInt64)
}
