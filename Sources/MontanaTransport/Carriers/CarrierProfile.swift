/// The carrier profiles of the ladder (PROTOCOL.md section 2), numbered as in directory
/// endpoints and reachability adverts.
public enum CarrierProfile: UInt8, Sendable, Hashable, CaseIterable, Comparable, CustomStringConvertible {
    /// Raw TCP; the preface is the first byte on the wire.
    case t0 = 0
    /// TLS 1.3 mimicry with relay to a real cover site (planned).
    case t1 = 1
    /// WebSocket over TLS, CDN-compatible (`WebSocketConnector`, `[carriers.ws]`).
    case t2 = 2
    /// Tor pluggable transport obfs4 through `obfs4proxy` in PT 1.0 managed mode.
    case t3 = 3
    /// Mesh radio (out of scope; valid in records only).
    case t4 = 4

    /// "t0" … "t4", as in config files and `/status`.
    public var name: String { "t\(rawValue)" }
    public var description: String { name }

    /// Parses "t0" … "t4" (also upper case).
    public init?(name: String) {
        let lower = name.lowercased()
        guard lower.count == 2, lower.hasPrefix("t"), let n = UInt8(lower.dropFirst()), let p = CarrierProfile(rawValue: n) else { return nil }
        self = p
    }

    /// The ladder's default order (PROTOCOL.md 2): the most camouflaged first, raw TCP last.
    public static let defaultOrder: [CarrierProfile] = [.t1, .t2, .t3, .t0]

    public static func < (a: CarrierProfile, b: CarrierProfile) -> Bool { a.rawValue < b.rawValue }
}
