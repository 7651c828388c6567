import Foundation
import MontanaCrypto
import MontanaSession
import MontanaTransport
import MontanaWire
import NIOCore
import NIOPosix

/// What the exit reports about egress; the node maps it to metrics and per-account totals
/// (never destinations or addresses).
public protocol EgressObserver: Sendable {
    func streamOpened(account: [UInt8])
    func streamClosed(account: [UInt8])
    func refused(account: [UInt8], reason: String)
    func openFailed(status: EgressOpenStatus)
    func bytes(account: [UInt8], up: Int, down: Int)
}

public struct EgressLimits: Sendable {
    public var streamsPerSession = 256
    public var openTimeout = TimeAmount.seconds(30)
    public var idleTimeout = TimeAmount.seconds(240)
    public var connectAttemptTimeout = TimeAmount.seconds(10)
    /// Addresses dialled per TCP open at most (`[limits] connect_attempts_per_open`): a name with
    /// 50 addresses must not cost 50 sockets.
    public var connectAttemptsPerOpen = 4
    /// Descriptors kept free for listeners, the accounting store and the admin port: an open is
    /// refused with status 3 unless this many would remain after it. 256 leaves room for a burst
    /// of accepts and the resolver's sockets while egress is at its limit.
    public var descriptorReserve = 256
    /// EgressOpens per session waiting for a DNS slot beyond `[dns] max_per_session`; more are
    /// refused with status 3. 32 covers a page load that names dozens of hosts at once.
    public var dnsQueuedPerSession = 32
    /// Where egress TCP connections are bound before connecting (`[exit] egress_source`).
    public var source = EgressSource()
    /// The receive buffers of egress TCP connections, node-wide (`[limits] egress_small_buffers_after`).
    public var receiveBuffers = EgressReceiveBuffers()

    public init() {}
}

/// `/montana/egress/1.0.0` on an exit (PROTOCOL.md section 7). One stream is one connection
/// to the clearnet: EgressOpen → DNS (the node's stub resolver) → policy on every resolved
/// address → happy-eyeballs connect → EgressOpenAck, then EgressData both ways with half-closes.
/// Only sessions that proved an account in msg3 get this service at all (others are answered
/// `na`). One service is made per session; it owns that session's `EgressSessionState`.
public struct EgressService: StreamService {
    public let protocolName = EgressMessage.protocolID

    let account: AdmittedAccount
    let policy: ExitPolicy
    let limits: EgressLimits
    let observer: any EgressObserver
    let resolver: StubResolver
    let budget: AccountBudget
    let state: EgressSessionState

    /// Takes one of the account's session slots (`budget`) for as long as the session lives:
    /// `sessionClosed` gives it back. A session that finds the account at its cap stays up, but
    /// every EgressOpen on it is answered with status 3 (rate limited), so the client sees a
    /// clear refusal instead of a dead circuit.
    /// Bytes this exit has carried for an account (its accounting), for a pass's quota.
    let usage: (@Sendable ([UInt8]) -> UInt64)?

    public init(account: AdmittedAccount, policy: ExitPolicy, limits: EgressLimits, observer: any EgressObserver,
                resolver: StubResolver, budget: AccountBudget, sessionClosed: EventLoopFuture<Void>,
                usage: (@Sendable ([UInt8]) -> UInt64)? = nil) {
        self.usage = usage
        self.account = account
        self.policy = policy
        self.limits = limits
        self.observer = observer
        self.resolver = resolver
        self.budget = budget
        let id = account.accountID
        let admitted = budget.openSession(id)
        if admitted {
            sessionClosed.whenComplete { _ in budget.closeSession(id) }
        }
        state = EgressSessionState(admitted: admitted)
    }

    public func serve(_ stream: MuxStream, session: MuxHandler) {
        let connection = EgressConnection(stream: stream, session: session, service: self,
                                          overLimit: state.activeStreams >= limits.streamsPerSession)
        state.activeStreams += 1
        connection.start()
    }
}

/// What one session's egress streams share, on the session's event loop: the stream count and
/// the session's DNS slots and queue.
final class EgressSessionState {
    /// False when the account already had `sessions_per_account` sessions at establishment.
    let admitted: Bool
    var activeStreams = 0
    /// Lookups of this session on the network (`[dns] max_per_session` at most).
    var dnsRunning = 0
    /// Opens waiting for a DNS slot, oldest first.
    var dnsWaiting: [EgressConnection] = []

    init(admitted: Bool) {
        self.admitted = admitted
    }
}

