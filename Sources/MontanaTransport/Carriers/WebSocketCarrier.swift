import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import NIOWebSocket

/// T2 (PROTOCOL.md 2.3): the carrier's raw bytes as binary WebSocket messages (RFC 6455) over
/// HTTP/1.1 over TLS, upgraded on a secret path, so that a CDN or reverse proxy can sit between
/// client and member. Framing is NIOWebSocket's; this file holds the bounds and the handlers
/// that turn messages into the byte stream the preface and session layers read.
public enum WebSocketCarrier {
    /// Bytes of HTTP before the upgrade (the request head): more closes the connection.
    public static let maxHeadBytes = 8 * 1024
    /// From accept (or connect) to a finished upgrade: longer closes the connection.
    public static let upgradeTimeout: TimeAmount = .seconds(10)
    /// Largest WebSocket frame accepted and written; larger writes are split into several
    /// binary messages (each message is a slice of the byte stream; boundaries carry no meaning).
    public static let maxMessageBytes = 64 * 1024
    /// A ping after this long without a frame written keeps CDNs (which cut idle WebSockets at
    /// about 100 s) from closing the carrier.
    public static let pingInterval: TimeAmount = .seconds(30)
    /// The secret path: at least this many characters of `[A-Za-z0-9_-]` after the leading "/".
    public static let minPathSecret = 16

    /// A path `/` + ≥ 16 url-safe characters (more segments allowed); nil when fine, else why not.
    public static func pathProblem(_ path: String) -> String? {
        guard path.hasPrefix("/") else { return "must start with /" }
        guard path.utf8.count <= 200 else { return "is longer than 200 bytes" }
        let body = path.utf8.dropFirst()
        guard body.allSatisfy({ isURLSafe($0) || $0 == 0x2f }) else { return "may hold only A-Z a-z 0-9 _ - and /" }
        guard body.filter(isURLSafe).count >= minPathSecret else {
            return "needs at least \(minPathSecret) random url-safe characters, e.g. \"\(randomPath())\""
        }
        return nil
    }

    /// A fresh secret path: "/" + 24 url-safe random characters (144 bits).
    public static func randomPath() -> String {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
        var rng = SystemRandomNumberGenerator()
        return "/" + String((0..<24).map { _ in alphabet[Int(rng.next(upperBound: UInt64(alphabet.count)))] })
    }

    static func isURLSafe(_ b: UInt8) -> Bool {
        (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a) || b == 0x5f || b == 0x2d
    }

    /// The page every request other than the upgrade gets for `/` (no software name anywhere).
    static let page = "<!DOCTYPE html>\n<html><head><title>Welcome</title></head><body><h1>It works</h1><p>This site is up.</p></body></html>\n"
}

/// Binary WebSocket messages in, the carrier's bytes out, and back: sits at the end of the
/// upgraded pipeline, before the preface/session handlers. Text frames and continuation frames
/// carry bytes too (a peer may fragment); pings are answered; a close frame or a protocol error
/// closes the channel. Writes larger than `maxMessageBytes` go out as several messages. A ping
/// goes out after `pingInterval` without any frame written.
public final class WebSocketBridgeHandler: ChannelDuplexHandler, RemovableChannelHandler {
    public typealias InboundIn = WebSocketFrame
    public typealias InboundOut = ByteBuffer
    public typealias OutboundIn = ByteBuffer
    public typealias OutboundOut = WebSocketFrame

    private let isClient: Bool
    private let maxMessage: Int
    private let pingInterval: TimeAmount
    private var wroteSincePing = false
    private var pinger: Scheduled<Void>?
    private var closing = false
    private var delivered = false

    public init(isClient: Bool, maxMessage: Int = WebSocketCarrier.maxMessageBytes,
                pingInterval: TimeAmount = WebSocketCarrier.pingInterval) {
        self.isClient = isClient
        self.maxMessage = maxMessage
        self.pingInterval = pingInterval
    }

    public func handlerAdded(context: ChannelHandlerContext) {
        schedulePing(context: context)
    }

    private func schedulePing(context: ChannelHandlerContext) {
        pinger = context.eventLoop.assumeIsolated().scheduleTask(in: pingInterval) { [weak self] in
            guard let self, !self.closing, self.pinger != nil else { return }
            if !self.wroteSincePing {
                self.send(context: context, opcode: .ping, data: context.channel.allocator.buffer(capacity: 0), promise: nil)
                context.flush()
            }
            self.wroteSincePing = false
            self.schedulePing(context: context)
        }
    }

