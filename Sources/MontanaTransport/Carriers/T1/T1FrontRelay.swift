import MontanaCrypto
import NIOCore
import NIOPosix

/// How a T1 connection ended up (for counters and `/status`): `switched` (a Montana client) or
/// the reason it stayed a splice to the cover (`no_token`, `malformed`, `no_proof`, …).
public typealias T1Outcome = @Sendable (String) -> Void

/// T1 on the accepting side (PROTOCOL.md 2.2): the client channel's handler. At accept it opens
/// TCP to the cover on the same event loop; `T1FrontSession` decides. A splice hands both
/// channels to `SpliceHandler` (and, past its threshold, the kernel relay): a prober or a browser
/// talks to the genuine site for the life of the connection. On the switch, `onSwitch` adds the
/// carrier's handler (the preface accept handler) after this one; this handler then opens T1
/// frames into carrier bytes and seals writes, and relays the cover's post-handshake records
/// for a grace period (until 100 ms pass without one, 3 have passed, or 1 s) before closing it.
///
/// Bounds: client bytes waiting for the cover connection ≤ 64 KiB (reading stops meanwhile);
/// records ≤ 16,640 bytes (`TLSRecordReader`); the cover connect is bounded by `connectTimeout`.
public final class T1FrontHandler: ChannelDuplexHandler, RemovableChannelHandler {
    public typealias InboundIn = ByteBuffer
    public typealias InboundOut = ByteBuffer
    public typealias OutboundIn = ByteBuffer
    public typealias OutboundOut = ByteBuffer

    public static let maxPendingToCover = 64 * 1024
    public static let graceIdle: TimeAmount = .milliseconds(100)
    public static let graceRecords = 3
    public static let graceMax: TimeAmount = .seconds(1)

    private let coverAddress: SocketAddress
    private var session: T1FrontSession
    private let connectTimeout: TimeAmount
    private let onSwitch: @Sendable (any Channel) throws -> Void
    private let onOutcome: T1Outcome
    private let kernel: (() -> KernelHandoff?)?
    private var context: ChannelHandlerContext?
    private var cover: (any Channel)?
    private var coverHandler: T1CoverHandler?
    private var pendingToCover: [ByteBuffer] = []
    private(set) var pendingBytes = 0
    private var delivered = false
    private var closed = false
    private var graceRecords = 0
    private var lastCoverRecord = NIODeadline.now()
    private var switchedAt = NIODeadline.now()
    private var graceTimer: Scheduled<Void>?

    public init(cover: SocketAddress, verify: @escaping T1FrontSession.Verifier, connectTimeout: TimeAmount = .seconds(10),
                kernel: (() -> KernelHandoff?)? = nil, onOutcome: @escaping T1Outcome,
                onSwitch: @escaping @Sendable (any Channel) throws -> Void) {
        coverAddress = cover
        session = T1FrontSession(verify: verify)
        self.connectTimeout = connectTimeout
        self.kernel = kernel
        self.onOutcome = onOutcome
        self.onSwitch = onSwitch
    }

