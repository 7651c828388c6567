/// A CIDR block such as `10.0.0.0/8` or `fc00::/7`. The address never has host bits set.
public struct IPNetwork: Hashable, Sendable {
    public let address: IPAddress
    public let prefixLength: Int

    /// Checked construction for code; configuration text goes through `ExitPolicyEntry.parse`.
    public init?(address: IPAddress, prefixLength: Int) {
        guard (0...address.bitWidth).contains(prefixLength),
              IPNetwork.masked(address, prefixLength) == address else { return nil }
        self.address = address
        self.prefixLength = prefixLength
    }

    /// For the built-in table, whose literals are known to be well formed.
    init(_ text: String) {
        let parts = text.split(separator: "/")
        guard parts.count == 2, let address = IPAddress(String(parts[0])), let length = Int(parts[1]),
              let network = IPNetwork(address: address, prefixLength: length) else {
            preconditionFailure("malformed built-in network \(text)")
        }
        self = network
    }

    /// Same family and the first `prefixLength` bits agree. IPv4 never matches an IPv6 network;
    /// callers that care about embedded IPv4 check `IPAddress.embeddedIPv4` separately.
    public func contains(_ candidate: IPAddress) -> Bool {
        IPNetwork.masked(candidate, prefixLength) == address
    }

    static func masked(_ address: IPAddress, _ prefixLength: Int) -> IPAddress {
        switch address {
        case .v4(let v):
            let mask: UInt32 = prefixLength == 0 ? 0 : ~0 << UInt32(32 - min(prefixLength, 32))
            return .v4(v & mask)
        case .v6(let high, let low):
            let highBits = min(max(prefixLength, 0), 64), lowBits = min(max(prefixLength - 64, 0), 64)
            let highMask: UInt64 = highBits == 0 ? 0 : ~0 << UInt64(64 - highBits)
            let lowMask: UInt64 = lowBits == 0 ? 0 : ~0 << UInt64(64 - lowBits)
            return .v6(high: high & highMask, low: low & lowMask)
        }
    }
}

extension IPNetwork: CustomStringConvertible {
    public var description: String { "\(address)/\(prefixLength)" }
}
