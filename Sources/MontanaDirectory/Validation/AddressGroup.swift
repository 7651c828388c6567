import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The network a member is in, for "attesters must differ in /16" (PROTOCOL.md section 8.4):
/// an IPv4 literal gives its /16 as `"a.b"`; an IPv6 literal its first 32 bits as 8 hex digits
/// (`"20010db8"`; an IPv4-mapped address counts as the IPv4 one); a name gives itself, lower-case
/// and without a final dot. No host gives `""`, which is one group like any other, so two members
/// without endpoints never count as distinct.
public enum AddressGroup {
    public static func of(host rawHost: String) -> String {
        var host = rawHost
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        if let v4 = ipv4(host) { return "\(v4[0]).\(v4[1])" }
        if let v6 = ipv6(host) {
            if v6[0..<10].allSatisfy({ $0 == 0 }), v6[10] == 0xff, v6[11] == 0xff { return "\(v6[12]).\(v6[13])" }
            return v6[0..<4].map { String(format: "%02x", $0) }.joined()
        }
        var name = host.lowercased()
        if name.hasSuffix(".") { name.removeLast() }
        return name
    }

    /// Strict dotted quad: four decimal numbers 0...255, no leading zeros beyond "0".
    static func ipv4(_ s: String) -> [UInt8]? {
        let parts = s.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var out: [UInt8] = []
        for p in parts {
            guard (1...3).contains(p.count), p.allSatisfy({ $0.isASCII && $0.isNumber }),
                  p.count == 1 || p.first != "0", let v = UInt8(p) else { return nil }
            out.append(v)
        }
        return out
    }

    static func ipv6(_ s: String) -> [UInt8]? {
        guard s.contains(":"), s.utf8.count <= 45 else { return nil }
        var addr = in6_addr()
        guard inet_pton(AF_INET6, s, &addr) == 1 else { return nil }
        return withUnsafeBytes(of: &addr) { Array($0) }
    }
}
