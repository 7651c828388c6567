/// What a client speaks on the mixed proxy port, told apart by its first byte.
public enum ProxyProtocol: Equatable, Sendable {
    case socks5
    /// Unsupported (no remote name resolution, no IPv6): close the connection.
    case socks4
    /// A request line starts with a method name, always an ASCII letter.
    case http
    case unknown

    public init(firstByte: UInt8) {
        switch firstByte {
        case 0x05: self = .socks5
        case 0x04: self = .socks4
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"): self = .http
        default: self = .unknown
        }
    }
}