/// One egress stream and its TCP connection; lives on the session's event loop.
final class EgressConnection {
    private enum State {
        case awaitingOpen
        case connecting(EgressOpen)
        case open(any Channel)
        case finished
    }

    private let stream: MuxStream
    private weak var session: MuxHandler?
    private let service: EgressService
    private let overLimit: Bool
    private var state = State.awaitingOpen
    private var decoder = LengthPrefixedDecoder()
    /// Optimistic EgressData received before the connection is up (bounded by the stream window).
    private var early: [(ByteBuffer, Int)] = []
    private var streamID: UInt32 { stream.id }
    private var clientClosed = false
    private var upstreamClosed = false
    private var idleTimer: Scheduled<Void>?
    private var tcpHandler: EgressTCPHandler?
    private var counted = false
    /// For UDP egress: the one destination datagrams go to and are accepted from.
    private var udpTarget: SocketAddress?
    /// Holds one of the account's stream slots (`AccountBudget`).
    private var holdsAccountStream = false
    /// Counted in the session's `activeStreams`.
    private var countedInSession = true
    /// Where this open is with the session's DNS slots.
    private enum LookupSlot { case none, waiting(name: String, deadline: NIODeadline), running }
    private var lookupSlot = LookupSlot.none
    /// EGRESS_OPEN_TIMEOUT for the whole open (DNS wait, lookup, connect).
    private var openTimer: Scheduled<Void>?

    init(stream: MuxStream, session: MuxHandler, service: EgressService, overLimit: Bool) {
        self.stream = stream
        self.session = session
        self.service = service
        self.overLimit = overLimit
    }

    private var account: [UInt8] { service.account.accountID }

    func start() {
        stream.onData = { [self] buffer in receive(buffer) }
        stream.onEnd = { [self] end in
            if end == .remoteFinished {
                clientFinished()
            } else {
                teardown()
            }
        }
        stream.onWritable = { [self] in tcpHandler?.resumeReading() }
        resetIdleTimer()
        stream.startReading()
    }

    private func receive(_ buffer: ByteBuffer) {
        resetIdleTimer()
        decoder.append(buffer)
        do {
            while case let raw? = try decoder.nextMessage() {
                let size = LengthPrefixedDecoder.wireSize(bodyLength: raw.readableBytes)
                if let payload = EgressFraming.dataPayload(raw, streamID: streamID) {
                    handleData(payload, wireSize: size)
                    if case .finished = state { return }
                    continue
                }
                let message = try EgressMessage.decode(Array(raw.readableBytesView))
                handle(message, wireSize: size)
                if case .finished = state { return }
            }
        } catch {
            // Anything undecodable resets the stream (PROTOCOL.md 7.2).
            resetStream()
        }
    }

    private func handle(_ message: EgressMessage, wireSize: Int) {
        if let id = message.streamID, id != streamID {
            resetStream()
            return
        }
        switch (state, message) {
        case (.awaitingOpen, .open(let open)):
            stream.consumed(wireSize)
            begin(open)
        case (.awaitingOpen, _):
            resetStream()
        case (.connecting, .data(_, let payload)), (.open, .data(_, let payload)):
            handleData(ByteBuffer(bytes: payload), wireSize: wireSize)
        case (_, .close):
            stream.consumed(wireSize)
            clientFinished()
        case (_, .keepalive):
            stream.consumed(wireSize)
        case (.finished, _):
            stream.consumed(wireSize)
        default:
            resetStream()
        }
    }

    /// EgressData from the client: held until the connection is up, then written out.
    private func handleData(_ payload: ByteBuffer, wireSize: Int) {
        switch state {
        case .connecting:
            early.append((payload, wireSize))
        case .open(let channel):
            forward(payload, to: channel, wireSize: wireSize)
        case .finished:
            stream.consumed(wireSize)
        case .awaitingOpen:
            resetStream()
        }
    }

    private var sessionState: EgressSessionState { service.state }

    /// Whether one more socket leaves `descriptorReserve` descriptors free.
    private func descriptorsLeft() -> Bool {
        FileDescriptorBudget.current().hasRoom(reserve: service.limits.descriptorReserve)
    }

