import Logging
import MontanaClient
import MontanaTransport
import NIOCore

/// `montana client`: the local proxy ports from a client configuration.
public enum ClientRuntime {
    public static func members(_ peers: [PeerConfiguration]) -> [AllianceMember] {
        peers.map { p in
            AllianceMember(nodeID: p.nodeID, kemPublicKey: p.kemPublicKey, host: p.endpoint.host, port: p.endpoint.port,
                           country: p.country, roles: p.roles)
        }
    }

    public static func start(_ configuration: ClientConfiguration, logger: Logger) async throws -> LocalProxyServer {
        try checkSource(configuration)
        let server = LocalProxyServer(account: configuration.account, members: members(configuration.members),
                                      defaultSelection: configuration.defaultExit, alliance: configuration.alliance,
                                      auth: configuration.credentials, options: configuration.circuitOptions, logger: logger)
        var listeners: [LocalProxyServer.Listener] = []
        if let s = configuration.socks { listeners.append(.init(kind: .socks5, host: s.host, port: s.port)) }
        if let h = configuration.http { listeners.append(.init(kind: .http, host: h.host, port: h.port)) }
        if let m = configuration.mixed { listeners.append(.init(kind: .mixed, host: m.host, port: m.port)) }
        try await server.start(listeners)
        warnAboutExitsWithoutFronts(server.manager, logger: logger)
        return server
    }
}

extension ClientRuntime {
    /// A `source` no local socket can be bound to fails at start, naming file and key.
    public static func checkSource(_ configuration: ClientConfiguration) throws(ClientRuntimeError) {
        if let source = configuration.source, let problem = source.bindProblem() {
            throw .sourceUnusable("\(configuration.file): client.source: \(problem)")
        }
    }

    /// Says at start which exits cannot be used without `exit_as_front` (no other front is
    /// listed), rather than only on each failed connection.
    static func warnAboutExitsWithoutFronts(_ manager: CircuitManager, logger: Logger) {
        for exit in manager.exitsWithoutOtherFronts() {
            logger.warning("\(CircuitManagerError.exitAsFrontRequired)", metadata: ["exit": "\(exit.label)"])
        }
    }
}

public enum ClientRuntimeError: Error, CustomStringConvertible {
    case sourceUnusable(String)

    public var description: String {
        switch self {
        case .sourceUnusable(let why): return why
        }
    }
}
