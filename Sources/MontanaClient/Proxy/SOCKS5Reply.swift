import MontanaWire

/// The server's answer to a request: `VER ‖ REP ‖ RSV ‖ ATYP ‖ BND.ADDR ‖ BND.PORT` (RFC 1928 6).
public struct SOCKS5Reply: Equatable, Sendable {
    public enum Code: UInt8, Sendable, CaseIterable {
        case succeeded = 0x00
        case generalFailure = 0x01
        case connectionNotAllowed = 0x02
        case networkUnreachable = 0x03
        case hostUnreachable = 0x04
        case connectionRefused = 0x05
        case ttlExpired = 0x06
        case commandNotSupported = 0x07
        case addressTypeNotSupported = 0x08

        /// What the client is told when the exit answers an EgressOpen (PROTOCOL.md 7.2).
        public init(status: EgressOpenStatus) {
            switch status {
            case .open: self = .succeeded
            case .refusedByPolicy: self = .connectionNotAllowed
            case .unreachable: self = .hostUnreachable
            case .rateLimited: self = .generalFailure
            }
        }
    }

    public var code: Code
    public var boundAddress: EgressAddress
    public var boundPort: UInt16

    /// The bound address defaults to 0.0.0.0:0: the real one is at the exit, and no client needs it
    /// for CONNECT. UDP ASSOCIATE must pass the local relay address.
    public init(code: Code, boundAddress: EgressAddress = .ipv4([0, 0, 0, 0]), boundPort: UInt16 = 0) {
        self.code = code
        self.boundAddress = boundAddress
        self.boundPort = boundPort
    }

    public func encode() -> [UInt8] {
        var out: [UInt8] = [0x05, code.rawValue, 0x00]
        SOCKS5Address.append(boundAddress, port: boundPort, to: &out)
        return out
    }
}