    private func begin(_ open: EgressOpen) {
        state = .connecting(open)
        if !sessionState.admitted {
            refuse(.rateLimited, reason: "sessions_per_account")
            return
        }
        if overLimit {
            refuse(.rateLimited, reason: "streams_per_session")
            return
        }
        guard service.budget.openStream(account) else {
            refuse(.rateLimited, reason: "streams_per_account")
            return
        }
        holdsAccountStream = true
        // A pass's quota is enforced per exit, at every open, against this exit's accounting;
        // the client learns why from `/montana/account/1.0.0`.
        if let quota = service.account.pass?.quotaBytes, quota > 0, let usage = service.usage, usage(service.account.accountID) >= quota {
            refuse(.rateLimited, reason: "pass_quota")
            return
        }
        guard descriptorsLeft() else {
            refuse(.rateLimited, reason: "resource_limit")
            return
        }
        guard let loop = session?.eventLoop else { return teardown() }
        openTimer = loop.assumeIsolated().scheduleTask(in: service.limits.openTimeout) { [weak self] in
            guard let self, case .connecting = self.state else { return }
            self.refuse(.unreachable, reason: nil)
        }
        switch open.address {
        case .ipv4(let bytes), .ipv6(let bytes):
            resolved(.success([bytes]), host: nil, open: open, loop: loop)
        case .host(let name):
            if let literal = IPAddress(name) {
                resolved(.success([literal.bytes]), host: nil, open: open, loop: loop)
                return
            }
            // Hosts-file and cached names never wait behind the session's lookups in flight.
            if let known = service.resolver.answerWithoutNetwork(name) {
                resolved(known, host: name, open: open, loop: loop)
                return
            }
            let deadline = NIODeadline.now() + service.resolver.configuration.timeout
            if sessionState.dnsRunning < service.resolver.configuration.maxPerSession {
                lookUp(name, deadline: deadline, open: open, loop: loop)
            } else if sessionState.dnsWaiting.count < service.limits.dnsQueuedPerSession {
                lookupSlot = .waiting(name: name, deadline: deadline)
                sessionState.dnsWaiting.append(self)
                // The deadline covers the wait for a slot too.
                loop.assumeIsolated().scheduleTask(deadline: deadline) { [weak self] in
                    guard let self, case .waiting = self.lookupSlot, case .connecting = self.state else { return }
                    self.refuse(.unreachable, reason: nil)
                }
            } else {
                openTimer?.cancel()
                refuse(.rateLimited, reason: "dns_per_session")
            }
        }
    }

    /// Runs the lookup in one of the session's DNS slots. The slot is held until the resolver
    /// answers (at its deadline at the latest), even if the stream is gone by then: opening and
    /// resetting streams cannot multiply a session's lookups in flight.
    private func lookUp(_ name: String, deadline: NIODeadline, open: EgressOpen, loop: any EventLoop) {
        lookupSlot = .running
        sessionState.dnsRunning += 1
        service.resolver.resolve(name, deadline: deadline, on: loop).assumeIsolated().whenComplete { [self] result in
            lookupSlot = .none
            let shared = sessionState
            shared.dnsRunning = max(0, shared.dnsRunning - 1)
            while shared.dnsRunning < service.resolver.configuration.maxPerSession, !shared.dnsWaiting.isEmpty {
                shared.dnsWaiting.removeFirst().slotFreed()
            }
            resolved(result, host: name, open: open, loop: loop)
        }
    }

    /// Called by the session's queue when a DNS slot is free for this waiting open.
    private func slotFreed() {
        guard case .waiting(let name, let deadline) = lookupSlot, case .connecting(let open) = state, let loop = session?.eventLoop else {
            lookupSlot = .none
            return
        }
        lookUp(name, deadline: deadline, open: open, loop: loop)
    }

    private func resolved(_ result: Result<[[UInt8]], any Error>, host: String?, open: EgressOpen, loop: any EventLoop) {
        guard case .connecting = state else { return }
        let port = Int(open.port)
        switch result {
        case .failure(let error):
            openTimer?.cancel()
            if let dns = error as? DNSResolveError, dns == .busy {
                refuse(.rateLimited, reason: "dns_inflight")
            } else {
                refuse(.unreachable, reason: nil)
            }
        case .success(let addresses):
            let decision = service.policy.check(host: host, addressBytes: addresses, port: open.port)
            if case .deny(let reason) = decision {
                openTimer?.cancel()
                refuse(.refusedByPolicy, reason: reason.rawValue)
                return
            }
            guard descriptorsLeft() else {
                openTimer?.cancel()
                refuse(.rateLimited, reason: "resource_limit")
                return
            }
            let targets = addresses.compactMap { try? HostResolver.socketAddress($0, port: port) }
            if open.transport == .udp {
                bindUDP(targets, loop: loop)
            } else {
                connect(targets, loop: loop)
            }
        }
    }

