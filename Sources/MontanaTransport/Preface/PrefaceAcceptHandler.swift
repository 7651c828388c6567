import Foundation
import MontanaCrypto
import MontanaWire
import NIOCore
import NIOPosix

/// First handler on every inbound carrier of a node. It reads exactly one 1632-byte preface,
/// and then either becomes the session responder, relays to another member, or refuses with a
/// status. A preface that does not pass the gate gets no answer at all: the hop reads and
/// discards up to a random 1632-16384 bytes or 10-60 s, whichever comes first, then closes —
/// a prober learns nothing from timing or bytes.
///
/// Admission (`SourceAdmission`) decides first and cheaply: a connection over a circuit cap, and a
/// preface over its source's, network's or the node's preface budget, is discarded the same silent
/// way before any decapsulation; a preface over its network's (or member's) handshake share is
/// discarded after opening. Only prefaces that get an answer are remembered against replay.
public final class PrefaceAcceptHandler: ChannelInboundHandler, RemovableChannelHandler {
    public typealias InboundIn = ByteBuffer
    public typealias InboundOut = ByteBuffer
    public typealias OutboundOut = ByteBuffer

    /// Pipelined session bytes a relay holds while it connects to the target (spec: 64 KiB).
    static let maxPipelined = 64 * 1024
    static let dialTimeout = TimeAmount.seconds(10)

    private enum State {
        case readingPreface
        case discarding(limit: Int)
        case relaying
        case done
    }

    private let gate: SharedPrefaceGate
    private let admission: SourceAdmission
    private let router: any CircuitRouter
    private let observer: any TransportObserver
    private let alliance: [UInt8]?
    /// Where relayed circuits to members leave from (the node's transit address when it is a
    /// specific one), so the next member recognises — and exempts — its member's address.
    private let relaySource: SocketAddress?
    /// This node's resumable sessions (an exit's); nil: sessions here do not resume.
    private let resumable: ResumableSessions?
    private var state = State.readingPreface
    private var buffer: ByteBuffer?
    private var total = 0
    private var timer: Scheduled<Void>?
    private var ticket: AdmissionTicket?
    /// Relays bulk circuits in the kernel (splice(2)); nil: every circuit stays in userspace.
    private let splicer: KernelSplicer?
    /// What runs when the circuit ends: the channel's close, or the kernel relay's end.
    private let lifetime = CircuitLifetime()
    /// The client's address when the carrier's socket does not show it: a T3 connection comes
    /// from the local obfs4proxy, which names the client in the Extended ORPort's USERADDR.
    private let remoteOverride: SocketAddress?
    /// Set for carriers that arrive through a local helper (T3): their socket's peer is loopback.
    private let viaHelper: Bool

    public init(gate: SharedPrefaceGate, admission: SourceAdmission, router: any CircuitRouter,
                observer: any TransportObserver = NoTransportObserver(), alliance: [UInt8]? = nil,
                relaySource: SocketAddress? = nil, resumable: ResumableSessions? = nil,
                remote: SocketAddress? = nil, viaHelper: Bool = false, splicer: KernelSplicer? = nil) {
        self.splicer = splicer
        self.remoteOverride = remote
        self.viaHelper = viaHelper
        self.relaySource = relaySource
        self.resumable = resumable
        self.gate = gate
        self.admission = admission
        self.router = router
        self.observer = observer
        self.alliance = alliance
    }

    /// The carrier's remote as admission, echoes and reachability see it. A helper's carrier
    /// without USERADDR has none (nil: its own admission group), never loopback.
    private func remote(_ context: ChannelHandlerContext) -> SocketAddress? {
        if let remoteOverride { return remoteOverride }
        return viaHelper ? nil : context.channel.remoteAddress
    }

    public func handlerAdded(context: ChannelHandlerContext) {
        let ticket = admission.connect(remote(context).flatMap(SourceAddress.init))
        self.ticket = ticket
        let admission = self.admission
        let lifetime = self.lifetime
        lifetime.onEnd { admission.release(ticket) }
        context.channel.closeFuture.whenComplete { _ in lifetime.channelClosed() }
        guard ticket.holdsCircuit else {
            // Over a circuit cap: not closed (a prober would see that), discarded like garbage.
            observer.prefaceRejected(reason: AdmissionRefusal.circuits.reason)
            discard(context: context)
            return
        }
        // A connection that never completes its preface is closed after a random 10-60 s.
        timer = context.eventLoop.assumeIsolated().scheduleTask(in: .seconds(Int64.random(in: 10...60))) {
            context.close(promise: nil)
        }
        if context.channel.isActive { context.read() }
    }