    public func handlerRemoved(context: ChannelHandlerContext) {
        pinger?.cancel()
        pinger = nil
    }

    public func channelInactive(context: ChannelHandlerContext) {
        pinger?.cancel()
        pinger = nil
        context.fireChannelInactive()
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        switch frame.opcode {
        case .binary, .text, .continuation:
            let bytes = frame.unmaskedData
            if bytes.readableBytes > 0 {
                delivered = true
                context.fireChannelRead(wrapInboundOut(bytes))
            }
        case .ping:
            guard !closing else { return }
            send(context: context, opcode: .pong, data: frame.unmaskedData, promise: nil)
            context.flush()
        case .pong:
            break
        case .connectionClose:
            closing = true
            context.close(promise: nil)
        default:
            closing = true
            context.close(promise: nil)
        }
    }

    /// A read that ended inside a frame (or with only control frames) gave the handlers above
    /// nothing, so they will not ask for more: with autoRead off, ask for them.
    public func channelReadComplete(context: ChannelHandlerContext) {
        let gaveNothing = !delivered
        delivered = false
        context.fireChannelReadComplete()
        if gaveNothing, context.channel.isActive { context.read() }
    }

    public func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        var bytes = unwrapOutboundIn(data)
        wroteSincePing = true
        guard bytes.readableBytes > maxMessage else {
            send(context: context, opcode: .binary, data: bytes, promise: promise)
            return
        }
        while bytes.readableBytes > maxMessage, let slice = bytes.readSlice(length: maxMessage) {
            send(context: context, opcode: .binary, data: slice, promise: nil)
        }
        send(context: context, opcode: .binary, data: bytes, promise: promise)
    }

    private func send(context: ChannelHandlerContext, opcode: WebSocketOpcode, data: ByteBuffer, promise: EventLoopPromise<Void>?) {
        let key: WebSocketMaskingKey? = isClient ? .random() : nil
        context.write(wrapOutboundOut(WebSocketFrame(fin: true, opcode: opcode, maskKey: key, data: data)), promise: promise)
    }
}

/// Before the upgrade: counts the bytes of HTTP the peer sends (more than `maxHeadBytes`
/// closes), closes after `upgradeTimeout`, and (on channels with autoRead off) keeps reading.
/// Removed once the upgrade is done.
public final class UpgradeGuardHandler: ChannelInboundHandler, RemovableChannelHandler {
    public typealias InboundIn = ByteBuffer
    public typealias InboundOut = ByteBuffer

    private let maxBytes: Int
    private let timeout: TimeAmount
    private let onTimeout: (@Sendable () -> Void)?
    private var seen = 0
    private var timer: Scheduled<Void>?

    public init(maxBytes: Int = WebSocketCarrier.maxHeadBytes, timeout: TimeAmount = WebSocketCarrier.upgradeTimeout,
                onTimeout: (@Sendable () -> Void)? = nil) {
        self.maxBytes = maxBytes
        self.timeout = timeout
        self.onTimeout = onTimeout
    }

    public func handlerAdded(context: ChannelHandlerContext) {
        let onTimeout = self.onTimeout
        timer = context.eventLoop.assumeIsolated().scheduleTask(in: timeout) {
            onTimeout?()
            context.close(promise: nil)
        }
        if context.channel.isActive { context.read() }
    }

    public func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
    }

    public func channelActive(context: ChannelHandlerContext) {
        context.fireChannelActive()
        context.read()
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let bytes = unwrapInboundIn(data)
        seen += bytes.readableBytes
        guard seen <= maxBytes else {
            context.close(promise: nil)
            return
        }
        context.fireChannelRead(data)
    }

    public func channelReadComplete(context: ChannelHandlerContext) {
        context.fireChannelReadComplete()
        context.read()
    }
}

/// Every request that is not the upgrade on the secret path: `/` gets an ordinary page, the
/// rest 404; no `Server` header; the connection closes after the answer.
final class OrdinaryPageHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart
    private var uri: String?
    private var method: HTTPMethod = .GET

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            uri = head.uri
            method = head.method
        case .body:
            break
        case .end:
            let path = uri.map { String($0.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first ?? "") }
            let found = path == "/" || path == "/index.html"
            var body = context.channel.allocator.buffer(capacity: 256)
            body.writeString(found ? WebSocketCarrier.page : "<!DOCTYPE html>\n<html><body><h1>Not Found</h1></body></html>\n")
            var headers = HTTPHeaders()
            headers.add(name: "Content-Type", value: "text/html; charset=utf-8")
            headers.add(name: "Content-Length", value: "\(body.readableBytes)")
            headers.add(name: "Connection", value: "close")
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: found ? .ok : .notFound, headers: headers))), promise: nil)
            if method != .HEAD { context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil) }
            context.writeAndFlush(wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in context.close(promise: nil) }
        }
    }
}