    private func connect(_ targets: [SocketAddress], loop: any EventLoop) {
        let allocator = service.limits.receiveBuffers.allocatorForNextConnection()
        let handler = EgressTCPHandler(buffers: service.limits.receiveBuffers)
        handler.connection = self
        tcpHandler = handler
        let boxed = NIOLoopBound(handler, eventLoop: loop)
        HappyEyeballsConnector.connect(addresses: targets, maxAttempts: service.limits.connectAttemptsPerOpen, on: loop,
                                       timeout: service.limits.connectAttemptTimeout, source: service.limits.source,
                                       recvAllocator: allocator) { channel in
            // The handler joins only the attempt that won (below): with autoRead off nothing
            // is read before it, and a losing attempt never touches the connection.
            channel.eventLoop.makeSucceededVoidFuture()
        }.assumeIsolated().whenComplete { [self] result in
            openTimer?.cancel()
            switch result {
            case .failure:
                tcpHandler = nil
                if case .connecting = state { refuse(.unreachable, reason: nil) }
            case .success(let channel):
                guard case .connecting = state else {
                    channel.close(promise: nil)
                    return
                }
                do {
                    try channel.pipeline.syncOperations.addHandler(boxed.value)
                } catch {
                    channel.close(promise: nil)
                    tcpHandler = nil
                    refuse(.unreachable, reason: nil)
                    return
                }
                opened(channel)
            }
        }
    }

    /// UDP egress: one socket per stream, bound to an ephemeral port, talking to the first
    /// approved address only; one EgressData is one datagram (PROTOCOL.md 7.2).
    private func bindUDP(_ targets: [SocketAddress], loop: any EventLoop) {
        guard let target = targets.first else {
            openTimer?.cancel()
            refuse(.unreachable, reason: nil)
            return
        }
        let handler = EgressUDPHandler(target: target)
        handler.connection = self
        let boxed = NIOLoopBound(handler, eventLoop: loop)
        let wildcard = target.protocol == .inet6 ? "::" : "0.0.0.0"
        DatagramBootstrap(group: loop)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(boxed.value) }
            }
            .bind(host: wildcard, port: 0)
            .assumeIsolated()
            .whenComplete { [self] result in
                openTimer?.cancel()
                switch result {
                case .failure:
                    if case .connecting = state { refuse(.unreachable, reason: nil) }
                case .success(let channel):
                    guard case .connecting = state else {
                        channel.close(promise: nil)
                        return
                    }
                    udpTarget = target
                    opened(channel)
                }
            }
    }

    private func opened(_ channel: any Channel) {
        state = .open(channel)
        counted = true
        service.observer.streamOpened(account: account)
        sendMessage(.openAck(streamID: streamID, status: .open))
        let pending = early
        early = []
        for (payload, size) in pending { forward(payload, to: channel, wireSize: size) }
        if clientClosed {
            if udpTarget != nil { upstreamFinished() } else { channel.close(mode: .output, promise: nil) }
        }
        channel.read()
    }

    /// A datagram from the destination → one EgressData. Datagrams are dropped, not queued, while
    /// the stream is full: UDP has no backpressure and the app expects loss.
    func datagramRead(_ buffer: ByteBuffer) {
        resetIdleTimer()
        guard stream.isWritable, buffer.readableBytes <= EgressMessage.maxPayload else { return }
        service.observer.bytes(account: account, up: 0, down: buffer.readableBytes)
        sendMessage(.data(streamID: streamID, payload: Array(buffer.readableBytesView)))
    }

    private func forward(_ payload: ByteBuffer, to channel: any Channel, wireSize: Int) {
        service.observer.bytes(account: account, up: payload.readableBytes, down: 0)
        if let target = udpTarget {
            // Credit goes back only once the datagram left (or was dropped by the kernel): while the
            // socket is not writable NIO holds the write, the credit stays out, and the client's
            // window closes instead of the exit queueing without bound.
            channel.writeAndFlush(AddressedEnvelope(remoteAddress: target, data: payload)).assumeIsolated().whenComplete { [weak self] _ in
                self?.stream.consumed(wireSize)
            }
            return
        }
        guard payload.readableBytes > 0 else {
            stream.consumed(wireSize)
            return
        }
        // The window reopens only once the bytes are in the kernel: end-to-end backpressure.
        channel.writeAndFlush(payload).assumeIsolated().whenComplete { [weak self] _ in
            self?.stream.consumed(wireSize)
        }
    }

    private func refuse(_ status: EgressOpenStatus, reason: String?) {
        if let reason { service.observer.refused(account: account, reason: reason) }
        service.observer.openFailed(status: status)
        sendMessage(.openAck(streamID: streamID, status: status))
        state = .finished
        stream.closeWrite()
        finishIfDone(force: true)
    }

    private func sendMessage(_ message: EgressMessage) {
        // openAck and close always encode; `try?` because encode() throws for EgressOpen/Data.
        guard let bytes = try? message.encode() else { return }
        _ = stream.write(LengthPrefixedDecoder.frame(bytes))
    }

    /// Upstream bytes → EgressData messages. Returns whether the stream can take more.
    func upstreamRead(_ buffer: ByteBuffer) -> Bool {
        resetIdleTimer()
        service.observer.bytes(account: account, up: 0, down: buffer.readableBytes)
        var out = ByteBuffer()
        out.reserveCapacity(buffer.readableBytes + 8 * (buffer.readableBytes / EgressMessage.maxPayload + 1))
        EgressFraming.appendData(streamID: streamID, payload: buffer, to: &out)
        return stream.write(out)
    }

    var streamWritable: Bool { stream.isWritable }

    func upstreamFinished() {
        guard !upstreamClosed else { return }
        upstreamClosed = true
        sendMessage(.close(streamID: streamID, reason: .normal))
        stream.closeWrite()
        finishIfDone()
    }

    func upstreamFailed() {
        guard !upstreamClosed else { return }
        upstreamClosed = true
        sendMessage(.close(streamID: streamID, reason: .error))
        stream.closeWrite()
        clientClosed = true
        finishIfDone()
    }

    private func clientFinished() {
        guard !clientClosed else { return }
        clientClosed = true
        if case .open(let channel) = state {
            if udpTarget != nil {
                // A UDP flow has no half-close: the client's end ends it.
                channel.close(promise: nil)
                upstreamFinished()
                return
            }
            channel.close(mode: .output, promise: nil)
        }
        if case .awaitingOpen = state {
            teardown()
            return
        }
        finishIfDone()
    }

    private func finishIfDone(force: Bool = false) {
        guard force || (clientClosed && upstreamClosed) else { return }
        teardown()
    }

    private func resetStream() {
        stream.reset()
        teardown()
    }

    private func resetIdleTimer() {
        idleTimer?.cancel()
        guard let loop = session?.eventLoop else { return }
        idleTimer = loop.assumeIsolated().scheduleTask(in: service.limits.idleTimeout) { [weak self] in
            self?.resetStream()
        }
    }

    private func teardown() {
        idleTimer?.cancel()
        idleTimer = nil
        openTimer?.cancel()
        openTimer = nil
        if case .open(let channel) = state { channel.close(promise: nil) }
        if case .finished = state, !counted {} else if counted {
            counted = false
            service.observer.streamClosed(account: account)
        }
        state = .finished
        tcpHandler?.connection = nil
        tcpHandler = nil
        if holdsAccountStream {
            holdsAccountStream = false
            service.budget.closeStream(account)
        }
        if countedInSession {
            countedInSession = false
            sessionState.activeStreams = max(0, sessionState.activeStreams - 1)
        }
        if case .waiting = lookupSlot {
            lookupSlot = .none
            sessionState.dnsWaiting.removeAll { $0 === self }
        }
        self.session = nil
    }
}

