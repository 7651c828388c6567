import MontanaWire

/// One datagram on a UDP ASSOCIATE relay: `RSV(2) ‖ FRAG ‖ ATYP ‖ DST.ADDR ‖ DST.PORT ‖ DATA`
/// (RFC 1928 7). Decoding errors mean "drop silently", as RFC 1928 asks.
public struct SOCKS5UDPDatagram: Equatable, Sendable {
    public var address: EgressAddress
    public var port: UInt16
    public var payload: [UInt8]

    public init(address: EgressAddress, port: UInt16, payload: [UInt8]) {
        self.address = address
        self.port = port
        self.payload = payload
    }

    public static func decode(_ bytes: [UInt8]) throws(SOCKS5Error) -> SOCKS5UDPDatagram {
        guard bytes.count >= 4 else { throw .truncatedDatagram }
        // RSV is ignored rather than checked: it carries nothing, and strictness here buys nothing.
        guard bytes[2] == 0 else { throw .fragmentedDatagram(bytes[2]) }
        switch try SOCKS5Address.read(bytes, from: 3) {
        case .needMoreBytes: throw .truncatedDatagram
        case .unknownAddressType(let type): throw .unknownAddressType(type)
        case .address(let address, let port, let end):
            return SOCKS5UDPDatagram(address: address, port: port, payload: Array(bytes[end...]))
        }
    }

    public func encode() -> [UInt8] {
        var out: [UInt8] = [0, 0, 0]
        SOCKS5Address.append(address, port: port, to: &out)
        return out + payload
    }
}
