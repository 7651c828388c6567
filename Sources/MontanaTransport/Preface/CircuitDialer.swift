import MontanaCrypto
import MontanaWire
import NIOCore
import NIOPosix

/// Opens one hop of a circuit: a TCP (T0) connection, the preface sealed to the hop, and the
/// hop's 80-byte answer. `upper` may add handlers (e.g. the session initiator) *before* the
/// answer arrives, so their first bytes ride right behind the preface (0-RTT).
public enum CircuitDialer {
    /// `localAddress` binds the connection's local end first (e.g. a client's chosen source
    /// address, port 0); nil lets the OS choose. `carrier` opens another profile than T0
    /// (`host` and `port` are then unused: the dial's endpoint says where); nil is raw TCP.
    public static func connect(on loop: any EventLoop, host: String, port: Int, hopKEMPublicKey: [UInt8],
                               message: Preface.Message, timeout: TimeAmount = .seconds(10),
                               connectTimeout: TimeAmount? = nil,
                               localAddress: SocketAddress? = nil,
                               carrier: CarrierDial? = nil,
                               upper: (@Sendable (any Channel) throws -> Void)? = nil) -> EventLoopFuture<(any Channel, Preface.Message)> {
        let sealed: (bytes: [UInt8], keys: Preface.Keys)
        do {
            sealed = try Preface.seal(message, to: hopKEMPublicKey)
        } catch {
            return loop.makeFailedFuture(error)
        }
        let answered = loop.makePromise(of: Preface.Message.self)
        let kind = message.kind
        // The same pipeline on every carrier: the preface answer first, then the caller's handlers.
        let install: @Sendable (any Channel) throws -> Void = { channel in
            try channel.pipeline.syncOperations.addHandler(
                PrefaceAnswerHandler(keys: sealed.keys, kind: kind, preface: sealed.bytes, promise: answered, timeout: timeout))
            try upper?(channel)
        }
        let connected: EventLoopFuture<any Channel>
        if let carrier {
            connected = carrier.connector.connect(on: loop, endpoint: carrier.endpoint, connectTimeout: connectTimeout ?? timeout,
                                                  localAddress: localAddress, initializer: install)
        } else {
            connected = ClientBootstrap.carrierDial(on: loop, localAddress: localAddress, connectTimeout: connectTimeout ?? timeout)
                .channelInitializer { channel in channel.eventLoop.makeCompletedFuture { try install(channel) } }
                .connect(host: host, port: port)
        }
        return connected.awaiting(answered)
    }
}

/// Writes the preface when the connection is up and waits for the 80-byte answer. Bytes after
/// the answer pass on; a non-OK status fails the circuit.
final class PrefaceAnswerHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let keys: Preface.Keys
    private let kind: Preface.Kind
    private var preface: [UInt8]?
    private let promise: EventLoopPromise<Preface.Message>
    private let timeout: TimeAmount
    private var buffer: ByteBuffer?
    private var timer: Scheduled<Void>?
    private var finished = false

    init(keys: Preface.Keys, kind: Preface.Kind, preface: [UInt8], promise: EventLoopPromise<Preface.Message>, timeout: TimeAmount) {
        self.keys = keys
        self.kind = kind
        self.preface = preface
        self.promise = promise
        self.timeout = timeout
    }

    func channelActive(context: ChannelHandlerContext) {
        if let preface {
            self.preface = nil
            context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(bytes: preface)), promise: nil)
        }
        timer = context.eventLoop.assumeIsolated().scheduleTask(in: timeout) { [self] in
            self.finish(context, .failure(CircuitError.timedOut))
        }
        context.fireChannelActive()
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        // The preface always goes first, even if an upper handler writes during activation.
        if let preface {
            self.preface = nil
            context.write(wrapOutboundOut(context.channel.allocator.buffer(bytes: preface)), promise: nil)
        }
        context.write(data, promise: promise)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var incoming = unwrapInboundIn(data)
        if finished {
            context.fireChannelRead(data)
            return
        }
        if buffer == nil { buffer = incoming } else { buffer!.writeBuffer(&incoming) }
        guard let answer = buffer?.readBytes(length: Preface.responseSize) else { return }
        do {
            let message = try Preface.openResponse(answer, keys: keys, expecting: kind)
            let status: RelayStatus?
            switch message {
            case .hop(let m): status = m.status
            case .stop(let m): status = m.status
            }
            guard status == .ok else {
                finish(context, .failure(CircuitError.refused(status ?? .malformedMessage)))
                return
            }
            finish(context, .success(message))
        } catch {
            finish(context, .failure(CircuitError.badAnswer))
        }
    }

    private func finish(_ context: ChannelHandlerContext, _ result: Result<Preface.Message, any Error>) {
        guard !finished else { return }
        finished = true
        timer?.cancel()
        switch result {
        case .failure(let error):
            promise.fail(error)
            context.close(promise: nil)
        case .success(let message):
            promise.succeed(message)
            let rest = buffer
            buffer = nil
            // Pass the bytes that came with the answer (msg2 often rides in the same read) on
            // *before* leaving the pipeline: a removed handler's context no longer has a next
            // handler, and firing through it would drop them silently.
            if let rest, rest.readableBytes > 0 {
                context.fireChannelRead(wrapInboundOut(rest))
                context.fireChannelReadComplete()
            }
            context.pipeline.syncOperations.removeHandler(self, promise: nil)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        if !finished {
            finished = true
            timer?.cancel()
            promise.fail(CircuitError.carrierClosed)
        }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        finish(context, .failure(error))
    }
}
