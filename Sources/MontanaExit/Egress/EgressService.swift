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

    public init() {}
}

/// `/montana/egress/1.0.0` on an exit (PROTOCOL.md section 7). One stream is one connection
/// to the clearnet: EgressOpen → policy on every resolved address → happy-eyeballs connect →
/// EgressOpenAck, then EgressData both ways with half-closes. Only sessions that proved an
/// account in msg3 get this service at all (others are answered `na`).
public struct EgressService: StreamService {
    public let protocolName = EgressMessage.protocolID

    let account: AdmittedAccount
    let policy: ExitPolicy
    let limits: EgressLimits
    let observer: any EgressObserver

    public init(account: AdmittedAccount, policy: ExitPolicy, limits: EgressLimits, observer: any EgressObserver) {
        self.account = account
        self.policy = policy
        self.limits = limits
        self.observer = observer
    }

    public func serve(_ stream: MuxStream, session: MuxHandler) {
        let active = (session.userInfo["egress.active"] as? Int) ?? 0
        let connection = EgressConnection(stream: stream, session: session, service: self, overLimit: active >= limits.streamsPerSession)
        session.userInfo["egress.active"] = active + 1
        connection.start()
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

    private func begin(_ open: EgressOpen) {
        state = .connecting(open)
        if overLimit {
            refuse(.rateLimited, reason: "streams_per_session")
            return
        }
        guard let loop = session?.eventLoop else { return teardown() }
        let port = Int(open.port)
        let resolved: EventLoopFuture<(String?, [[UInt8]])>
        switch open.address {
        case .ipv4(let bytes), .ipv6(let bytes):
            resolved = loop.makeSucceededFuture((nil, [bytes]))
        case .host(let name):
            if let literal = IPAddress(name) {
                resolved = loop.makeSucceededFuture((nil, [literal.bytes]))
            } else {
                resolved = HostResolver.resolve(name, port: port, on: loop).map { (name, $0) }
            }
        }
        let openTimer = loop.assumeIsolated().scheduleTask(in: service.limits.openTimeout) { [weak self] in
            guard let self, case .connecting = self.state else { return }
            self.refuse(.unreachable, reason: nil)
        }
        resolved.assumeIsolated().whenComplete { [self] result in
            guard case .connecting = state else { return }
            switch result {
            case .failure:
                openTimer.cancel()
                refuse(.unreachable, reason: nil)
            case .success(let (host, addresses)):
                let decision = service.policy.check(host: host, addressBytes: addresses, port: open.port)
                if case .deny(let reason) = decision {
                    openTimer.cancel()
                    refuse(.refusedByPolicy, reason: reason.rawValue)
                    return
                }
                let targets = addresses.compactMap { try? HostResolver.socketAddress($0, port: port) }
                if open.transport == .udp {
                    bindUDP(targets, loop: loop, openTimer: openTimer)
                } else {
                    connect(targets, loop: loop, openTimer: openTimer)
                }
            }
        }
    }

    private func connect(_ targets: [SocketAddress], loop: any EventLoop, openTimer: Scheduled<Void>) {
        let handler = EgressTCPHandler()
        handler.connection = self
        tcpHandler = handler
        let boxed = NIOLoopBound(handler, eventLoop: loop)
        HappyEyeballsConnector.connect(addresses: targets, on: loop, timeout: service.limits.connectAttemptTimeout) { channel in
            channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(boxed.value) }
        }.assumeIsolated().whenComplete { [self] result in
            openTimer.cancel()
            switch result {
            case .failure:
                tcpHandler = nil
                if case .connecting = state { refuse(.unreachable, reason: nil) }
            case .success(let channel):
                guard case .connecting = state else {
                    channel.close(promise: nil)
                    return
                }
                opened(channel)
            }
        }
    }

    /// UDP egress: one socket per stream, bound to an ephemeral port, talking to the first
    /// approved address only; one EgressData is one datagram (PROTOCOL.md 7.2).
    private func bindUDP(_ targets: [SocketAddress], loop: any EventLoop, openTimer: Scheduled<Void>) {
        guard let target = targets.first else {
            openTimer.cancel()
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
                openTimer.cancel()
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
            channel.writeAndFlush(AddressedEnvelope(remoteAddress: target, data: payload), promise: nil)
            stream.consumed(wireSize)
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
        _ = stream.write(LengthPrefixedDecoder.frame(message.encode()))
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
        if case .open(let channel) = state { channel.close(promise: nil) }
        if case .finished = state, !counted {} else if counted {
            counted = false
            service.observer.streamClosed(account: account)
        }
        state = .finished
        tcpHandler?.connection = nil
        tcpHandler = nil
        if let session {
            let active = (session.userInfo["egress.active"] as? Int) ?? 1
            session.userInfo["egress.active"] = max(0, active - 1)
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
