import Foundation
import MontanaCrypto
import MontanaWire
import NIOCore
import NIOPosix

/// T1 on the dialling side (PROTOCOL.md 2.2): TCP to the front, the Chrome-shaped ClientHello
/// with the token, the cover's real handshake completed through the front (which proves itself
/// with its tag), the InnerHello/InnerReply switch, then the carrier's bytes in T1 frames. The
/// caller's handlers are added only once the switch is done, so the preface is the first byte
/// inside the carrier. The whole exchange is bounded by the dial's connect timeout.
///
/// Endpoint params (the member's signed record): `pbk` = hex of the front's 32-byte T1 X25519
/// public key, `sid` = hex short id (≤ 8 bytes), `sni` = the cover name to send. A universal-key
/// front publishes `mode=universal` and no `pbk`: the key (and the defaults for `sid` and `sni`)
/// come from the alliance's `universal_t1` in the client's subscription.
public struct T1Connector: CarrierConnector {
    /// The alliance's universal T1 parameters (alliance.json `universal_t1`).
    public struct Universal: Sendable, Equatable {
        public let publicKey: [UInt8]
        public let shortID: [UInt8]
        public let serverName: String
        public init(publicKey: [UInt8], shortID: [UInt8], serverName: String) {
            self.publicKey = publicKey
            self.shortID = shortID
            self.serverName = serverName
        }
    }

    public var profile: CarrierProfile { .t1 }
    private let psk: [UInt8]
    private let universal: Universal?
    private let clock: @Sendable () -> UInt64

    /// `psk`: the alliance id (PROTOCOL.md 2.2: binds tokens to this alliance); `universal`: the
    /// alliance's universal T1 parameters, when the client has a subscription.
    public init(psk: [UInt8], universal: Universal? = nil, clock: @escaping @Sendable () -> UInt64 = { UInt64(Date().timeIntervalSince1970) }) {
        self.psk = psk
        self.universal = universal
        self.clock = clock
    }

    public static func arguments(_ endpoint: CarrierEndpoint, universal: Universal? = nil) throws(CarrierError)
        -> (key: [UInt8], shortID: [UInt8], sni: String) {
        let key: [UInt8]
        let isUniversal = endpoint.params["mode"] == "universal" || endpoint.params["pbk"] == nil
        if isUniversal {
            guard let universal, universal.publicKey.count == 32 else {
                throw .missingParams("the T1 endpoint \(endpoint) has no pbk (the front's T1 public key) and this client has no alliance universal T1 key (from a subscription) to use instead")
            }
            key = universal.publicKey
        } else {
            guard let pbk = endpoint.params["pbk"], let k = hexBytes(pbk), k.count == 32 else {
                throw .missingParams("the T1 endpoint \(endpoint) has no valid pbk (the front's T1 public key) in its params")
            }
            key = k
        }
        let sidText = endpoint.params["sid"]
        guard let sid = sidText != nil ? hexBytes(sidText!) : (isUniversal ? universal?.shortID : nil), sid.count <= T1Token.maxShortIDLength else {
            throw .missingParams("the T1 endpoint \(endpoint) has no valid sid (short id, hex of at most 8 bytes) in its params")
        }
        guard let sni = endpoint.params["sni"] ?? (isUniversal ? universal?.serverName : nil), !sni.isEmpty, sni.utf8.count <= 253,
              sni.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7f }) else {
            throw .missingParams("the T1 endpoint \(endpoint) has no valid sni (cover name) in its params")
        }
        return (key, sid, sni)
    }

    /// Hex of at most 64 bytes (record params are bounded text), nil otherwise.
    static func hexBytes(_ s: String) -> [UInt8]? {
        s.utf8.count <= 128 ? Hex.decode(s) : nil
    }

    public func connect(on loop: any EventLoop, endpoint: CarrierEndpoint, connectTimeout: TimeAmount,
                        localAddress: SocketAddress?,
                        initializer: @escaping @Sendable (any Channel) throws -> Void) -> EventLoopFuture<any Channel> {
        let handshake: T1ClientHandshake
        do {
            let args = try Self.arguments(endpoint, universal: universal)
            let now = clock()
            guard let seconds = UInt32(exactly: now) else { throw CarrierError.missingParams("the clock is outside the T1 token's range") }
            let hello = try T1Hello.make(serverName: args.sni, frontPublic: args.key, psk: psk, shortID: args.shortID, unixSeconds: seconds)
            handshake = T1ClientHandshake(hello: hello)
        } catch {
            return loop.makeFailedFuture(error)
        }
        let ready = loop.makePromise(of: Void.self)
        let description = endpoint.description
        return ClientBootstrap.carrierDial(on: loop, localAddress: localAddress, connectTimeout: connectTimeout)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(
                        T1ClientCarrierHandler(handshake: handshake, endpoint: description, timeout: connectTimeout,
                                               ready: ready, initializer: initializer))
                }
            }
            .connect(host: endpoint.host, port: endpoint.port)
            .awaiting(ready).map { $0.0 }
    }
}

