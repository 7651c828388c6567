import NIOCore
import NIOPosix

/// T3 on the dialling side: a carrier through the local `obfs4proxy` managed client (started
/// on the first dial and supervised by `transport`). It connects to the proxy's SOCKS5 port,
/// passes the endpoint's `cert` and `iat-mode` as the PT arguments, asks it to CONNECT to the
/// member's T3 host:port, and then carries raw bytes. `localAddress` does not apply: the
/// connection to the member leaves from obfs4proxy.
public struct Obfs4Connector: CarrierConnector {
    public let transport: ManagedTransport
    public var profile: CarrierProfile { .t3 }

    public init(transport: ManagedTransport) {
        self.transport = transport
    }

    /// The PT arguments obfs4 needs from an endpoint: `cert` (base64, 70 characters) and
    /// `iat-mode` (0, 1 or 2; default 0).
    public static func arguments(_ endpoint: CarrierEndpoint) throws(CarrierError) -> [String: String] {
        guard let cert = endpoint.params["cert"], !cert.isEmpty, cert.utf8.count <= 128 else {
            throw .missingParams("the T3 endpoint \(endpoint) has no obfs4 cert in its params")
        }
        let iat = endpoint.params["iat-mode"] ?? "0"
        guard ["0", "1", "2"].contains(iat) else { throw .missingParams("the T3 endpoint \(endpoint) has iat-mode \(iat.prefix(8)); expected 0, 1 or 2") }
        return ["cert": cert, "iat-mode": iat]
    }

    public func connect(on loop: any EventLoop, endpoint: CarrierEndpoint, connectTimeout: TimeAmount,
                        localAddress: SocketAddress?,
                        initializer: @escaping @Sendable (any Channel) throws -> Void) -> EventLoopFuture<any Channel> {
        let args: [String: String]
        do { args = try Self.arguments(endpoint) } catch { return loop.makeFailedFuture(error) }
        let credentials = SOCKS5CarrierHandler.credentials(args)
        return transport.ensureRunning(on: loop).flatMapError { error in
            loop.makeFailedFuture(CarrierError.helperUnavailable("\(error)"))
        }.flatMap { method in
            let ready = loop.makePromise(of: Void.self)
            return ClientBootstrap.carrierDial(on: loop, localAddress: nil, connectTimeout: connectTimeout)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(
                            SOCKS5CarrierHandler(host: endpoint.host, port: endpoint.port, credentials: credentials,
                                                 timeout: connectTimeout, ready: ready))
                        try initializer(channel)
                    }
                }
                .connect(host: method.host, port: method.port)
                .awaiting(ready) { CarrierError.helperUnavailable("cannot reach the local obfs4proxy at \(method.host):\(method.port): \($0)") }
                .map { $0.0 }
        }
    }
}
