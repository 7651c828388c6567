import NIOConcurrencyHelpers

/// Alliance members' transit endpoints (address literals and ports from the directory), which
/// members' own sessions may reach even where the exit's built-in denials or self-protection
/// would refuse them (a member attesting this exit sends an echo back to its own transit port,
/// which may be on a private or loopback network in a private deployment or the demo). Users'
/// sessions never get this exemption. At most 16,384 endpoints (4096 members × 4).
public final class MemberEndpoints: Sendable {
    public static let limit = 16_384

    /// An address and port, the same type the exit's self-protection keeps.
    public typealias Endpoint = SelfAddresses.Endpoint

    private let box = NIOLockedValueBox<Set<Endpoint>>([])

    public init() {}

    /// Replaces the set; entries whose host is not an address literal are skipped.
    public func set(_ endpoints: [(host: String, port: UInt16)]) {
        var out = Set<Endpoint>()
        for e in endpoints where out.count < Self.limit {
            if let a = IPAddress(SelfAddressMonitor.unbracketed(e.host)) { out.insert(Endpoint(address: a, port: e.port)) }
        }
        box.withLockedValue { $0 = out }
    }

    public func contains(_ address: IPAddress, port: UInt16) -> Bool {
        box.withLockedValue { $0.contains(Endpoint(address: address, port: port)) }
    }

    public var count: Int { box.withLockedValue { $0.count } }
}
