import Logging
import MontanaDirectory
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix

/// Serves a subscription document over plain HTTP (PROTOCOL.md section 10), for
/// `montana subscription serve`: `GET /`, `GET /sub` and the document's own update path answer
/// 200 with the file and the `profile-update-interval`, `profile-title`, `subscription-userinfo`,
/// `Cache-Control: no-store` and `Content-Disposition` headers. Other paths get 404, other methods
/// 405, request heads over 16 KiB 431; a connection without a complete request for 10 s is closed;
/// at most 512 connections are open at once. The file is re-read on every request.
///
/// HTTPS is for a reverse proxy in front of it (the document is public, unless it carries a bearer
/// seed: then anyone who can reach the server gets the shared account).
public actor SubscriptionServer {
    /// Request line and headers: clients send a few hundred bytes.
    public static let maxRequestHeadBytes = 16 * 1024
    public static let defaultIdleTimeout: TimeAmount = .seconds(10)
    /// Open connections at once; more are closed at accept. Each costs one socket and a few KB.
    public static let maxConnections = 512

    private let listen: HostPort
    private let group: any EventLoopGroup
    private let idleTimeout: TimeAmount
    private let source: SubscriptionSource
    private let connections = NIOLockedValueBox<[ObjectIdentifier: any Channel]>([:])
    private var channel: (any Channel)?

    /// `listen` may use port 0 (the system chooses; `start()` returns the port). `idleTimeout`
    /// exists for tests.
    public init(file: String, listen: HostPort, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
                idleTimeout: TimeAmount = SubscriptionServer.defaultIdleTimeout,
                logger: Logger = Logger(label: "montana.subscription")) {
        self.listen = listen
        self.group = group
        self.idleTimeout = idleTimeout
        self.source = SubscriptionSource(path: file, logger: logger)
    }

    /// Checks the file (it must decode now), binds, and returns the bound port.
    @discardableResult
    public func start() async throws -> Int {
        if let channel, let port = channel.localAddress?.port { return port }
        let source = self.source
        _ = try await NIOThreadPool.singleton.runIfActive { try source.load() }
        let idleTimeout = self.idleTimeout
        let connections = self.connections
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 128)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { child in
                let id = ObjectIdentifier(child)
                let count = connections.withLockedValue { open -> Int in
                    open[id] = child
                    return open.count
                }
                child.closeFuture.whenComplete { _ in _ = connections.withLockedValue { $0.removeValue(forKey: id) } }
                guard count <= Self.maxConnections else { return child.close() }
                return child.eventLoop.makeCompletedFuture {
                    try child.pipeline.syncOperations.addHandler(RequestHeadLimitHandler(limit: Self.maxRequestHeadBytes))
                    try child.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try child.pipeline.syncOperations.addHandler(SubscriptionHTTPHandler(source: source, idleTimeout: idleTimeout))
                }
            }
            .bind(host: listen.host, port: listen.port)
            .get()
        self.channel = channel
        guard let port = channel.localAddress?.port else { throw SubscriptionServerError.noLocalAddress }
        return port
    }

    /// Stops listening and closes every open connection.
    public func stop() async {
        guard let channel else { return }
        self.channel = nil
        try? await channel.close()
        for child in connections.withLockedValue({ Array($0.values) }) {
            try? await child.close()
        }
    }

    /// The bound port while running.
    public var port: Int? { channel?.localAddress?.port }
}

public enum SubscriptionServerError: Error, Equatable, Sendable, CustomStringConvertible {
    case noLocalAddress

    public var description: String { "subscription server: the listening socket has no local address" }
}
