import MontanaCrypto
import NIOConcurrencyHelpers
import NIOCore

/// A session's own channel (PROTOCOL.md 5.3): its pipeline holds `SessionCryptoHandler`, the
/// `MuxHandler` and the services; below it sits a *carrier* — today a TCP connection through a
/// front — reached through a `CarrierLinkHandler` in the carrier's pipeline. The carrier can be
/// lost and replaced while the session, its streams and the apps' connections live on: that is
/// resumption. The session is confined to `eventLoop`; a carrier may run on another loop (an
/// exit's new carrier arrives on whichever loop accepted it), and then every crossing is an
/// `execute` in order.
///
/// Without a carrier the channel is still active but not writable; it closes when its owner gives
/// up (the hold timer of a detached session, or a failed resumption).
public final class SessionChannel: Channel, ChannelCore, @unchecked Sendable {
    public let eventLoop: any EventLoop
    public let allocator = ByteBufferAllocator()
    private let closePromise: EventLoopPromise<Void>
    private var _pipeline: ChannelPipeline!
    public var pipeline: ChannelPipeline { _pipeline }
    public var parent: (any Channel)? { nil }
    public var _channelCore: any ChannelCore { self }
    public var closeFuture: EventLoopFuture<Void> { closePromise.futureResult }

    /// What other threads may read (Channel properties are thread-safe).
    private struct Shared {
        var open = true
        /// Registered and active: set once the first carrier is connected.
        var activated = false
        var attached = false
        var carrierWritable = true
        /// The crypto layer holds 4 MiB of unacknowledged data: stream writers wait.
        var retentionFull = false
        var local: SocketAddress?
        var remote: SocketAddress?
        var writable: Bool { open && activated && attached && carrierWritable && !retentionFull }
    }
    private let shared = NIOLockedValueBox(Shared())

    // Confined to `eventLoop`.
    private var link: CarrierLinkHandler?
    private var holdTimer: Scheduled<Void>?
    /// The session's crypto layer, once added (it registers itself).
    weak var crypto: SessionCryptoHandler?
    /// Uptime (ns) of the last byte received from any carrier.
    public private(set) var lastInbound: UInt64
    /// Since when (uptime ns) the path has been broken, for the carrier lost last: the moment
    /// acknowledgements stopped (a silent carrier), or the loss itself (a closed or reset one).
    public private(set) var brokenSince: UInt64 = 0
    /// Called on the loop when the carrier is lost while the session lives on (it can be
    /// resumed), with the reason in words. Not called for sessions that cannot resume: they close.
    public var onCarrierLost: ((String) -> Void)?
    /// The initiator's address when the session reached this node directly (a hop message, not a
    /// front's relay): what reports on it are attributed to.
    public internal(set) var directRemote: SocketAddress?
    /// How long a session without a carrier waits for a resumption before it closes.
    public var holdTime: TimeAmount
    /// Where a responder's resumable session is found by its id (an exit's table); nil on clients.
    let registry: ResumableSessions?
    private var registeredID: [UInt8]?

    public init(eventLoop: any EventLoop, holdTime: TimeAmount = .seconds(60), registry: ResumableSessions? = nil) {
        self.eventLoop = eventLoop
        self.holdTime = holdTime
        self.registry = registry
        lastInbound = eventLoop.now.uptimeNanoseconds
        closePromise = eventLoop.makePromise()
        _pipeline = ChannelPipeline(channel: self)
    }

    public var localAddress: SocketAddress? { shared.withLockedValue { $0.local } }
    public var remoteAddress: SocketAddress? { shared.withLockedValue { $0.remote } }
    public var isWritable: Bool { shared.withLockedValue { $0.writable } }
    public var isActive: Bool { shared.withLockedValue { $0.open && $0.activated } }
    private var isOpen: Bool { shared.withLockedValue { $0.open } }
    /// A carrier is attached (false while the session waits for a resumption).
    public var isAttached: Bool { shared.withLockedValue { $0.open && $0.attached } }

    public func setOption<Option: ChannelOption>(_ option: Option, value: Option.Value) -> EventLoopFuture<Void> {
        eventLoop.makeSucceededVoidFuture()
    }

    public func getOption<Option: ChannelOption>(_ option: Option) -> EventLoopFuture<Option.Value> {
        if option is ChannelOptions.Types.AutoReadOption, let v = true as? Option.Value { return eventLoop.makeSucceededFuture(v) }
        return eventLoop.makeFailedFuture(ChannelError.operationUnsupported)
    }

    // MARK: carriers

