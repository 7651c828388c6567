import MontanaWire

/// A SOCKS5 request the proxy serves. BIND is refused by the handshake, so it never appears.
public struct SOCKS5Request: Equatable, Sendable {
    public enum Command: UInt8, Sendable {
        case connect = 0x01
        case udpAssociate = 0x03
    }

    public var command: Command
    /// For CONNECT the destination; for UDP ASSOCIATE the address the client expects to send
    /// from (often 0.0.0.0:0).
    public var address: EgressAddress
    public var port: UInt16

    public init(command: Command, address: EgressAddress, port: UInt16) {
        self.command = command
        self.address = address
        self.port = port
    }
}