    public func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
    }

    public func channelActive(context: ChannelHandlerContext) {
        context.read()
        context.fireChannelActive()
    }

    public func read(context: ChannelHandlerContext) {
        // Reads are driven here: while relaying, only until 64 KiB of pipelined bytes are held.
        if case .relaying = state, (buffer?.readableBytes ?? 0) >= Self.maxPipelined {
            return  // the splice resumes reading once the target accepted
        }
        context.read()
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var incoming = unwrapInboundIn(data)
        total += incoming.readableBytes
        switch state {
        case .discarding(let limit):
            if total >= limit { context.close(promise: nil) }
            return
        case .done:
            return
        case .relaying:
            if buffer == nil { buffer = incoming } else { buffer!.writeBuffer(&incoming) }
            return
        case .readingPreface:
            if buffer == nil { buffer = incoming } else { buffer!.writeBuffer(&incoming) }
            guard let bytes = buffer?.readBytes(length: Preface.size) else { return }
            accept(context: context, preface: bytes)
        }
    }

    public func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        // The peer's FIN before a preface was accepted, or on a discarder: nothing more can
        // arrive, so holding the descriptor until the 10-60 s timer only helps a flooder.
        if let e = event as? ChannelEvent, e == .inputClosed {
            switch state {
            case .readingPreface, .discarding:
                state = .done
                context.close(promise: nil)
                return
            case .relaying, .done:
                break
            }
        }
        context.fireUserInboundEventTriggered(event)
    }

    public func channelReadComplete(context: ChannelHandlerContext) {
        switch state {
        case .readingPreface, .discarding, .relaying:
            read(context: context)
        case .done:
            break
        }
    }

    private func accept(context: ChannelHandlerContext, preface: [UInt8]) {
        guard let ticket else {
            discard(context: context)
            return
        }
        // Cheap checks first: the source's, network's and node's preface budgets, before any
        // decapsulation and before anything is remembered.
        if let refusal = admission.admitPreface(ticket) {
            refuse(context, reason: refusal.reason)
            return
        }
        let now = WallClock.now()
        let opened: OpenedPreface
        do {
            opened = try gate.open(preface, now: now, owner: ticket.replayOwner, ownerShare: ticket.replayShare)
        } catch {
            refuse(context, reason: error.reason)
            return
        }
        timer?.cancel()
        switch opened.message {
        case .hop(let hop) where hop.type != .connect:
            answerRemembered(context, opened, status: .unexpectedMessage, now: now)
        case .hop(let hop) where hop.peer == nil:
            answerRemembered(context, opened, status: .malformedMessage, now: now)
        case .stop(let stop) where stop.type != .connect:
            answerRemembered(context, opened, status: .unexpectedMessage, now: now)
        default:
            switch router.route(opened.message) {
            case .refuse(let status):
                answerRemembered(context, opened, status: status, now: now)
            case .echo:
                guard remember(context, opened, now: now) else { return }
                let seen = IPEchoService.encode(remote(context))
                let reply = Preface.Message.hop(HopMessage(type: .status, peer: RelayPeer(id: [], addrs: [seen]), status: .ok))
                answer(context, opened, message: reply, close: true)
            case .terminate(let role, let install):
                // The expensive part (an ML-DSA signature): the network's or member's share and
                // the node's budget; over either the preface is discarded, never answered.
                if let refusal = admission.admitHandshake(ticket) {
                    refuse(context, reason: refusal.reason)
                    return
                }
                guard remember(context, opened, now: now) else { return }
                terminate(context, opened, role: role, install: install)
            case .resume:
                // No signature to pay for (an HMAC), so no handshake share; an unknown session
                // gets the same refusal as a forged one.
                guard let resumable else {
                    answerRemembered(context, opened, status: .permissionDenied, now: now)
                    return
                }
                guard remember(context, opened, now: now) else { return }
                takeOver(context, opened, handler: ResumeResponderHandler(registry: resumable, observer: observer))
            case .relay(let target):
                // Counted against the client's own network before the exit sees it arrive from us.
                if let refusal = admission.admitRelay(ticket) {
                    refuse(context, reason: refusal.reason)
                    return
                }
                guard remember(context, opened, now: now) else { return }
                relay(context, opened, to: target)
            }
        }
    }

    /// Remembers a preface that is about to be answered; if that fails (a concurrent replay, or
    /// the share filled meanwhile) the connection is discarded instead.
    private func remember(_ context: ChannelHandlerContext, _ opened: OpenedPreface, now: UInt64) -> Bool {
        guard let ticket else { return false }
        do {
            try gate.remember(opened, now: now, owner: ticket.replayOwner, ownerShare: ticket.replayShare)
            return true
        } catch {
            refuse(context, reason: error.reason)
            return false
        }
    }

    private func answerRemembered(_ context: ChannelHandlerContext, _ opened: OpenedPreface, status: RelayStatus, now: UInt64) {
        guard remember(context, opened, now: now) else { return }
        answer(context, opened, status: status, close: true)
    }

    private func refuse(_ context: ChannelHandlerContext, reason: String) {
        observer.prefaceRejected(reason: reason)
        discard(context: context)
    }

    /// The silent end of every refusal: read and discard up to a random 1632-16384 bytes or for a
    /// random 10-60 s, then close. The connection joins the node's bounded discard pool (it gives
    /// back its circuit slot); if the pool has no room for it, it is closed now.
    private func discard(context: ChannelHandlerContext) {
        buffer = nil
        timer?.cancel()
        if let ticket, admission.discard(ticket, channel: context.channel) == .closeNow {
            state = .done
            context.close(promise: nil)
            return
        }
        let limit = Int.random(in: Preface.size...16384)
        state = .discarding(limit: limit)
        timer = context.eventLoop.assumeIsolated().scheduleTask(in: .seconds(Int64.random(in: 10...60))) {
            context.close(promise: nil)
        }
        if total >= limit {
            context.close(promise: nil)
        } else if context.channel.isActive {
            context.read()
        }
    }

    private func response(for message: Preface.Message, status: RelayStatus) -> Preface.Message {
        switch message {
        case .hop: return .hop(HopMessage(type: .status, status: status))
        case .stop: return .stop(StopMessage(type: .status, status: status))
        }
    }

    private func answer(_ context: ChannelHandlerContext, _ opened: OpenedPreface, status: RelayStatus, close: Bool) {
        answer(context, opened, message: response(for: opened.message, status: status), close: close)
    }

    private func answer(_ context: ChannelHandlerContext, _ opened: OpenedPreface, message: Preface.Message, close: Bool) {
        guard let bytes = try? Preface.sealResponse(message, keys: opened.keys) else {
            context.close(promise: nil)
            return
        }
        let write = context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(bytes: bytes)))
        if close {
            state = .done
            write.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
        }
    }

    private func terminate(_ context: ChannelHandlerContext, _ opened: OpenedPreface,
                           role: SessionRole, install: @Sendable (any Channel) throws -> Void) {
        state = .done
        answer(context, opened, status: .ok, close: false)
        let leftover = buffer
        buffer = nil
        observer.circuitOpened(relayed: false)
        let observer = self.observer
        // A session that reached us directly (a hop message, not a front's stop) learns the
        // address we see it from: its vantage for reachability (PROTOCOL.md sections 4 and 9).
        var role = role
        if case .hop = opened.message, let remote = remote(context) {
            role = role.addingObservedAddress(IPEchoService.encode(remote))
        }
        // The session lives in its own channel, so it can outlive this carrier (PROTOCOL.md 5.3).
        let session = SessionChannel(eventLoop: context.eventLoop, holdTime: resumable?.limits.holdTime ?? .seconds(60), registry: resumable)
        if case .hop = opened.message { session.directRemote = remote(context) }
        do {
            try session.pipeline.syncOperations.addHandler(SessionCryptoHandler(role: role, onFailure: { observer.sessionFailed(reason: $0.reason) }))
            try install(session)
            try session.installLink(in: context.channel, after: self, makeCurrent: true)
        } catch {
            session.close(promise: nil)
            context.close(promise: nil)
            return
        }
        context.channel.closeFuture.whenComplete { _ in observer.circuitClosed(relayed: false) }
        handOver(context, leftover: leftover)
    }

    /// Leaves the pipeline to `handler` (after passing it what was read behind the preface).
    private func takeOver(_ context: ChannelHandlerContext, _ opened: OpenedPreface, handler: any ChannelHandler) {
        state = .done
        answer(context, opened, status: .ok, close: false)
        let leftover = buffer
        buffer = nil
        do {
            try context.pipeline.syncOperations.addHandler(handler, position: .after(self))
        } catch {
            context.close(promise: nil)
            return
        }
        handOver(context, leftover: leftover)
    }

    private func handOver(_ context: ChannelHandlerContext, leftover: ByteBuffer?) {
        if let leftover, leftover.readableBytes > 0 {
            context.fireChannelRead(wrapInboundOut(leftover))
            context.fireChannelReadComplete()
        }
        context.pipeline.syncOperations.removeHandler(self, promise: nil)
        // A terminated session reads freely: yamux windows bound what the peer may send.
        context.channel.setOption(.autoRead, value: true).whenComplete { _ in }
        context.channel.read()
    }

    private func relay(_ context: ChannelHandlerContext, _ opened: OpenedPreface, to target: RelayTarget) {
        state = .relaying
        context.read()
        let purpose: CircuitPurpose
        if case .hop(let hop) = opened.message { purpose = hop.ext.purpose ?? .session } else { purpose = .session }
        let stop = StopMessage(type: .connect, peer: RelayPeer(id: AnonymousPeerID.random()), limit: nil,
                               ext: RelayExtension(ts: WallClock.now(), alliance: alliance, purpose: purpose))
        let inbound = context.channel
        let loop = context.eventLoop
        let observer = self.observer
        CircuitDialer.connect(on: loop, host: target.host, port: target.port, hopKEMPublicKey: target.kemPublicKey,
                              message: .stop(stop), timeout: Self.dialTimeout, localAddress: relaySource)
            .hop(to: loop)
            .assumeIsolated()
            .whenComplete { result in
                guard inbound.isActive else {
                    if case .success(let (outbound, _)) = result { outbound.close(promise: nil) }
                    return
                }
                switch result {
                case .failure:
                    self.answer(context, opened, status: .connectionFailed, close: true)
                case .success(let (outbound, _)):
                    self.spliceAfterAnswer(context, opened, outbound: outbound, observer: observer)
                }
            }
    }

    private func spliceAfterAnswer(_ context: ChannelHandlerContext, _ opened: OpenedPreface,
                                   outbound: any Channel, observer: any TransportObserver) {
        answer(context, opened, status: .ok, close: false)
        state = .done
        observer.circuitOpened(relayed: true)
        let lifetime = self.lifetime
        let kernel = splicer.map { splicer in
            KernelHandoff(splicer: splicer, handedOff: { lifetime.transfer() },
                          onBytes: { observer.relayedBytes($0) }, onEnd: { lifetime.end() })
        }
        let (inSide, outSide) = SpliceHandler.pair(onBytes: { observer.relayedBytes($0) }, kernel: kernel)
        do {
            try outbound.pipeline.syncOperations.addHandler(outSide)
            let pipelined = buffer
            buffer = nil
            if let pipelined, pipelined.readableBytes > 0 {
                outbound.writeAndFlush(pipelined, promise: nil)
            }
            try context.pipeline.syncOperations.addHandler(inSide, position: .after(self))
            context.pipeline.syncOperations.removeHandler(self, promise: nil)
        } catch {
            outbound.close(promise: nil)
            context.close(promise: nil)
            return
        }
        lifetime.onEnd { observer.circuitClosed(relayed: true) }
    }
}

/// The end of one inbound circuit, run once: when its channel closes, or — after the circuit
/// moved to the kernel relay — when the relay ends it (from the relay thread).
final class CircuitLifetime: @unchecked Sendable {
    private let lock = NSLock()
    private var actions: [@Sendable () -> Void] = []
    private var transferred = false
    private var ended = false

    func onEnd(_ action: @escaping @Sendable () -> Void) {
        let now: Bool = lock.withLock {
            if ended { return true }
            actions.append(action)
            return false
        }
        if now { action() }
    }

    /// The kernel relay owns the sockets now; the channel's close is not the circuit's end.
    func transfer() { lock.withLock { transferred = true } }

    func channelClosed() {
        guard !lock.withLock({ transferred }) else { return }
        end()
    }

    func end() {
        let run: [@Sendable () -> Void] = lock.withLock {
            guard !ended else { return [] }
            ended = true
            defer { actions = [] }
            return actions
        }
        for action in run { action() }
    }
}
