import MontanaWire

/// The `ATYP ‖ ADDR ‖ PORT` field shared by requests, replies and UDP datagram headers (RFC 1928 5).
enum SOCKS5Address {
    static let ipv4: UInt8 = 0x01
    static let domainName: UInt8 = 0x03
    static let ipv6: UInt8 = 0x04

    enum ReadResult {
        case needMoreBytes
        case unknownAddressType(UInt8)
        case address(EgressAddress, port: UInt16, end: Int)
    }

    /// Reads from `bytes[start...]`; domain names pass through untouched (the exit resolves them).
    static func read(_ bytes: [UInt8], from start: Int) throws(SOCKS5Error) -> ReadResult {
        guard start < bytes.count else { return .needMoreBytes }
        let type = bytes[start]
        let addressStart: Int, addressLength: Int
        switch type {
        case ipv4: addressStart = start + 1; addressLength = 4
        case ipv6: addressStart = start + 1; addressLength = 16
        case domainName:
            guard start + 1 < bytes.count else { return .needMoreBytes }
            addressStart = start + 2
            addressLength = Int(bytes[start + 1])
        default:
            return .unknownAddressType(type)
        }
        let end = addressStart + addressLength + 2
        guard end <= bytes.count else { return .needMoreBytes }
        let raw = Array(bytes[addressStart..<addressStart + addressLength])
        let port = UInt16(bytes[end - 2]) << 8 | UInt16(bytes[end - 1])
        switch type {
        case ipv4: return .address(.ipv4(raw), port: port, end: end)
        case ipv6: return .address(.ipv6(raw), port: port, end: end)
        default:
            // Same rule as an EgressOpen host name, so anything accepted here can be sent on.
            guard !raw.isEmpty, raw.allSatisfy({ $0 > 0x20 && $0 != 0x7f }),
                  let name = String(validating: raw, as: UTF8.self) else { throw .invalidDomainName }
            return .address(.host(name), port: port, end: end)
        }
    }

    /// Encoders never trap: an address that cannot be represented (wrong length, name over 255
    /// bytes) is written as 0.0.0.0, which clients treat as "unspecified".
    static func append(_ address: EgressAddress, port: UInt16, to out: inout [UInt8]) {
        switch address {
        case .ipv4(let a) where a.count == 4:
            out.append(ipv4)
            out += a
        case .ipv6(let a) where a.count == 16:
            out.append(ipv6)
            out += a
        case .host(let name) where (1...255).contains(name.utf8.count):
            out.append(domainName)
            out.append(UInt8(name.utf8.count))
            out += Array(name.utf8)
        default:
            out += [ipv4, 0, 0, 0, 0]
        }
        out.append(UInt8(port >> 8))
        out.append(UInt8(port & 0xff))
    }
}
