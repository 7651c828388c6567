import Logging
import MontanaCrypto
import MontanaTransport
import NIOCore
import NIOPosix

/// The client: local SOCKS5 / HTTP / mixed listeners in front of a `CircuitManager`. One event
/// loop carries everything (a local proxy is light; the heavy crypto is at the exit).
public final class LocalProxyServer: @unchecked Sendable {
    public struct Listener: Sendable {
        public var kind: LocalProxyKind
        public var host: String
        public var port: Int

        public init(kind: LocalProxyKind, host: String, port: Int) {
            self.kind = kind
            self.host = host
            self.port = port
        }
    }

    public let manager: CircuitManager
    private let group: MultiThreadedEventLoopGroup
    private let auth: ProxyCredentials?
    private let logger: Logger
    private var channels: [any Channel] = []
    /// The addresses actually bound, by kind (ports may have been 0).
    public private(set) var bound: [(LocalProxyKind, SocketAddress)] = []

    public init(account: IdentityKey, members: [AllianceMember], defaultSelection: ExitSelection, alliance: [UInt8]?,
                auth: ProxyCredentials?, options: CircuitOptions = CircuitOptions(), logger: Logger) {
        group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        self.auth = auth
        self.logger = logger
        manager = CircuitManager(loop: group.next(), account: account, members: members, defaultSelection: defaultSelection,
                                 alliance: alliance, options: options, logger: logger)
    }

    public func start(_ listeners: [Listener]) async throws {
        for listener in listeners {
            let manager = self.manager
            let auth = self.auth
            let logger = self.logger
            let kind = listener.kind
            let channel = try await ServerBootstrap(group: group)
                .serverChannelOption(.backlog, value: 256)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelOption(.autoRead, value: false)
                .childChannelOption(.allowRemoteHalfClosure, value: true)
                .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
                .childChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(LocalProxyHandler(kind: kind, manager: manager, auth: auth, logger: logger))
                    }
                }
                .bind(host: listener.host, port: listener.port)
                .get()
            channels.append(channel)
            if let address = channel.localAddress { bound.append((kind, address)) }
        }
    }

    public func status() async throws -> [CircuitStatus] {
        let manager = self.manager
        return try await manager.loop.submit { manager.status() }.get()
    }

    public func shutdown() async {
        for channel in channels { try? await channel.close() }
        let manager = self.manager
        try? await manager.loop.submit { manager.closeAll() }.get()
        try? await group.shutdownGracefully()
    }
}