    /// Puts a link to this session into `carrier`'s pipeline (call on the carrier's loop; `after`
    /// places it behind that handler, else last). When `makeCurrent`, the carrier becomes the
    /// session's carrier at once (a new session); otherwise `resumed(over:)` does that later.
    @discardableResult
    public func installLink(in carrier: any Channel, after: (any ChannelHandler)? = nil, makeCurrent: Bool) throws -> CarrierLinkHandler {
        let link = CarrierLinkHandler(session: self, carrier: carrier)
        let sync = carrier.pipeline.syncOperations
        if let after { try sync.addHandler(link, position: .after(after)) } else { try sync.addHandler(link) }
        if makeCurrent { onLoop { $0.adopt(link) } }
        return link
    }

    /// Runs `body` on the session's loop: now when already there, else in order behind earlier calls.
    func onLoop(_ body: @escaping (SessionChannel) -> Void) {
        if eventLoop.inEventLoop {
            body(self)
        } else {
            let me = UnsafeTransfer(self)
            eventLoop.execute { body(me.value) }
        }
    }

    /// `link` becomes the carrier; the previous one (if any) is closed and forgotten.
    func adopt(_ new: CarrierLinkHandler) {
        eventLoop.preconditionInEventLoop()
        guard isOpen else {
            new.carrier.close(promise: nil)
            return
        }
        if let old = link, old !== new { old.carrier.close(promise: nil) }
        link = new
        holdTimer?.cancel()
        holdTimer = nil
        let before = isWritable
        shared.withLockedValue {
            $0.attached = true
            $0.carrierWritable = new.carrier.isWritable
            $0.local = new.carrier.localAddress
            $0.remote = new.carrier.remoteAddress
        }
        if let id = registeredID { registry?.attached(id) }
        if new.carrier.isActive { activateOnce() } else if before != isWritable { pipeline.syncOperations.fireChannelWritabilityChanged() }
    }

    /// The first carrier connected: the session's pipeline becomes active (the initiator's
    /// crypto layer sends msg1 now).
    func carrierActive(_ from: CarrierLinkHandler) {
        guard from === link else { return }
        activateOnce()
    }

    private func activateOnce() {
        let first = shared.withLockedValue { s -> Bool in
            guard s.open, !s.activated else { return false }
            s.activated = true
            return true
        }
        if first {
            pipeline.syncOperations.fireChannelRegistered()
            pipeline.syncOperations.fireChannelActive()
        } else {
            pipeline.syncOperations.fireChannelWritabilityChanged()
        }
    }

    /// The session's current carrier (for status and tests).
    public var carrier: (any Channel)? { link?.carrier }

    /// Bytes from `link`'s carrier; late bytes of a replaced carrier are dropped.
    func carrierRead(_ from: CarrierLinkHandler, _ buffer: ByteBuffer) {
        guard from === link, isActive else { return }
        lastInbound = eventLoop.now.uptimeNanoseconds
        pipeline.syncOperations.fireChannelRead(NIOAny(buffer))
    }

    func carrierReadComplete(_ from: CarrierLinkHandler) {
        guard from === link, isActive else { return }
        pipeline.syncOperations.fireChannelReadComplete()
        // The session reads like an auto-read channel; MuxHandler may hold the read back.
        pipeline.syncOperations.read()
    }

    func carrierWritabilityChanged(_ from: CarrierLinkHandler, writable: Bool) {
        guard from === link else { return }
        let before = isWritable
        shared.withLockedValue { $0.carrierWritable = writable }
        if before != isWritable { pipeline.syncOperations.fireChannelWritabilityChanged() }
    }

    /// The crypto layer's retention filled (or drained): writers pause (or go on).
    func setRetentionFull(_ full: Bool) {
        let before = isWritable
        shared.withLockedValue { $0.retentionFull = full }
        if before != isWritable { pipeline.syncOperations.fireChannelWritabilityChanged() }
    }

    /// `from`'s carrier closed, failed or was given up. A session that can resume waits (up to
    /// `holdTime`) for a new carrier; one that cannot closes.
    func carrierLost(_ from: CarrierLinkHandler, reason: String, since: UInt64? = nil) {
        guard from === link, isActive else { return }
        let now = eventLoop.now.uptimeNanoseconds
        brokenSince = min(since ?? now, now)
        link = nil
        from.carrier.close(promise: nil)
        let before = isWritable
        shared.withLockedValue { $0.attached = false }
        if before != isWritable { pipeline.syncOperations.fireChannelWritabilityChanged() }
        guard let crypto, crypto.detach() else {
            close(promise: nil)
            return
        }
        if let id = registeredID, let registry {
            for evicted in registry.detached(id, retained: crypto.retainedBytes) { evicted.close(promise: nil) }
        }
        pipeline.syncOperations.fireUserInboundEventTriggered(SessionCarrierEvent.lost(reason))
        holdTimer = eventLoop.assumeIsolated().scheduleTask(in: holdTime) { [weak self] in
            guard let self, self.link == nil else { return }
            self.close(promise: nil)
        }
        onCarrierLost?(reason)
    }

