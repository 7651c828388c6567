/// One item of an operator's `allow` or `deny` list. Each kind matches on its own: a network
/// matches the destination address, a host suffix the requested name, a port range the port.
public enum ExitPolicyEntry: Hashable, Sendable {
    case network(IPNetwork)
    case hostSuffix(HostSuffix)
    case ports(ClosedRange<UInt16>)

    /// Reads `10.0.0.0/8`, `2001:db8::/32`, `192.0.2.7` (a /32), `::1` (a /128), `443`,
    /// `8000-8999`, `example.com`, `.example.com` or `*.example.com`.
    public static func parse(_ text: String) throws(ExitPolicyEntryError) -> ExitPolicyEntry {
        let entry = text.trimmingASCIIWhitespace()
        guard !entry.isEmpty else { throw .empty }
        if entry.contains("/") || entry.contains(":") { return .network(try parseNetwork(entry)) }
        let bytes = entry.utf8
        if bytes.allSatisfy({ isDigit($0) || $0 == UInt8(ascii: "-") }) { return .ports(try parsePorts(entry)) }
        // All digits and dots cannot be a host suffix (no numeric top-level domains): an IPv4 typo.
        if bytes.allSatisfy({ isDigit($0) || $0 == UInt8(ascii: ".") }) { return .network(try parseNetwork(entry)) }
        guard let suffix = HostSuffix(entry) else { throw .invalidHostSuffix }
        return .hostSuffix(suffix)
    }

    private static func parseNetwork(_ text: String) throws(ExitPolicyEntryError) -> IPNetwork {
        let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        let addressText = String(parts[0])
        guard var address = IPAddress(addressText) else {
            throw addressText.contains(":") ? .invalidIPv6Address : .invalidIPv4Address
        }
        var prefixLength = address.bitWidth
        if parts.count == 2 {
            let lengthText = String(parts[1])
            guard (1...3).contains(lengthText.utf8.count), lengthText.utf8.allSatisfy(isDigit),
                  let length = Int(lengthText) else { throw .invalidPrefixLength(lengthText) }
            guard length <= address.bitWidth else { throw .prefixLengthOutOfRange(length) }
            prefixLength = length
        }
        // `::ffff:a.b.c.d/104` means an IPv4 block; store it as one so it matches both forms.
        if prefixLength >= 96, let v4 = address.embeddedIPv4, case .v6(high: 0, low: _) = address {
            address = v4
            prefixLength -= 96
        }
        guard let network = IPNetwork(address: address, prefixLength: prefixLength) else {
            throw .hostBitsSet(suggestion: "\(IPNetwork.masked(address, prefixLength))/\(prefixLength)")
        }
        return network
    }

    private static func parsePorts(_ text: String) throws(ExitPolicyEntryError) -> ClosedRange<UInt16> {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        guard (1...2).contains(parts.count) else { throw .invalidPort(text) }
        var bounds: [UInt16] = []
        for part in parts {
            guard (1...5).contains(part.utf8.count), let value = UInt32(part), (1...65535).contains(value) else {
                throw .invalidPort(String(part))
            }
            bounds.append(UInt16(value))
        }
        guard bounds[0] <= bounds[bounds.count - 1] else { throw .reversedPortRange }
        return bounds[0]...bounds[bounds.count - 1]
    }

    private static func isDigit(_ c: UInt8) -> Bool { c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9") }
}

extension String {
    func trimmingASCIIWhitespace() -> String {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" }
        return String(drop(while: isSpace).reversed().drop(while: isSpace).reversed())
    }
}