/// The client's T1 handler: runs `T1ClientHandshake`, then seals writes into T1 frames and opens
/// the front's frames into the carrier's bytes.
final class T1ClientCarrierHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private var handshake: T1ClientHandshake
    private var frames: T1FrameState?
    private let endpoint: String
    private let timeout: TimeAmount
    private let ready: EventLoopPromise<Void>
    private let initializer: @Sendable (any Channel) throws -> Void
    private var timer: Scheduled<Void>?
    private var sent = false
    private var delivered = false
    private var failed = false

    init(handshake: T1ClientHandshake, endpoint: String, timeout: TimeAmount, ready: EventLoopPromise<Void>,
         initializer: @escaping @Sendable (any Channel) throws -> Void) {
        self.handshake = handshake
        self.endpoint = endpoint
        self.timeout = timeout
        self.ready = ready
        self.initializer = initializer
    }

    func handlerAdded(context: ChannelHandlerContext) {
        let ready = self.ready, endpoint = self.endpoint
        timer = context.eventLoop.assumeIsolated().scheduleTask(in: timeout) {
            ready.fail(CarrierError.timedOut("the T1 handshake with \(endpoint)"))
            context.close(promise: nil)
        }
        if context.channel.isActive { sendHello(context: context) }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
    }

    func channelActive(context: ChannelHandlerContext) {
        sendHello(context: context)
        context.fireChannelActive()
    }

    private func sendHello(context: ChannelHandlerContext) {
        guard !sent else { return }
        sent = true
        write(context, handshake.firstFlight)
        context.flush()
        context.read()
    }

    private func write(_ context: ChannelHandlerContext, _ bytes: [UInt8], promise: EventLoopPromise<Void>? = nil) {
        var b = context.channel.allocator.buffer(capacity: bytes.count)
        b.writeBytes(bytes)
        context.write(wrapOutboundOut(b), promise: promise)
    }

    private func fail(_ context: ChannelHandlerContext, _ error: any Error) {
        guard !failed else { return }
        failed = true
        timer?.cancel()
        ready.fail(error)
        context.close(promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = unwrapInboundIn(data)
        let bytes = buffer.readBytes(length: buffer.readableBytes) ?? []
        if var f = frames {
            do {
                let plain = try f.open(bytes)
                frames = f
                deliver(context, plain)
            } catch {
                frames = f
                context.fireErrorCaught(CarrierError.refused("a T1 frame from \(endpoint) did not open"))
                context.close(promise: nil)
            }
            return
        }
        guard !failed else { return }
        do {
            let out = try handshake.receive(bytes)
            if !out.isEmpty {
                write(context, out)
                context.flush()
            }
            guard handshake.isEstablished, let f = handshake.frames else { return }
            frames = f
            timer?.cancel()
            try initializer(context.channel)
            ready.succeed(())
            deliver(context, handshake.earlyPlaintext)
        } catch let reason as T1ClientHandshake.FailureReason {
            fail(context, CarrierError.refused("T1 at \(endpoint): \(reason)"))
        } catch {
            fail(context, error)
        }
    }

    private func deliver(_ context: ChannelHandlerContext, _ plain: [UInt8]) {
        guard !plain.isEmpty else { return }
        delivered = true
        var b = context.channel.allocator.buffer(capacity: plain.count)
        b.writeBytes(plain)
        context.fireChannelRead(wrapInboundOut(b))
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        let gaveNothing = !delivered
        delivered = false
        if frames != nil { context.fireChannelReadComplete() }
        // Handshake records, partial frames or the cover's tickets gave the handlers above
        // nothing: with autoRead off they will not ask for more, so ask here.
        if gaveNothing, context.channel.isActive { context.read() }
    }

    func channelInactive(context: ChannelHandlerContext) {
        if frames == nil, !failed {
            failed = true
            timer?.cancel()
            ready.fail(CarrierError.refused("T1 at \(endpoint): the connection closed during the handshake"))
        }
        context.fireChannelInactive()
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        guard var f = frames else {
            promise?.fail(CarrierError.refused("T1 at \(endpoint): write before the handshake finished"))
            return
        }
        let buffer = unwrapOutboundIn(data)
        var out = context.channel.allocator.buffer(capacity: buffer.readableBytes + (buffer.readableBytes / T1FrameState.maxPlaintext + 1) * 22)
        do {
            try f.seal(buffer, into: &out)
            frames = f
            context.write(wrapOutboundOut(out), promise: promise)
        } catch {
            promise?.fail(error)
            context.close(promise: nil)
        }
    }
}