/// T2 on the accepting side: sets up a child channel (TLS when `tls` is given, else plain HTTP
/// for a TLS-terminating proxy in front) so that only `GET <path>` with a valid RFC 6455
/// upgrade becomes a carrier; `onCarrier` then adds the caller's handlers (the preface accept
/// handler) at the end of the upgraded pipeline, given the request head (for X-Forwarded-For).
public enum WebSocketCarrierServer {
    public static func configure(_ channel: any Channel, path: String, tls: NIOSSLContext?,
                                 maxMessage: Int = WebSocketCarrier.maxMessageBytes,
                                 maxHeadBytes: Int = WebSocketCarrier.maxHeadBytes,
                                 upgradeTimeout: TimeAmount = WebSocketCarrier.upgradeTimeout,
                                 pingInterval: TimeAmount = WebSocketCarrier.pingInterval,
                                 onRefused: (@Sendable () -> Void)? = nil,
                                 onCarrier: @escaping @Sendable (any Channel, HTTPRequestHead) throws -> Void) throws {
        let sync = channel.pipeline.syncOperations
        if let tls { try sync.addHandler(NIOSSLServerHandler(context: tls)) }
        let guardHandler = UpgradeGuardHandler(maxBytes: maxHeadBytes, timeout: upgradeTimeout, onTimeout: onRefused)
        try sync.addHandler(guardHandler, name: "t2-guard")
        let upgrader = NIOWebSocketServerUpgrader(maxFrameSize: maxMessage, automaticErrorHandling: true, shouldUpgrade: { channel, head in
            let target = head.uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init)
            guard head.method == .GET, target == path else {
                onRefused?()
                return channel.eventLoop.makeSucceededFuture(nil)
            }
            return channel.eventLoop.makeSucceededFuture(HTTPHeaders())
        }, upgradePipelineHandler: { channel, head in
            channel.eventLoop.makeCompletedFuture {
                let sync = channel.pipeline.syncOperations
                try sync.addHandler(WebSocketBridgeHandler(isClient: false, maxMessage: maxMessage, pingInterval: pingInterval))
                try onCarrier(channel, head)
            }.flatMap {
                channel.pipeline.removeHandler(name: "t2-page")
            }.flatMap {
                channel.pipeline.removeHandler(name: "t2-guard")
            }.map {
                // A read the HTTP handlers held back while they were removed is lost: ask again
                // (channels here run with autoRead off; one more read is harmless).
                channel.read()
            }
        })
        try sync.configureHTTPServerPipeline(withServerUpgrade: (upgraders: [upgrader], completionHandler: { _ in }))
        try sync.addHandler(OrdinaryPageHandler(), name: "t2-page")
    }
}

/// T2 on the dialling side: TCP to the endpoint (the CDN's host:port), TLS with SNI = `sni`
/// and certificate verification against the system trust store (or `caFile`), then
/// `GET <path>` with `Host: <host>` upgraded to a WebSocket; the caller's handlers are added
/// once the upgrade is done, so the preface is the first byte inside the carrier.
public struct WebSocketConnector: CarrierConnector {
    public var profile: CarrierProfile { .t2 }
    private let tls: NIOSSLContext
    private let pingInterval: TimeAmount
    private let maxMessage: Int

    /// `caFile`: PEM roots to trust instead of the system's (tests, self-signed deployments).
    /// Verification is never off.
    public init(caFile: String? = nil, pingInterval: TimeAmount = WebSocketCarrier.pingInterval,
                maxMessage: Int = WebSocketCarrier.maxMessageBytes) throws {
        var config = TLSConfiguration.makeClientConfiguration()
        config.certificateVerification = .fullVerification
        if let caFile { config.trustRoots = .file(caFile) }
        config.applicationProtocols = ["http/1.1"]
        tls = try NIOSSLContext(configuration: config)
        self.pingInterval = pingInterval
        self.maxMessage = maxMessage
    }

