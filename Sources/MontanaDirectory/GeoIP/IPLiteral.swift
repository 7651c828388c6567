#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// IPv4 and IPv6 address literals as bytes (4 or 16, network order), via `inet_pton`.
/// MontanaDirectory does not depend on MontanaExit (which has a richer `IPAddress`), so GeoIP,
/// links and the validator's address groups share this one.
public enum IPLiteral {
    /// The longest literal accepted: an IPv6 address with an embedded IPv4 tail is at most 45
    /// characters (`INET6_ADDRSTRLEN` - 1). Longer input is never handed to `inet_pton`.
    public static let maxLength = 45

    /// `"192.0.2.1"` → 4 bytes, `"2001:db8::1"` → 16 bytes; anything else (names, zones such as
    /// `fe80::1%eth0`, brackets, surrounding spaces) → nil.
    public static func parse(_ text: String) -> [UInt8]? {
        guard !text.isEmpty, text.utf8.count <= maxLength, !text.utf8.contains(0) else { return nil }
        if text.contains(":") {
            var address = in6_addr()
            guard inet_pton(AF_INET6, text, &address) == 1 else { return nil }
            return withUnsafeBytes(of: &address) { Array($0) }
        }
        var address = in_addr()
        guard inet_pton(AF_INET, text, &address) == 1 else { return nil }
        return withUnsafeBytes(of: &address) { Array($0) }
    }

    /// The canonical text of 4 or 16 address bytes (`inet_ntop`); nil for any other length.
    public static func format(_ bytes: [UInt8]) -> String? {
        let family: Int32
        switch bytes.count {
        case 4: family = AF_INET
        case 16: family = AF_INET6
        default: return nil
        }
        var buffer = [CChar](repeating: 0, count: 64)
        let ok = bytes.withUnsafeBytes { raw in
            inet_ntop(family, raw.baseAddress, &buffer, socklen_t(buffer.count)) != nil
        }
        guard ok else { return nil }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// The IPv4 address inside an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`), else nil. GeoIP
    /// lookups use it so a dual-stack socket's view of an IPv4 peer finds the IPv4 entry.
    public static func mappedIPv4(_ bytes: [UInt8]) -> [UInt8]? {
        guard bytes.count == 16, bytes[0..<10].allSatisfy({ $0 == 0 }), bytes[10] == 0xff, bytes[11] == 0xff else { return nil }
        return Array(bytes[12..<16])
    }
}
