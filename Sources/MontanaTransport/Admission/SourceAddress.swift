import Foundation
import MontanaCrypto
import NIOCore

/// A connection's source address as admission counts it: integers, IPv4-mapped IPv6
/// (`::ffff:a.b.c.d`) folded into IPv4 so a dual-stack listener cannot be used to double a budget.
public struct SourceAddress: Hashable, Sendable, CustomStringConvertible {
    public let isIPv4: Bool
    /// IPv6 bits 0-63; 0 for IPv4.
    public let high: UInt64
    /// IPv6 bits 64-127; for IPv4 the address in the low 32 bits.
    public let low: UInt64

    private init(isIPv4: Bool, high: UInt64, low: UInt64) {
        self.isIPv4 = isIPv4
        self.high = high
        self.low = low
    }

    public init(ipv4: UInt32) {
        self.init(isIPv4: true, high: 0, low: UInt64(ipv4))
    }

    public init(ipv6High: UInt64, low: UInt64) {
        if ipv6High == 0 && low >> 32 == 0xffff {
            self.init(ipv4: UInt32(truncatingIfNeeded: low))
        } else {
            self.init(isIPv4: false, high: ipv6High, low: low)
        }
    }

    /// From network-order bytes: 4 (IPv4) or 16 (IPv6).
    public init?(bytes: [UInt8]) {
        switch bytes.count {
        case 4:
            self.init(ipv4: bytes.reduce(0) { $0 << 8 | UInt32($1) })
        case 16:
            self.init(ipv6High: bytes[0..<8].reduce(0) { $0 << 8 | UInt64($1) },
                      low: bytes[8..<16].reduce(0) { $0 << 8 | UInt64($1) })
        default:
            return nil
        }
    }

    /// Parses an IPv4 or IPv6 literal (no host names, no zone ids).
    public init?(_ text: String) {
        guard !text.contains("%"), let address = try? SocketAddress(ipAddress: text, port: 0) else { return nil }
        self.init(address)
    }

    /// The address of an IP socket address; nil for a Unix-domain socket.
    public init?(_ address: SocketAddress) {
        switch address {
        case .v4(let a):
            self.init(ipv4: UInt32(bigEndian: a.address.sin_addr.s_addr))
        case .v6(let a):
            var raw = a.address.sin6_addr
            let bytes = withUnsafeBytes(of: &raw) { Array($0) }
            self.init(bytes: bytes)
        case .unixDomainSocket:
            return nil
        }
    }

    /// The prefix of `bits` leading bits (clamped to the family's width).
    public func prefix(bits: Int) -> SourcePrefix {
        if isIPv4 {
            let b = min(max(bits, 0), 32)
            let mask: UInt64 = b == 0 ? 0 : (UInt64(UInt32.max) << UInt64(32 - b)) & UInt64(UInt32.max)
            return SourcePrefix(isIPv4: true, bits: UInt8(b), high: 0, low: low & mask)
        }
        let b = min(max(bits, 0), 128)
        let highMask: UInt64 = b >= 64 ? .max : (b == 0 ? 0 : UInt64.max << UInt64(64 - b))
        let lowMask: UInt64 = b <= 64 ? 0 : (b == 128 ? .max : UInt64.max << UInt64(128 - b))
        return SourcePrefix(isIPv4: false, bits: UInt8(b), high: high & highMask, low: low & lowMask)
    }

    public var description: String {
        if isIPv4 {
            return (0..<4).map { String(UInt8(truncatingIfNeeded: low >> UInt64(24 - 8 * $0))) }.joined(separator: ".")
        }
        var groups: [String] = []
        for word in [high, low] {
            for shift in stride(from: 48, through: 0, by: -16) {
                groups.append(String(UInt16(truncatingIfNeeded: word >> UInt64(shift)), radix: 16))
            }
        }
        return groups.joined(separator: ":")
    }
}

/// A masked source address: the key of one admission budget (an IPv4 /32 or /24, an IPv6 /64 or
/// /48 by default).
public struct SourcePrefix: Hashable, Sendable, CustomStringConvertible {
    public let isIPv4: Bool
    public let bits: UInt8
    public let high: UInt64
    public let low: UInt64

    /// The replay memory charges entries to the prefix; the tag keeps families and lengths apart.
    public var replayOwner: ReplayOwner {
        ReplayOwner(high: high, low: low, tag: isIPv4 ? bits : 64 + bits)  // IPv4 0-32, IPv6 64-192
    }

    public var description: String {
        let base = isIPv4 ? SourceAddress(ipv4: UInt32(truncatingIfNeeded: low)) : SourceAddress(ipv6High: high, low: low)
        return "\(base)/\(bits)"
    }
}
