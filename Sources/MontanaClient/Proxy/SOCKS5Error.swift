/// Bytes that are not SOCKS5. The connection is closed without a reply: the peer's framing is lost.
public enum SOCKS5Error: Error, Equatable, Sendable, CustomStringConvertible {
    case unsupportedVersion(UInt8)
    case unsupportedAuthenticationVersion(UInt8)
    case invalidDomainName
    case unknownAddressType(UInt8)
    case truncatedDatagram
    /// UDP datagrams with FRAG != 0 are dropped (fragment reassembly is optional in RFC 1928).
    case fragmentedDatagram(UInt8)
    /// `next()` or `completeAuthentication` called in a state where it makes no sense.
    case callOutOfOrder

    public var description: String {
        switch self {
        case .unsupportedVersion(let v): return "SOCKS version \(v), expected 5"
        case .unsupportedAuthenticationVersion(let v): return "username/password sub-negotiation version \(v), expected 1"
        case .invalidDomainName: return "SOCKS domain name is empty, has control or space bytes, or is not UTF-8"
        case .unknownAddressType(let t): return "SOCKS address type \(t)"
        case .truncatedDatagram: return "SOCKS UDP datagram is shorter than its header"
        case .fragmentedDatagram(let f): return "SOCKS UDP fragment \(f) dropped (fragmentation unsupported)"
        case .callOutOfOrder: return "SOCKS5 handshake driven out of order"
        }
    }
}
