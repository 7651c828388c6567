/// The `[listen]` section: where the node accepts carriers and serves its admin API.
public struct NodeListen: Equatable, Sendable {
    /// The T0 carrier for clients and members.
    public var transit: HostPort
    /// What other members and clients dial; nil when the transit address is a wildcard and
    /// nothing was configured.
    public var publicHost: String?
    /// `/metrics`, `/status`, `/healthz`; nil disables the admin API.
    public var admin: HostPort?

    public static let defaultTransit = HostPort(host: "0.0.0.0", port: 7443)

    public init(transit: HostPort = NodeListen.defaultTransit, publicHost: String? = nil, admin: HostPort? = nil) {
        self.transit = transit
        self.publicHost = publicHost ?? (transit.isWildcard ? nil : transit.host)
        self.admin = admin
    }

    /// The address others should dial, when it is known.
    public var publicEndpoint: HostPort? { publicHost.map { HostPort(host: $0, port: transit.port) } }

    static let keys = ["transit", "public_host", "admin"]

    static func parse(_ s: ConfigSection?, warnings: inout [String]) throws(ConfigurationError) -> NodeListen {
        guard let s else {
            warnings.append("no [listen] section: listening on \(defaultTransit), and no public_host to tell others")
            return NodeListen()
        }
        try s.allowOnly(keys)
        let transit = try s.hostPort("transit") ?? defaultTransit
        var publicHost = try s.string("public_host")
        if let host = publicHost {
            if host.isEmpty {
                publicHost = nil
            } else if (try? HostPort(parsing: "\(host.contains(":") ? "[\(host)]" : host):1")) == nil {
                throw s.invalid("public_host", "\"\(host)\" is not a host name or IP address (no port here; the port is transit's)")
            }
        }
        let listen = NodeListen(transit: transit, publicHost: publicHost, admin: try s.hostPort("admin"))
        if listen.publicHost == nil {
            warnings.append("\(s.file): \(s.key("public_host")) is not set and \(s.key("transit")) is a wildcard address, so other members and clients cannot be told where to dial this node")
        }
        if let admin = listen.admin, !admin.isLoopback {
            warnings.append("\(s.file): \(s.key("admin")) \(admin) is not a loopback address: /metrics and /status will be reachable from the network")
        }
        return listen
    }
}
