/// A yamux stream id. The session initiator opens odd ids, the responder even ids; 0 is the session.
public struct YamuxStreamID: RawRepresentable, Hashable, Comparable, Sendable, CustomStringConvertible {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    public init(_ rawValue: UInt32) { self.rawValue = rawValue }

    public static func < (lhs: YamuxStreamID, rhs: YamuxStreamID) -> Bool { lhs.rawValue < rhs.rawValue }
    public var description: String { "stream \(rawValue)" }
}

/// Which end of the session this connection is; it decides the parity of the ids it opens.
public enum YamuxRole: Sendable {
    /// The session initiator: opens odd stream ids.
    case client
    /// The session responder: opens even stream ids.
    case server

    var firstStreamID: UInt32 { self == .client ? 1 : 2 }

    /// Whether `id` is one this role opens (as opposed to the peer).
    func opens(_ id: UInt32) -> Bool { id != 0 && (id % 2 == 1) == (self == .client) }
}
