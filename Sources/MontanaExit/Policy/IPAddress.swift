/// An IPv4 or IPv6 address as the exit policy sees it: integers, so prefix checks are two masks.
public enum IPAddress: Hashable, Sendable {
    case v4(UInt32)
    case v6(high: UInt64, low: UInt64)

    /// From network-order bytes as a resolver returns them; nil unless exactly 4 or 16 bytes.
    public init?<C: Collection>(bytes: C) where C.Element == UInt8 {
        let b = Array(bytes)
        switch b.count {
        case 4:
            self = .v4(b.reduce(0) { $0 << 8 | UInt32($1) })
        case 16:
            self = .v6(high: b[0..<8].reduce(0) { $0 << 8 | UInt64($1) },
                       low: b[8..<16].reduce(0) { $0 << 8 | UInt64($1) })
        default:
            return nil
        }
    }

    /// Parses dotted-quad IPv4 or RFC 4291 IPv6 text (`::` compression, trailing dotted quad).
    /// Zone ids and IPv4 parts with leading zeros (ambiguous: octal to some parsers) are rejected.
    public init?(_ text: String) {
        if text.contains(":") {
            guard let (high, low) = IPAddress.parseIPv6(Array(text.utf8)) else { return nil }
            self = .v6(high: high, low: low)
        } else {
            guard let value = IPAddress.parseIPv4(Array(text.utf8)[...]) else { return nil }
            self = .v4(value)
        }
    }

    /// Network-order bytes: 4 for IPv4, 16 for IPv6.
    public var bytes: [UInt8] {
        switch self {
        case .v4(let v):
            return (0..<4).map { UInt8(truncatingIfNeeded: v >> (24 - 8 * $0)) }
        case .v6(let high, let low):
            return (0..<8).map { UInt8(truncatingIfNeeded: high >> (56 - 8 * $0)) }
                + (0..<8).map { UInt8(truncatingIfNeeded: low >> (56 - 8 * $0)) }
        }
    }

    public var bitWidth: Int {
        switch self {
        case .v4: return 32
        case .v6: return 128
        }
    }

    /// The IPv4 address carried inside an IPv4-mapped (`::ffff:0:0/96`) or NAT64 well-known prefix
    /// (`64:ff9b::/96`) address: connecting to it reaches that IPv4 host, so policy must check it.
    public var embeddedIPv4: IPAddress? {
        guard case .v6(let high, let low) = self else { return nil }
        let isMapped = high == 0 && low >> 32 == 0xffff
        let isNAT64 = high == 0x0064_ff9b_0000_0000 && low >> 32 == 0
        guard isMapped || isNAT64 else { return nil }
        return .v4(UInt32(truncatingIfNeeded: low))
    }

    /// Every IPv4 address a connection to this IPv6 address may reach, so policy judges those too:
    /// - IPv4-mapped `::ffff:0:0/96` and NAT64 `64:ff9b::/96` (as `embeddedIPv4`);
    /// - SIIT IPv4-translated `::ffff:0:0:0/96` (RFC 2765): the last 32 bits;
    /// - 6to4 `2002::/16` (RFC 3056): the relay's IPv4 destination, in bytes 2...5;
    /// - Teredo `2001::/32` (RFC 4380): the client's IPv4 address (the last 32 bits XOR
    ///   0xffffffff), which relays send to, and the Teredo server's IPv4 address (bytes 4...7).
    /// 6to4 and Teredo are not denied outright: they are judged by these embedded addresses, so
    /// one embedding a built-in denied IPv4 address (`2002:7f00:1::`, a Teredo address whose
    /// client is 10.0.0.1) is denied and one embedding only public addresses is not.
    /// Empty for IPv4 and for every other IPv6 address.
    public var embeddedIPv4Addresses: [IPAddress] {
        guard case .v6(let high, let low) = self else { return [] }
        if let mappedOrNAT64 = embeddedIPv4 { return [mappedOrNAT64] }
        if high == 0, low >> 32 == 0xffff_0000 {
            return [.v4(UInt32(truncatingIfNeeded: low))]
        }
        if high >> 48 == 0x2002 {
            return [.v4(UInt32(truncatingIfNeeded: high >> 16))]
        }
        if high >> 32 == 0x2001_0000 {
            let server = IPAddress.v4(UInt32(truncatingIfNeeded: high))
            let client = IPAddress.v4(UInt32(truncatingIfNeeded: low) ^ 0xffff_ffff)
            return [client, server]
        }
        return []
    }

    /// 0.0.0.0 or `::`: as a destination the kernel connects to this machine itself.
    public var isUnspecified: Bool {
        switch self {
        case .v4(let v): return v == 0
        case .v6(let high, let low): return high == 0 && low == 0
        }
    }