/// The exit's TCP connection to a destination. Reads only while the stream can take more.
final class EgressTCPHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    var connection: EgressConnection?
    private var context: ChannelHandlerContext?
    private var paused = false
    private let buffers: EgressReceiveBuffers

    /// Counted from the start of the connect (so a burst of opens sees itself, not only the
    /// connections that already completed) until the handler goes with its connection.
    init(buffers: EgressReceiveBuffers) {
        self.buffers = buffers
        buffers.connectionOpened()
    }

    deinit { buffers.connectionClosed() }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard let connection else { return }
        if !connection.upstreamRead(unwrapInboundIn(data)) { paused = true }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if !paused { context.read() }
    }

    func resumeReading() {
        guard paused, let context else { return }
        paused = false
        context.read()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let e = event as? ChannelEvent, e == .inputClosed {
            connection?.upstreamFinished()
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        connection?.upstreamFinished()
        self.context = nil
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        connection?.upstreamFailed()
        context.close(promise: nil)
    }
}

/// The exit's UDP socket for one egress stream: datagrams only from the approved destination.
final class EgressUDPHandler: ChannelInboundHandler {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>

    let target: SocketAddress
    var connection: EgressConnection?

    init(target: SocketAddress) {
        self.target = target
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let envelope = unwrapInboundIn(data)
        guard envelope.remoteAddress == target else { return }
        connection?.datagramRead(envelope.data)
    }

    func channelInactive(context: ChannelHandlerContext) {
        connection?.upstreamFinished()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // ICMP errors (e.g. port unreachable) surface here; the flow stays until idle or closed.
    }
}