    /// Gives the current carrier up (it went silent): a session that can resume detaches and
    /// waits for a new one; true when that happened, false when there is nothing to resume.
    /// `since`: when the carrier went silent (uptime ns), if known.
    public func dropCarrier(reason: String, since: UInt64? = nil) -> Bool {
        eventLoop.preconditionInEventLoop()
        guard let link, let crypto, crypto.canResume else { return false }
        carrierLost(link, reason: reason, since: since)
        return true
    }

    // MARK: ChannelCore

    public func localAddress0() throws -> SocketAddress {
        guard let a = localAddress else { throw ChannelError.operationUnsupported }
        return a
    }

    public func remoteAddress0() throws -> SocketAddress {
        guard let a = remoteAddress else { throw ChannelError.operationUnsupported }
        return a
    }

    public func register0(promise: EventLoopPromise<Void>?) { promise?.succeed() }
    public func registerAlreadyConfigured0(promise: EventLoopPromise<Void>?) { promise?.succeed() }
    public func bind0(to: SocketAddress, promise: EventLoopPromise<Void>?) { promise?.fail(ChannelError.operationUnsupported) }
    public func connect0(to: SocketAddress, promise: EventLoopPromise<Void>?) { promise?.fail(ChannelError.operationUnsupported) }

    public func write0(_ data: NIOAny, promise: EventLoopPromise<Void>?) {
        guard let link else {
            promise?.fail(ChannelError.ioOnClosedChannel)
            return
        }
        link.carrier.write(unwrapData(data, as: ByteBuffer.self), promise: promise)
    }

    public func flush0() { link?.carrier.flush() }

    public func read0() { link?.allowRead() }

    public func close0(error: any Error, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        guard isOpen else {
            promise?.fail(ChannelError.alreadyClosed)
            return
        }
        let wasActive = isActive
        shared.withLockedValue { $0.open = false }
        forget()
        onCarrierLost = nil
        holdTimer?.cancel()
        holdTimer = nil
        if let link {
            self.link = nil
            // Written frames (a last ACK and CLOSE) go out before the carrier closes.
            link.carrier.flush()
            link.carrier.close(promise: nil)
        }
        promise?.succeed()
        if wasActive {
            pipeline.syncOperations.fireChannelInactive()
            pipeline.syncOperations.fireChannelUnregistered()
        } else {
            // Never connected: the handlers still learn that the session is over.
            pipeline.syncOperations.fireChannelInactive()
        }
        let me = UnsafeTransfer(self)
        eventLoop.execute {
            me.value.removeHandlers(pipeline: me.value.pipeline)
            me.value.closePromise.succeed()
        }
    }

    public func triggerUserOutboundEvent0(_ event: Any, promise: EventLoopPromise<Void>?) {
        promise?.fail(ChannelError.operationUnsupported)
    }

    public func channelRead0(_ data: NIOAny) {}
    public func errorCaught0(error: any Error) {}

    // MARK: resumption

    /// The crypto layer established a resumable session: a responder's becomes findable.
    func established(sessionID: [UInt8], resumeSecret: [UInt8]) {
        guard let registry, registry.register(sessionID, secret: resumeSecret, session: self) else { return }
        registeredID = sessionID
    }

    /// Resumption is over for this session (closed, or given up): it is no longer findable.
    func forget() {
        if let id = registeredID {
            registeredID = nil
            registry?.unregister(id)
        }
    }

    /// A responder's verified resume request over `link`: the carrier is adopted, the answer
    /// written, keys switched and the initiator's missing data sent again. A request whose
    /// offset cannot be served gets a refusal and ends the session.
    func resume(over link: CarrierLinkHandler, request: Resumption.Request, nonce: [UInt8]) {
        eventLoop.preconditionInEventLoop()
        guard isOpen, let crypto else {
            link.carrier.close(promise: nil)
            return
        }
        adopt(link)
        if !crypto.acceptResume(request, nonce: nonce) { close(promise: nil) }
    }

