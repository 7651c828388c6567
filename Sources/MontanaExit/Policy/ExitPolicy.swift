/// Decides whether the exit may open an egress connection (PROTOCOL.md 7.3). Precedence:
/// operator deny > operator allow > built-in deny > mode default. Sans-I/O: the caller resolves
/// the name, checks every address it got, and then connects only to those addresses.
public struct ExitPolicy: Sendable {
    public let configuration: ExitPolicyConfiguration
    private let allowNetworks: [IPNetwork]
    private let allowPorts: [ClosedRange<UInt16>]
    private let allowHosts: [HostSuffix]

    public init(configuration: ExitPolicyConfiguration) {
        self.configuration = configuration
        var networks: [IPNetwork] = [], ports: [ClosedRange<UInt16>] = [], hosts: [HostSuffix] = []
        for entry in configuration.allow {
            switch entry {
            case .network(let n): networks.append(n)
            case .ports(let p): ports.append(p)
            case .hostSuffix(let h): hosts.append(h)
            }
        }
        allowNetworks = networks
        allowPorts = ports
        allowHosts = hosts
    }

    /// - Parameters:
    ///   - host: the requested name, or nil when the client asked for an address literal.
    ///   - addresses: every address the name resolved to (or the literal); all must pass.
    ///   - port: the destination port.
    public func check(host: String?, addresses: [IPAddress], port: UInt16) -> ExitPolicyDecision {
        guard !addresses.isEmpty else { return .deny(reason: .noAddress) }
        let name = host.map(HostSuffix.normalize(host:))
        // Each address is also judged by the IPv4 address it reaches (mapped, NAT64), so neither
        // a built-in nor an operator IPv4 rule can be dodged by writing it as IPv6.
        let views = addresses.map { address in [address] + (address.embeddedIPv4.map { [$0] } ?? []) }

        let operatorDenies = configuration.deny.contains { entry in
            views.contains { matches(entry, name: name, views: $0, port: port) }
        }
        if operatorDenies { return .deny(reason: .operatorDeny) }

        if configuration.builtinDenials {
            // Only an allow entry for the same address range re-permits it: a host-suffix allow
            // must not, or a name resolving to 127.0.0.1 (DNS rebinding) would get through.
            let builtinDenied = views.joined().contains { view in
                BuiltinDenials.networks.contains { $0.contains(view) } && !allowNetworks.contains { $0.contains(view) }
            }
            if builtinDenied { return .deny(reason: .builtinRange) }
            let portDenied = BuiltinDenials.ports.contains { $0.contains(port) } && !allowPorts.contains { $0.contains(port) }
            if portDenied { return .deny(reason: .port) }
        }

        switch configuration.mode {
        case .defaultAllow:
            return .allow
        case .defaultDeny:
            let everyAddressAllowed = views.allSatisfy { addressViews in
                configuration.allow.contains { matches($0, name: name, views: addressViews, port: port) }
            }
            return everyAddressAllowed ? .allow : .deny(reason: .defaultDeny)
        }
    }

    /// Convenience for resolvers that hand back raw network-order bytes; a malformed address
    /// (not 4 or 16 bytes) cannot be checked, so the request is refused as if it were denied.
    public func check(host: String?, addressBytes: [[UInt8]], port: UInt16) -> ExitPolicyDecision {
        let addresses = addressBytes.compactMap { IPAddress(bytes: $0) }
        guard addresses.count == addressBytes.count else { return .deny(reason: .builtinRange) }
        return check(host: host, addresses: addresses, port: port)
    }

    private func matches(_ entry: ExitPolicyEntry, name: String?, views: [IPAddress], port: UInt16) -> Bool {
        switch entry {
        case .network(let network): return views.contains { network.contains($0) }
        case .ports(let range): return range.contains(port)
        case .hostSuffix(let suffix): return name.map { suffix.matches(normalizedHost: $0) } ?? false
        }
    }
}