    /// What T2 needs from an endpoint: `path` (the secret path), `host` (HTTP Host; default the
    /// endpoint host), `sni` (default `host`).
    public static func arguments(_ endpoint: CarrierEndpoint) throws(CarrierError) -> (path: String, host: String, sni: String) {
        guard let path = endpoint.params["path"], WebSocketCarrier.pathProblem(path) == nil else {
            throw .missingParams("the T2 endpoint \(endpoint) has no valid secret path in its params")
        }
        let host = endpoint.params["host"] ?? endpoint.host
        let sni = endpoint.params["sni"] ?? host
        guard !host.isEmpty, host.utf8.count <= 253, !sni.isEmpty, sni.utf8.count <= 253 else {
            throw .missingParams("the T2 endpoint \(endpoint) has an empty or overlong host or sni")
        }
        return (path, host, sni)
    }

    public func connect(on loop: any EventLoop, endpoint: CarrierEndpoint, connectTimeout: TimeAmount,
                        localAddress: SocketAddress?,
                        initializer: @escaping @Sendable (any Channel) throws -> Void) -> EventLoopFuture<any Channel> {
        let args: (path: String, host: String, sni: String)
        do { args = try Self.arguments(endpoint) } catch { return loop.makeFailedFuture(error) }
        let ready = loop.makePromise(of: Void.self)
        let tls = self.tls, maxMessage = self.maxMessage, pingInterval = self.pingInterval
        return ClientBootstrap.carrierDial(on: loop, localAddress: localAddress, connectTimeout: connectTimeout)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    let sniName = (try? SocketAddress(ipAddress: args.sni, port: 0)) == nil ? args.sni : nil
                    try sync.addHandler(NIOSSLClientHandler(context: tls, serverHostname: sniName))
                    let requester = UpgradeRequestHandler(path: args.path, host: args.host, timeout: connectTimeout, ready: ready)
                    let upgrader = NIOWebSocketClientUpgrader(maxFrameSize: maxMessage, automaticErrorHandling: true) { channel, _ in
                        channel.eventLoop.makeCompletedFuture {
                            try channel.pipeline.syncOperations.addHandler(WebSocketBridgeHandler(isClient: true, maxMessage: maxMessage,
                                                                                                  pingInterval: pingInterval))
                            try initializer(channel)
                        }.flatMap {
                            channel.pipeline.removeHandler(name: "t2-upgrade-request")
                        }.always { result in
                            switch result {
                            case .success: ready.succeed(())
                            case .failure(let error): ready.fail(error)
                            }
                        }
                    }
                    try sync.addHTTPClientHandlers(withClientUpgrade: (upgraders: [upgrader], completionHandler: { _ in }))
                    try sync.addHandler(requester, name: "t2-upgrade-request")
                }
            }
            .connect(host: endpoint.host, port: endpoint.port)
            .awaiting(ready).map { $0.0 }
    }
}

/// Sends the upgrade request once the channel is active (NIOHTTPClientUpgradeHandler adds the
/// WebSocket headers) and fails `ready` on a refusal, an error, a close or the timeout.
final class UpgradeRequestHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundOut = HTTPClientRequestPart
    private let path: String
    private let host: String
    private let timeout: TimeAmount
    private let ready: EventLoopPromise<Void>
    private var timer: Scheduled<Void>?

    init(path: String, host: String, timeout: TimeAmount, ready: EventLoopPromise<Void>) {
        self.path = path
        self.host = host
        self.timeout = timeout
        self.ready = ready
    }

    func handlerAdded(context: ChannelHandlerContext) {
        let ready = self.ready
        timer = context.eventLoop.assumeIsolated().scheduleTask(in: timeout) {
            ready.fail(CarrierError.timedOut("the T2 WebSocket upgrade"))
            context.close(promise: nil)
        }
        if context.channel.isActive { sendRequest(context: context) }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
    }

    func channelActive(context: ChannelHandlerContext) {
        sendRequest(context: context)
        context.fireChannelActive()
    }

    private var sent = false
    private func sendRequest(context: ChannelHandlerContext) {
        guard !sent else { return }
        sent = true
        var headers = HTTPHeaders()
        headers.add(name: "Host", value: host)
        headers.add(name: "User-Agent", value: "Mozilla/5.0")
        headers.add(name: "Content-Length", value: "0")
        context.write(wrapOutboundOut(.head(HTTPRequestHead(version: .http1_1, method: .GET, uri: path, headers: headers))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .head(let head) = unwrapInboundIn(data) {
            ready.fail(CarrierError.refused("the T2 server answered \(head.status.code) instead of upgrading"))
            context.close(promise: nil)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        ready.fail(error)
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        ready.fail(CarrierError.timedOut("the T2 WebSocket upgrade (connection closed)"))
        context.fireChannelInactive()
    }
}
