/// Decides whether the exit may open an egress connection (PROTOCOL.md 7.3). Precedence:
/// operator deny > self (the exit's own addresses) > built-in deny > mode default (with the
/// operator's `allow`). Only `allow_private` lifts a self or built-in denial; `allow` never
/// does, however broad. Sans-I/O: the caller resolves the name, checks every address it got,
/// and then connects only to those addresses.
public struct ExitPolicy: Sendable {
    public let configuration: ExitPolicyConfiguration
    /// The node's own addresses and endpoints; nil for a policy without a node (tests, tools).
    public let selfAddresses: SelfAddresses?
    /// For members' sessions only: members' transit endpoints, allowed past the self and
    /// built-in denials (never past an operator `deny`).
    public let memberEndpoints: MemberEndpoints?
    private let privateNetworks: [IPNetwork]
    private let privatePorts: [ClosedRange<UInt16>]

    public init(configuration: ExitPolicyConfiguration, selfAddresses: SelfAddresses? = nil, memberEndpoints: MemberEndpoints? = nil) {
        self.configuration = configuration
        self.selfAddresses = selfAddresses
        self.memberEndpoints = memberEndpoints
        var networks: [IPNetwork] = [], ports: [ClosedRange<UInt16>] = []
        for entry in configuration.allowPrivate {
            switch entry {
            case .network(let n): networks.append(n)
            case .ports(let p): ports.append(p)
            // Rejected when parsed: a name cannot re-open an address range (DNS rebinding).
            case .hostSuffix: break
            }
        }
        privateNetworks = networks
        privatePorts = ports
    }

    /// - Parameters:
    ///   - host: the requested name, or nil when the client asked for an address literal.
    ///   - addresses: every address the name resolved to (or the literal); all must pass.
    ///   - port: the destination port.
    public func check(host: String?, addresses: [IPAddress], port: UInt16) -> ExitPolicyDecision {
        guard !addresses.isEmpty else { return .deny(reason: .noAddress) }
        let name = host.map(HostSuffix.normalize(host:))
        // Each address is also judged by the IPv4 addresses it reaches (mapped, NAT64, SIIT, 6to4,
        // Teredo), so neither a built-in nor an operator IPv4 rule can be dodged by writing it as IPv6.
        let views = addresses.map { address in [address] + address.embeddedIPv4Addresses }

        let operatorDenies = configuration.deny.contains { entry in
            views.contains { matches(entry, name: name, views: $0, port: port) }
        }
        if operatorDenies { return .deny(reason: .operatorDeny) }

        if let memberEndpoints, addresses.allSatisfy({ memberEndpoints.contains($0, port: port) }) { return .allow }

        if let selfAddresses {
            let reachesSelf = views.joined().contains { view in
                switch selfAddresses.match(view, port: port) {
                case .host: return !privateNetworkCovers(view)
                case .endpoint: return !(privateNetworkCovers(view) && privatePortCovers(port))
                case nil: return false
                }
            }
            if reachesSelf { return .deny(reason: .selfAddress) }
        }

        if configuration.builtinDenials {
            // Only `allow_private` re-permits a built-in denial; it holds address ranges and ports,
            // never names, or a name resolving to 127.0.0.1 (DNS rebinding) would get through.
            let builtinDenied = views.joined().contains { view in
                BuiltinDenials.networks.contains { $0.contains(view) } && !privateNetworkCovers(view)
            }
            if builtinDenied { return .deny(reason: .builtinRange) }
            let portDenied = BuiltinDenials.ports.contains { $0.contains(port) } && !privatePortCovers(port)
            if portDenied { return .deny(reason: .port) }
        }

        switch configuration.mode {
        case .defaultAllow:
            return .allow
        case .defaultDeny:
            // `allow_private` only lifts denials; what default-deny lets through is `allow`'s business.
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

    private func privateNetworkCovers(_ address: IPAddress) -> Bool {
        privateNetworks.contains { $0.contains(address) }
    }

    private func privatePortCovers(_ port: UInt16) -> Bool {
        privatePorts.contains { $0.contains(port) }
    }

    private func matches(_ entry: ExitPolicyEntry, name: String?, views: [IPAddress], port: UInt16) -> Bool {
        switch entry {
        case .network(let network): return views.contains { network.contains($0) }
        case .ports(let range): return range.contains(port)
        case .hostSuffix(let suffix): return name.map { suffix.matches(normalizedHost: $0) } ?? false
        }
    }
}