    public func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if context.channel.isActive { start(context) }
    }

    public func handlerRemoved(context: ChannelHandlerContext) {
        graceTimer?.cancel()
        self.context = nil
    }

    public func channelActive(context: ChannelHandlerContext) {
        start(context)
        context.fireChannelActive()
    }

    private var started = false
    private func start(_ context: ChannelHandlerContext) {
        guard !started else { return }
        started = true
        context.read()   // the hello comes while the cover connection opens
        let coverHandler = T1CoverHandler()
        self.coverHandler = coverHandler
        let loop = context.eventLoop
        ClientBootstrap(group: loop)
            .channelOption(.autoRead, value: false)
            .channelOption(.allowRemoteHalfClosure, value: true)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .connectTimeout(connectTimeout)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(coverHandler) }
            }
            .connect(to: coverAddress)
            .assumeIsolated()
            .whenComplete { [self] result in
                switch result {
                case .success(let channel):
                    coverHandler.front = self
                    guard !closed else { channel.close(promise: nil); return }
                    cover = channel
                    for b in pendingToCover { channel.write(b, promise: nil) }
                    pendingToCover = []
                    pendingBytes = 0
                    channel.flush()
                    if spliceWhenConnected, let context = self.context {
                        handOverToSplice(context)
                        return
                    }
                    channel.read()
                    self.context?.read()
                case .failure:
                    // The cover is down: a visitor sees the connection close, as with the site down.
                    onOutcome("cover_unreachable")
                    closeAll()
                }
            }
    }

    private func closeAll() {
        guard !closed else { return }
        closed = true
        graceTimer?.cancel()
        cover?.close(promise: nil)
        context?.close(promise: nil)
    }

    // MARK: client side

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = unwrapInboundIn(data)
        let bytes = buffer.readBytes(length: buffer.readableBytes) ?? []
        perform(session.fromClient(bytes))
    }

    public func channelReadComplete(context: ChannelHandlerContext) {
        if session.isSwitched {
            let gaveNothing = !delivered
            delivered = false
            context.fireChannelReadComplete()
            if gaveNothing, context.channel.isActive { context.read() }
            return
        }
        cover?.flush()
        if let cover, cover.isWritable { context.read() }
        else if cover == nil, pendingBytes < Self.maxPendingToCover { context.read() }
    }

    public func channelWritabilityChanged(context: ChannelHandlerContext) {
        if !session.isSwitched, context.channel.isWritable { cover?.read() }
        context.fireChannelWritabilityChanged()
    }

    public func channelInactive(context: ChannelHandlerContext) {
        closed = true
        graceTimer?.cancel()
        cover?.close(promise: nil)
        context.fireChannelInactive()
    }

    public func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let e = event as? ChannelEvent, e == .inputClosed, !session.isSwitched {
            cover?.close(mode: .output, promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    public func read(context: ChannelHandlerContext) {
        // Before the switch this handler drives reads; after it, the carrier's handler does.
        if session.isSwitched { context.read() }
    }

    public func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let buffer = unwrapOutboundIn(data)
        var out = context.channel.allocator.buffer(capacity: buffer.readableBytes + (buffer.readableBytes / T1FrameState.maxPlaintext + 1) * 22)
        guard session.seal(buffer, into: &out) else {
            promise?.fail(ChannelError.ioOnClosedChannel)
            return
        }
        context.write(wrapOutboundOut(out), promise: promise)
    }

    // MARK: cover side

    func coverRead(_ bytes: [UInt8]) {
        let actions = session.fromCover(bytes)
        if session.isSwitched {
            lastCoverRecord = .now()
            for action in actions { if case .toClient = action { graceRecords += 1 } }
        }
        perform(actions)
    }

    func coverReadComplete() {
        context?.flush()
        guard let context, context.channel.isWritable else { return }
        if !session.isSwitched || graceTimer != nil { cover?.read() }
    }

    func coverWritable() {
        if !session.isSwitched { context?.read() }
    }

    func coverInactive() {
        if !session.isSwitched && !session.isSpliced { closeAll() }
        cover = nil
    }

    func coverInputClosed() {
        if !session.isSwitched { context?.close(mode: .output, promise: nil) }
    }

    // MARK: actions

    private func perform(_ actions: [T1FrontSession.Action]) {
        guard let context else { return }
        for action in actions {
            switch action {
            case .toCover(let bytes):
                var b = context.channel.allocator.buffer(capacity: bytes.count)
                b.writeBytes(bytes)
                if let cover { cover.write(b, promise: nil) } else {
                    pendingToCover.append(b)
                    pendingBytes += bytes.count
                }
            case .toClient(let bytes):
                var b = context.channel.allocator.buffer(capacity: bytes.count)
                b.writeBytes(bytes)
                context.write(wrapOutboundOut(b), promise: nil)
            case .carrier(let plain):
                delivered = true
                var b = context.channel.allocator.buffer(capacity: plain.count)
                b.writeBytes(plain)
                context.fireChannelRead(wrapInboundOut(b))
            case .close:
                closeAll()
                return
            case .switched:
                context.flush()
                onOutcome("switched")
                switchedAt = .now()
                lastCoverRecord = .now()
                do { try onSwitch(context.channel) } catch {
                    closeAll()
                    return
                }
                scheduleGrace(context)
                cover?.read()
            case .splice:
                onOutcome(session.spliceReason ?? "splice")
                handOverToSplice(context)
                return
            }
        }
        context.flush()
        cover?.flush()
        if session.isSwitched, graceRecords >= Self.graceRecords { endGrace() }
    }

    private func scheduleGrace(_ context: ChannelHandlerContext) {
        graceTimer = context.eventLoop.assumeIsolated().scheduleTask(in: Self.graceIdle) { [self] in
            graceTimer = nil
            let now = NIODeadline.now()
            if now - lastCoverRecord >= Self.graceIdle || now - switchedAt >= Self.graceMax {
                endGrace()
            } else if let context = self.context {
                scheduleGrace(context)
            }
        }
    }

    private func endGrace() {
        graceTimer?.cancel()
        graceTimer = nil
        session.endGrace()
        coverHandler?.front = nil
        cover?.close(promise: nil)
        cover = nil
    }

    /// Hands both channels to a splice pair: the connection is the cover's from now on.
    private func handOverToSplice(_ context: ChannelHandlerContext) {
        context.flush()
        guard let cover, let coverHandler else {
            // The cover is still connecting: keep the pending bytes; splice once it is up.
            spliceWhenConnected = true
            return
        }
        cover.flush()
        coverHandler.front = nil
        let (clientSide, coverSide) = SpliceHandler.pair(kernel: kernel?())
        do {
            try cover.pipeline.syncOperations.addHandler(coverSide)
            cover.pipeline.syncOperations.removeHandler(coverHandler, promise: nil)
            try context.pipeline.syncOperations.addHandler(clientSide, position: .after(self))
        } catch {
            closeAll()
            return
        }
        self.cover = nil
        self.coverHandler = nil
        context.pipeline.syncOperations.removeHandler(self, promise: nil)
    }

    private var spliceWhenConnected = false
}

/// The cover channel's handler: passes what the cover sends to the front handler.
final class T1CoverHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    weak var front: T1FrontHandler?

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = unwrapInboundIn(data)
        front?.coverRead(buffer.readBytes(length: buffer.readableBytes) ?? [])
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        front?.coverReadComplete()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { front?.coverWritable() }
    }

    func channelInactive(context: ChannelHandlerContext) {
        front?.coverInactive()
        context.fireChannelInactive()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let e = event as? ChannelEvent, e == .inputClosed { front?.coverInputClosed() }
        context.fireUserInboundEventTriggered(event)
    }
}