    /// 127.0.0.0/8 or `::1`.
    public var isLoopback: Bool {
        switch self {
        case .v4(let v): return v >> 24 == 127
        case .v6(let high, let low): return high == 0 && low == 1
        }
    }

    private static func parseIPv4(_ text: ArraySlice<UInt8>) -> UInt32? {
        let parts = text.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var value: UInt32 = 0
        for part in parts {
            guard (1...3).contains(part.count), part.allSatisfy(isDigit),
                  part.count == 1 || part.first != UInt8(ascii: "0") else { return nil }
            let octet = part.reduce(0) { $0 * 10 + UInt32($1 - UInt8(ascii: "0")) }
            guard octet <= 255 else { return nil }
            value = value << 8 | octet
        }
        return value
    }

    private static func parseIPv6(_ text: [UInt8]) -> (UInt64, UInt64)? {
        guard text.count <= 45 else { return nil }
        // Split around a single "::"; each side is a list of groups.
        var head = text[...]
        var tail: ArraySlice<UInt8>? = nil
        if let range = firstDoubleColon(text) {
            head = text[..<range]
            let rest = text[(range + 2)...]
            guard firstDoubleColon(rest) == nil else { return nil }
            tail = rest
        }
        guard var headGroups = groups(head, allowIPv4Tail: tail == nil) else { return nil }
        var tailGroups: [UInt16] = []
        if let tail {
            guard let parsed = groups(tail, allowIPv4Tail: true) else { return nil }
            tailGroups = parsed
            guard headGroups.count + tailGroups.count <= 7 else { return nil }
            headGroups += Array(repeating: 0, count: 8 - headGroups.count - tailGroups.count)
        }
        let all = headGroups + tailGroups
        guard all.count == 8 else { return nil }
        let high = all[0..<4].reduce(UInt64(0)) { $0 << 16 | UInt64($1) }
        let low = all[4..<8].reduce(UInt64(0)) { $0 << 16 | UInt64($1) }
        return (high, low)
    }

    private static func firstDoubleColon<C: Collection>(_ text: C) -> C.Index? where C.Element == UInt8 {
        var i = text.startIndex
        while i != text.endIndex {
            let next = text.index(after: i)
            if next != text.endIndex, text[i] == UInt8(ascii: ":"), text[next] == UInt8(ascii: ":") { return i }
            i = next
        }
        return nil
    }

    /// Colon-separated hex groups; the last may be a dotted quad (two groups) when allowed.
    private static func groups(_ text: ArraySlice<UInt8>, allowIPv4Tail: Bool) -> [UInt16]? {
        if text.isEmpty { return [] }
        let parts = text.split(separator: UInt8(ascii: ":"), omittingEmptySubsequences: false)
        var out: [UInt16] = []
        for (index, part) in parts.enumerated() {
            if index == parts.count - 1, part.contains(UInt8(ascii: ".")) {
                guard allowIPv4Tail, let v4 = parseIPv4(part) else { return nil }
                out.append(UInt16(truncatingIfNeeded: v4 >> 16))
                out.append(UInt16(truncatingIfNeeded: v4))
                continue
            }
            guard (1...4).contains(part.count) else { return nil }
            var group: UInt16 = 0
            for c in part {
                guard let nibble = hexValue(c) else { return nil }
                group = group << 4 | UInt16(nibble)
            }
            out.append(group)
        }
        return out
    }

    private static func isDigit(_ c: UInt8) -> Bool { c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9") }

    private static func hexValue(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}

extension IPAddress: CustomStringConvertible {
    /// Dotted quad, or RFC 5952 IPv6 (longest zero run compressed; mapped addresses as `::ffff:a.b.c.d`).
    public var description: String {
        switch self {
        case .v4(let v):
            return (0..<4).map { String(UInt8(truncatingIfNeeded: v >> (24 - 8 * $0))) }.joined(separator: ".")
        case .v6(let high, let low):
            if high == 0, low >> 32 == 0xffff {
                return "::ffff:" + IPAddress.v4(UInt32(truncatingIfNeeded: low)).description
            }
            let groups = (0..<8).map { i -> UInt16 in
                let word = i < 4 ? high : low
                return UInt16(truncatingIfNeeded: word >> (48 - 16 * UInt64(i % 4)))
            }
            var bestStart = -1, bestLength = 0, runStart = -1
            for i in 0...8 {
                if i < 8, groups[i] == 0 {
                    if runStart < 0 { runStart = i }
                } else if runStart >= 0 {
                    if i - runStart > bestLength { bestStart = runStart; bestLength = i - runStart }
                    runStart = -1
                }
            }
            let hex = groups.map { String($0, radix: 16) }
            guard bestLength >= 2 else { return hex.joined(separator: ":") }
            let left = hex[..<bestStart].joined(separator: ":")
            let right = hex[(bestStart + bestLength)...].joined(separator: ":")
            return left + "::" + right
        }
    }
}
