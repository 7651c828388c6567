import Foundation
import Logging
import Metrics
import MontanaTransport
import MontanaWire
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// A node's T2 carrier (PROTOCOL.md 2.3): an HTTP/1.1 listener (TLS with `tls_cert`/`tls_key`,
/// else plain HTTP for a TLS-terminating CDN or reverse proxy in front) where only `GET <path>`
/// with a valid WebSocket upgrade becomes a carrier; its binary messages are the carrier's bytes
/// for `PrefaceAcceptHandler`, exactly like T0's. Every other request gets an ordinary page.
///
/// The client's address: through a proxy the socket's peer is the proxy, so a connection from a
/// `trusted_proxies` address is admitted under the last `X-Forwarded-For` entry (or
/// `X-Real-IP`), and one without a usable header as the unknown source (never a direct
/// session); from any other peer, the socket's peer.
final class WebSocketListener: Sendable {
    let settings: WebSocketSettings
    let logger: Logger
    private let listener = NIOLockedValueBox<(any Channel)?>(nil)
    private let counts = NIOLockedValueBox<(carriers: Int, refused: Int)>((0, 0))
    private let published = NIOLockedValueBox<Endpoint?>(nil)
    private let accepted = Counter(label: "montana_carrier_connections_total", dimensions: [("profile", "t2")])

    init(settings: WebSocketSettings, logger: Logger) {
        self.settings = settings
        self.logger = logger
    }

    /// The TLS context for `tls_cert`/`tls_key`; errors name the config key.
    static func tlsContext(_ settings: WebSocketSettings) throws -> NIOSSLContext? {
        guard let certPath = settings.tlsCert, let keyPath = settings.tlsKey else { return nil }
        do {
            let chain = try NIOSSLCertificate.fromPEMFile(certPath).map { NIOSSLCertificateSource.certificate($0) }
            let key = try NIOSSLPrivateKey(file: keyPath, format: .pem)
            var config = TLSConfiguration.makeServerConfiguration(certificateChain: chain, privateKey: .privateKey(key))
            config.applicationProtocols = ["http/1.1"]
            return try NIOSSLContext(configuration: config)
        } catch {
            throw ConfigurationError.invalidValue(file: settings.configKey, key: "tls_cert/tls_key", problem: "cannot load \(certPath) / \(keyPath): \(error)")
        }
    }

    /// The client's address for a carrier from `peer` with request `head` (nil remote: the
    /// socket's peer; `viaProxy`: the peer is a trusted proxy).
    static func clientAddress(peer: SocketAddress?, head: HTTPRequestHead, trusted: [String]) -> (remote: SocketAddress?, viaProxy: Bool) {
        guard let ip = peer?.ipAddress, trusted.contains(where: { normalized($0) == normalized(ip) }) else { return (nil, false) }
        let forwarded = head.headers["X-Forwarded-For"].last.flatMap { $0.split(separator: ",").last }
            .map { $0.trimmingCharacters(in: .whitespaces) }
        for candidate in [forwarded, head.headers["X-Real-IP"].first?.trimmingCharacters(in: .whitespaces)] {
            if let candidate, candidate.utf8.count <= 64, let address = try? SocketAddress(ipAddress: candidate, port: 0) {
                return (address, true)
            }
        }
        return (nil, true)
    }

    private static func normalized(_ ip: String) -> String {
        ip.hasPrefix("::ffff:") ? String(ip.dropFirst(7)) : ip
    }

    /// Binds the listener; returns the endpoint to publish (profile 2, host/port the clients
    /// dial, params path/host/sni).
    func start(group: any EventLoopGroup, defaultHost: String,
               accept: @escaping @Sendable (SocketAddress?, Bool) -> PrefaceAcceptHandler) async throws -> Endpoint {
        let tls = try Self.tlsContext(settings)
        let settings = self.settings, counts = self.counts, accepted = self.accepted
        let server = try await ServerBootstrap.carrierListener(group: group)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try WebSocketCarrierServer.configure(channel, path: settings.path, tls: tls, onRefused: {
                        counts.withLockedValue { $0.refused += 1 }
                    }) { channel, head in
                        let (remote, viaProxy) = Self.clientAddress(peer: channel.remoteAddress, head: head, trusted: settings.trustedProxies)
                        counts.withLockedValue { $0.carriers += 1 }
                        accepted.increment()
                        try channel.pipeline.syncOperations.addHandler(accept(remote, viaProxy))
                    }
                }
            }
            .bind(host: settings.listen.host, port: settings.listen.port)
            .get()
        listener.withLockedValue { $0 = server }
        let host = settings.publicHost ?? defaultHost
        let hostHeader = settings.hostHeader ?? host
        var params = ["path": settings.path, "host": hostHeader]
        params["sni"] = settings.sni ?? hostHeader
        let boundPort = server.localAddress?.port ?? settings.listen.port
        // Without public_port and with the node's own TLS, clients dial the listener itself.
        let port = settings.tlsCert != nil && settings.publicHost == nil ? boundPort : settings.publicPort
        guard let port16 = UInt16(exactly: port) else { throw ConfigurationError.invalidValue(file: settings.configKey, key: "public_port", problem: "\(port) is not a port") }
        let endpoint = Endpoint(profile: CarrierProfile.t2.rawValue, host: host, port: port16, params: CarrierEndpoint.encodeParams(params))
        published.withLockedValue { $0 = endpoint }
        logger.info("T2 (WebSocket) carrier up", metadata: ["listen": "\(settings.listen.host):\(boundPort)", "tls": "\(tls != nil ? "node" : "proxy")"])
        return endpoint
    }

    var boundPort: Int? { listener.withLockedValue { $0 }?.localAddress?.port }

    func stop() async {
        if let server = listener.withLockedValue({ $0 }) { try? await server.close() }
    }

    /// `/status` → `carriers.t2` (the secret path is not shown).
    func status() -> [String: any Sendable] {
        let c = counts.withLockedValue { $0 }
        var doc: [String: any Sendable] = ["connections": c.carriers, "refused": c.refused, "listen": settings.listen.description,
                                           "tls": settings.tlsCert != nil ? "node" : "proxy", "state": boundPort != nil ? "up" : "down"]
        if let e = published.withLockedValue({ $0 }) { doc["endpoint"] = "\(e.host):\(e.port)" }
        return doc
    }
}