    /// The initiator's answer over `link`: accepted, the carrier is adopted, keys switch and data
    /// flows again; refused or forged, the carrier is closed and the session waits on (its owner
    /// tries another front or gives up).
    func resumed(over link: CarrierLinkHandler, answer: [UInt8], request: [UInt8]) -> Result<Void, SessionResumeError> {
        eventLoop.preconditionInEventLoop()
        guard isOpen, let crypto, self.link == nil else {
            link.carrier.close(promise: nil)
            return .failure(.notResumable)
        }
        switch crypto.checkResumeAnswer(answer, request: request) {
        case .failure(let error):
            link.carrier.close(promise: nil)
            return .failure(error)
        case .success(let (request, answer)):
            adopt(link)
            crypto.completeResume(request, answer)
            return .success(())
        }
    }

    /// The initiator's resume request for a new carrier, nil when the session cannot resume.
    public func resumeRequest(nonce: [UInt8]) -> [UInt8]? {
        eventLoop.preconditionInEventLoop()
        return crypto?.resumeRequest(nonce: nonce)
    }

    /// Resumptions this session went through.
    public var resumptions: Int { crypto?.resumptions ?? 0 }
}

/// What the session pipeline hears about its carrier (a user inbound event).
public enum SessionCarrierEvent: Sendable {
    /// The carrier was lost; the session waits for a resumption.
    case lost(String)
    /// A new carrier took over: counters and keys were resumed.
    case resumed
}

/// The carrier's end of a `SessionChannel`: the last handler of the carrier's pipeline. It hands
/// carrier bytes to the session (on the session's loop) and holds the carrier's reads until the
/// session asks for more, so the session's backpressure reaches the socket.
public final class CarrierLinkHandler: ChannelDuplexHandler, RemovableChannelHandler, @unchecked Sendable {
    public typealias InboundIn = ByteBuffer
    public typealias OutboundIn = ByteBuffer
    public typealias OutboundOut = ByteBuffer

    let session: SessionChannel
    let carrier: any Channel
    // Confined to the carrier's loop.
    private var context: ChannelHandlerContext?
    private var allowance = true
    private var pendingRead = false
    private var lost = false

    init(session: SessionChannel, carrier: any Channel) {
        self.session = session
        self.carrier = carrier
    }

    public func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    public func channelActive(context: ChannelHandlerContext) {
        let me = UnsafeTransfer(self)
        session.onLoop { $0.carrierActive(me.value) }
        context.fireChannelActive()
    }

    public func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        let me = UnsafeTransfer(self)
        session.onLoop { $0.carrierRead(me.value, buffer) }
    }

    public func channelReadComplete(context: ChannelHandlerContext) {
        let me = UnsafeTransfer(self)
        session.onLoop { $0.carrierReadComplete(me.value) }
    }

    public func channelWritabilityChanged(context: ChannelHandlerContext) {
        let writable = context.channel.isWritable
        let me = UnsafeTransfer(self)
        session.onLoop { $0.carrierWritabilityChanged(me.value, writable: writable) }
        context.fireChannelWritabilityChanged()
    }

    public func read(context: ChannelHandlerContext) {
        if allowance {
            allowance = false
            context.read()
        } else {
            pendingRead = true
        }
    }

    /// The session wants more bytes (called from its loop).
    func allowRead() {
        if carrier.eventLoop.inEventLoop {
            grantRead()
        } else {
            let me = UnsafeTransfer(self)
            carrier.eventLoop.execute { me.value.grantRead() }
        }
    }

    private func grantRead() {
        if pendingRead, let context {
            pendingRead = false
            context.read()
        } else {
            allowance = true
        }
    }

    public func channelInactive(context: ChannelHandlerContext) {
        reportLost("the carrier closed")
        context.fireChannelInactive()
    }

    public func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        // The front (or the peer) ended its side without CLOSE: this carrier is over.
        if let e = event as? ChannelEvent, e == .inputClosed {
            reportLost("the carrier was closed by the other side")
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    public func errorCaught(context: ChannelHandlerContext, error: any Error) {
        reportLost("carrier error: \(error)")
    }

    private func reportLost(_ reason: String) {
        guard !lost else { return }
        lost = true
        let me = UnsafeTransfer(self)
        session.onLoop { $0.carrierLost(me.value, reason: reason) }
    }
}

/// Moves a non-Sendable reference into a closure that runs on another loop; the receiving side
/// touches it only on the loop it is confined to.
struct UnsafeTransfer<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}
