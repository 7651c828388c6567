import NIOCore
import NIOPosix

/// The node's admin API on a (normally loopback) address: `GET /metrics` (Prometheus text),
/// `GET /status` (JSON from the caller's closure), `GET /healthz` (`ok`), and further JSON documents by path (`/directory`).
public actor AdminServer {
    /// Builds the `/status` document. It runs on an event loop for every request, so it must be
    /// quick and must not block; values must be JSON-compatible (strings, numbers, booleans,
    /// arrays, dictionaries with string keys).
    public typealias StatusProvider = @Sendable () -> [String: any Sendable]

    private let address: HostPort
    private let routes: AdminRoutes
    private let group: any EventLoopGroup
    private var channel: (any Channel)?

    /// `address` may use port 0 to let the system choose; `start()` returns the bound port.
    public init(address: HostPort, metrics: MontanaMetrics = .shared, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
                status: @escaping StatusProvider, documents: [String: StatusProvider] = [:]) {
        self.address = address
        self.routes = AdminRoutes(metrics: metrics, status: status, documents: documents)
        self.group = group
        self.channel = nil
    }

    /// Binds and starts serving; returns the bound port.
    @discardableResult
    public func start() async throws -> Int {
        if let channel, let port = channel.localAddress?.port { return port }
        let routes = routes
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 64)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { child in
                child.eventLoop.makeCompletedFuture {
                    try child.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try child.pipeline.syncOperations.addHandler(AdminHTTPHandler(routes: routes))
                }
            }
            .bind(host: address.host, port: address.port)
            .get()
        self.channel = channel
        guard let port = channel.localAddress?.port else { throw AdminServerError.noLocalAddress }
        return port
    }

    /// Stops accepting connections; connections in progress finish their current response.
    public func stop() async throws {
        guard let channel else { return }
        self.channel = nil
        try await channel.close()
    }

    /// The bound port while running.
    public var port: Int? { channel?.localAddress?.port }
}

public enum AdminServerError: Error, Equatable, Sendable, CustomStringConvertible {
    case noLocalAddress

    public var description: String { "admin server: the listening socket has no local address" }
}
