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
        let server = LocalProxyServer(account: configuration.account, members: members(configuration.members),
                                      defaultSelection: configuration.defaultExit, alliance: configuration.alliance,
                                      auth: configuration.credentials, logger: logger)
        var listeners: [LocalProxyServer.Listener] = []
        if let s = configuration.socks { listeners.append(.init(kind: .socks5, host: s.host, port: s.port)) }
        if let h = configuration.http { listeners.append(.init(kind: .http, host: h.host, port: h.port)) }
        if let m = configuration.mixed { listeners.append(.init(kind: .mixed, host: m.host, port: m.port)) }
        try await server.start(listeners)
        return server
    }
}
