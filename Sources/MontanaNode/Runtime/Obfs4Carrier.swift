import Foundation
import Logging
import Metrics
import MontanaCrypto
import MontanaTransport
import MontanaWire
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// A node's T3 carrier (PROTOCOL.md 2.4): an internal Extended ORPort listener on loopback (a
/// random port, SafeCookie with a fresh cookie in the state directory every start), and
/// `obfs4proxy` in managed server mode in front of it, supervised by `ManagedTransport`.
/// Connections obfs4proxy hands over are ordinary carrier input (`PrefaceAcceptHandler`) under
/// the client's real address from USERADDR, so admission budgets and reachability votes see
/// the client, not 127.0.0.1; one without a USERADDR is admitted as the unknown source
/// 0.0.0.0 (its own group under the per-source limits) and never counts as a direct session.
final class Obfs4Carrier: Sendable {
    let settings: Obfs4Settings
    let logger: Logger
    private let listener = NIOLockedValueBox<(any Channel)?>(nil)
    private let counts = NIOLockedValueBox<(accepted: Int, refused: Int)>((0, 0))
    private let accepted = Counter(label: "montana_carrier_connections_total", dimensions: [("profile", "t3")])
    private let restartsCounter = Counter(label: "montana_pt_restarts_total", dimensions: [("transport", "obfs4")])

    /// The cookie file name in the state directory (ext-orport-spec 4.2.1.1).
    static let cookieFile = "extended_orport_auth_cookie"

    init(settings: Obfs4Settings, logger: Logger) {
        self.settings = settings
        self.logger = logger
    }

    private let running = NIOLockedValueBox<ManagedTransport?>(nil)
    /// What the record publishes (the bridge cert is public: every client of the record has it).
    private let published = NIOLockedValueBox<Endpoint?>(nil)

    /// Binds the internal listener, starts obfs4proxy and waits for its SMETHOD. Returns the
    /// endpoint to publish (`publicHost` and the SMETHOD's port, `cert` and `iat-mode`).
    func start(group: any EventLoopGroup, publicHost: String,
               accept: @escaping @Sendable (SocketAddress?) -> PrefaceAcceptHandler) async throws -> Endpoint {
        guard ManagedTransport.locate(settings.binary) != nil else {
            throw ManagedTransportError.notInstalled(settings.configKey, settings.binary)
        }
        do {
            try FileManager.default.createDirectory(atPath: settings.stateDirectory, withIntermediateDirectories: true,
                                                    attributes: [.posixPermissions: 0o700])
            try FileManager.default.setAttributes([.posixPermissions: 0o700], ofItemAtPath: settings.stateDirectory)
        } catch {
            throw ManagedTransportError.stateDirectory(settings.configKey, settings.stateDirectory, "\(error)")
        }
        let cookiePath = (settings.stateDirectory as NSString).appendingPathComponent(Self.cookieFile)
        let cookie = try ExtORPortAuth.writeCookie(path: cookiePath)
        let counts = self.counts, accepted = self.accepted, logger = self.logger
        let server = try await ServerBootstrap.carrierListener(group: group)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ExtendedORPortHandler(cookie: cookie, onRefused: { why in
                        counts.withLockedValue { $0.refused += 1 }
                        logger.warning("refused a connection on the internal T3 port", metadata: ["reason": "\(why)"])
                    }) { channel, remote in
                        counts.withLockedValue { $0.accepted += 1 }
                        accepted.increment()
                        try channel.pipeline.syncOperations.addHandler(accept(remote))
                    })
                }
            }
            .bind(host: "127.0.0.1", port: 0)
            .get()
        listener.withLockedValue { $0 = server }
        guard let orPort = server.localAddress?.port else { throw ManagedTransportError.died(settings.configKey, "no internal port") }
        let transport = ManagedTransport(settings: .init(binary: settings.binary, stateDirectory: settings.stateDirectory,
                                                         mode: .server(bind: settings.listen.description, orPort: nil,
                                                                       extendedORPort: "127.0.0.1:\(orPort)", cookieFile: cookiePath,
                                                                       iatMode: settings.iatMode),
                                                         configKey: settings.configKey), logger: logger)
        let restarts = restartsCounter
        transport.onDied.withLockedValue { $0 = { _ in restarts.increment() } }
        running.withLockedValue { $0 = transport }
        let method = try await transport.ensureRunning(on: group.next()).get()
        guard let cert = method.args["cert"], !cert.isEmpty else {
            throw ManagedTransportError.protocolError(settings.configKey, "SMETHOD obfs4 without a cert in ARGS")
        }
        let iat = method.args["iat-mode"] ?? "\(settings.iatMode)"
        guard let port = UInt16(exactly: method.port) else { throw ManagedTransportError.protocolError(settings.configKey, "bad port") }
        let params = CarrierEndpoint.encodeParams(["cert": cert, "iat-mode": iat])
        published.withLockedValue { $0 = Endpoint(profile: CarrierProfile.t3.rawValue, host: publicHost, port: port, params: params) }
        logger.info("T3 (obfs4) carrier up", metadata: ["listen": "\(method.host):\(method.port)", "iat_mode": "\(iat)"])
        return Endpoint(profile: CarrierProfile.t3.rawValue, host: publicHost, port: port, params: params)
    }

    func stop() async {
        running.withLockedValue { $0 }?.stop()
        if let server = listener.withLockedValue({ $0 }) { try? await server.close() }
    }

    /// `/status` → `carriers.t3`.
    func status() -> [String: any Sendable] {
        var doc = running.withLockedValue { $0 }?.statusDocument() ?? ["state": "down", "restarts": 0]
        let c = counts.withLockedValue { $0 }
        doc["connections"] = c.accepted
        doc["refused"] = c.refused
        doc["listen"] = settings.listen.description
        if let e = published.withLockedValue({ $0 }) {
            doc["endpoint"] = "\(e.host):\(e.port)"
            doc["params"] = e.params ?? ""
        }
        return doc
    }
}
