import MontanaCrypto
import NIOCore

/// The server side of the Tor Extended ORPort (ext-orport-spec) on a node's internal T3
/// listener: SafeCookie authentication (only the obfs4proxy this node started can read the
/// cookie), then the commands `USERADDR` (the client's real address) and `TRANSPORT`, then
/// `DONE`, answered `OKAY`. After that the connection is ordinary carrier input: `next` gets the
/// channel and the client's address, installs the preface handler, and this handler leaves the
/// pipeline, passing on any bytes read behind `DONE`.
///
/// Bounds: a command body ≤ `maxBody` (1024) bytes, ≤ `maxCommands` (16) commands, everything
/// within `timeout` (10 s); any violation or a failed authentication closes the connection.
public final class ExtendedORPortHandler: ChannelInboundHandler, RemovableChannelHandler {
    public typealias InboundIn = ByteBuffer
    public typealias InboundOut = ByteBuffer
    public typealias OutboundOut = ByteBuffer

    public static let maxBody = 1024
    public static let maxCommands = 16
    public static let timeout = TimeAmount.seconds(10)
    static let safeCookie: UInt8 = 0x01
    static let cmdDone: UInt16 = 0x0000, cmdUserAddr: UInt16 = 0x0001, cmdTransport: UInt16 = 0x0002
    static let replyOkay: UInt16 = 0x1000

    private enum Step { case authType, clientNonce, clientHash, commands, done }
    private let cookie: [UInt8]
    private let next: @Sendable (any Channel, SocketAddress?) throws -> Void
    private var step = Step.authType
    private var buffer: ByteBuffer?
    private var clientNonce: [UInt8] = []
    private var serverNonce: [UInt8] = []
    private var commands = 0
    private var userAddress: SocketAddress?
    private var timer: Scheduled<Void>?
    /// Called once authentication failed (the node counts it).
    private let onRefused: @Sendable (String) -> Void

    public init(cookie: [UInt8], onRefused: @escaping @Sendable (String) -> Void = { _ in },
                next: @escaping @Sendable (any Channel, SocketAddress?) throws -> Void) {
        self.cookie = cookie
        self.next = next
        self.onRefused = onRefused
    }

    public func handlerAdded(context: ChannelHandlerContext) {
        timer = context.eventLoop.assumeIsolated().scheduleTask(in: Self.timeout) { [self] in
            refuse(context, "the Extended ORPort handshake timed out")
        }
        if context.channel.isActive { start(context) }
    }

    public func channelActive(context: ChannelHandlerContext) {
        start(context)
        context.fireChannelActive()
    }

    private var started = false
    private func start(_ context: ChannelHandlerContext) {
        guard !started else { return }
        started = true
        // Authentication types offered: SafeCookie, then the 0 terminator.
        context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(bytes: [Self.safeCookie, 0x00])), promise: nil)
        context.read()
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var incoming = unwrapInboundIn(data)
        guard step != .done else { return }
        if buffer == nil { buffer = incoming } else { buffer!.writeBuffer(&incoming) }
        process(context)
    }

    public func channelReadComplete(context: ChannelHandlerContext) {
        if step != .done { context.read() }
    }

    private func process(_ context: ChannelHandlerContext) {
        while step != .done, var b = buffer {
            switch step {
            case .authType:
                guard let t = b.readInteger(as: UInt8.self) else { return }
                buffer = b
                guard t == Self.safeCookie else { return refuse(context, "the Extended ORPort client chose authentication type \(t)") }
                step = .clientNonce
            case .clientNonce:
                guard let nonce = b.readBytes(length: ExtORPortAuth.nonceSize) else { return }
                buffer = b
                clientNonce = nonce
                serverNonce = ExtORPortAuth.randomBytes(ExtORPortAuth.nonceSize)
                let hash = ExtORPortAuth.serverHash(cookie: cookie, clientNonce: clientNonce, serverNonce: serverNonce)
                context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(bytes: hash + serverNonce)), promise: nil)
                step = .clientHash
            case .clientHash:
                guard let hash = b.readBytes(length: ExtORPortAuth.hashSize) else { return }
                buffer = b
                let expected = ExtORPortAuth.clientHash(cookie: cookie, clientNonce: clientNonce, serverNonce: serverNonce)
                guard ExtORPortAuth.constantTimeEqual(hash, expected) else {
                    context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(bytes: [0x00])), promise: nil)
                    return refuse(context, "the Extended ORPort client failed SafeCookie authentication")
                }
                context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(bytes: [0x01])), promise: nil)
                step = .commands
            case .commands:
                guard let command = b.getInteger(at: b.readerIndex, as: UInt16.self),
                      let length = b.getInteger(at: b.readerIndex + 2, as: UInt16.self) else { return }
                guard Int(length) <= Self.maxBody else { return refuse(context, "an Extended ORPort command of \(length) bytes") }
                guard b.readableBytes >= 4 + Int(length) else { return }
                b.moveReaderIndex(forwardBy: 4)
                let body = b.readBytes(length: Int(length)) ?? []
                buffer = b
                commands += 1
                guard commands <= Self.maxCommands else { return refuse(context, "more than \(Self.maxCommands) Extended ORPort commands") }
                switch command {
                case Self.cmdUserAddr:
                    userAddress = Self.parseAddress(String(decoding: body, as: UTF8.self))
                case Self.cmdDone:
                    return done(context)
                default:
                    continue  // TRANSPORT and unknown commands: nothing to do
                }
            case .done:
                return
            }
        }
    }

    /// `1.2.3.4:5678` or `[v6]:port`.
    static func parseAddress(_ text: String) -> SocketAddress? {
        guard let (host, port) = try? PTMessage.address(text) else { return nil }
        return try? SocketAddress(ipAddress: host, port: port)
    }

    private func done(_ context: ChannelHandlerContext) {
        step = .done
        timer?.cancel()
        var okay = context.channel.allocator.buffer(capacity: 4)
        okay.writeInteger(Self.replyOkay)
        okay.writeInteger(UInt16(0))
        context.writeAndFlush(wrapOutboundOut(okay), promise: nil)
        let rest = buffer
        buffer = nil
        do {
            try next(context.channel, userAddress)
        } catch {
            context.close(promise: nil)
            return
        }
        if let rest, rest.readableBytes > 0 {
            context.fireChannelRead(wrapInboundOut(rest))
            context.fireChannelReadComplete()
        }
        context.pipeline.syncOperations.removeHandler(self, promise: nil)
    }

    private func refuse(_ context: ChannelHandlerContext, _ why: String) {
        guard step != .done else { return }
        step = .done
        timer?.cancel()
        onRefused(why)
        context.close(promise: nil)
    }

    public func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
    }
}
