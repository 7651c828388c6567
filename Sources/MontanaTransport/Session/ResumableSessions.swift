import MontanaCrypto
import NIOConcurrencyHelpers
import NIOCore

/// A responder's (an exit's) table of resumable sessions, node-wide and thread-safe: found by
/// session id when a resume request arrives on any carrier (PROTOCOL.md 5.3). Bounded: at most
/// `maxSessions` registered (more simply cannot resume), at most `maxDetached` waiting without a
/// carrier and `detachedBudget` bytes of their unacknowledged data — past either the session that
/// has waited longest is closed. Each session remembers the last `noncesKept` request nonces, so a
/// captured request replayed (by a front, or anyone on the path) is refused.
public final class ResumableSessions: Sendable {
    public struct Limits: Sendable {
        public var maxSessions = 65_536
        public var maxDetached = 1_024
        public var detachedBudget = 256 * 1024 * 1024
        public var holdTime = TimeAmount.seconds(60)
        public init() {}
    }

    public static let noncesKept = 16

    private struct Entry {
        let session: SessionChannel
        let secret: [UInt8]
        var nonces: [[UInt8]] = []
        /// Order of detachment (nil while a carrier is attached) and the data then kept.
        var detachedSeq: UInt64?
        var retained = 0
    }

    private struct Table {
        var entries: [[UInt8]: Entry] = [:]
        var detached = 0
        var detachedBytes = 0
        var seq: UInt64 = 0
        /// Counters for status and metrics.
        var resumed = 0
        var refused = 0
        var evicted = 0
    }

    public let limits: Limits
    private let table = NIOLockedValueBox(Table())

    public init(limits: Limits = Limits()) { self.limits = limits }

    /// What a resume request found.
    public enum Lookup {
        case found(SessionChannel)
        /// No such session, a bad MAC, or a replayed nonce: all get the same refusal.
        case refused
    }

    public struct Counts: Sendable, Equatable {
        public let registered: Int
        public let detached: Int
        public let detachedBytes: Int
        public let resumed: Int
        public let refused: Int
        public let evicted: Int
    }

    public var counts: Counts {
        table.withLockedValue { t in
            Counts(registered: t.entries.count, detached: t.detached, detachedBytes: t.detachedBytes, resumed: t.resumed,
                   refused: t.refused, evicted: t.evicted)
        }
    }

    func register(_ id: [UInt8], secret: [UInt8], session: SessionChannel) -> Bool {
        table.withLockedValue { t in
            guard t.entries.count < limits.maxSessions, t.entries[id] == nil else { return false }
            t.entries[id] = Entry(session: session, secret: secret)
            return true
        }
    }

    func unregister(_ id: [UInt8]) {
        table.withLockedValue { t in
            guard let e = t.entries.removeValue(forKey: id) else { return }
            if e.detachedSeq != nil {
                t.detached -= 1
                t.detachedBytes -= e.retained
            }
        }
    }

    /// The session lost its carrier holding `retained` bytes; returns the sessions to close to
    /// stay within the detached bounds (oldest detachment first, possibly this one).
    func detached(_ id: [UInt8], retained: Int) -> [SessionChannel] {
        table.withLockedValue { t in
            guard var e = t.entries[id], e.detachedSeq == nil else { return [] }
            t.seq += 1
            e.detachedSeq = t.seq
            e.retained = retained
            t.entries[id] = e
            t.detached += 1
            t.detachedBytes += retained
            var evict: [SessionChannel] = []
            while t.detached > limits.maxDetached || t.detachedBytes > limits.detachedBudget {
                guard let (oldID, old) = t.entries.filter({ $0.value.detachedSeq != nil }).min(by: { $0.value.detachedSeq! < $1.value.detachedSeq! })
                else { break }
                t.entries[oldID] = nil
                t.detached -= 1
                t.detachedBytes -= old.retained
                t.evicted += 1
                evict.append(old.session)
            }
            return evict
        }
    }

    func attached(_ id: [UInt8]) {
        table.withLockedValue { t in
            guard var e = t.entries[id], e.detachedSeq != nil else { return }
            e.detachedSeq = nil
            t.detached -= 1
            t.detachedBytes -= e.retained
            e.retained = 0
            t.entries[id] = e
        }
    }

    /// Finds the session a request names and checks its MAC and that its nonce is new. The MAC
    /// is checked in constant time; unknown, forged and replayed requests are indistinguishable.
    public func lookup(_ request: Resumption.Request) -> Lookup {
        table.withLockedValue { t in
            guard var e = t.entries[request.sessionID], Resumption.verify(request, resumeSecret: e.secret),
                  !e.nonces.contains(request.nonce) else {
                t.refused += 1
                return .refused
            }
            e.nonces.append(request.nonce)
            if e.nonces.count > Self.noncesKept { e.nonces.removeFirst(e.nonces.count - Self.noncesKept) }
            t.entries[request.sessionID] = e
            t.resumed += 1
            return .found(e.session)
        }
    }
}

/// The responder's first handler on a circuit with purpose `resume`: reads the one request
/// (`u16 BE len ‖ 02 ‖ …`, exactly 89 bytes), finds and authenticates the session, and hands the
/// carrier to it; anything else gets the unauthenticated refusal and a close. 10 s to send it.
final class ResumeResponderHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    static let timeout = TimeAmount.seconds(10)

    private let registry: ResumableSessions
    private let observer: any TransportObserver
    private var buffer: ByteBuffer?
    private var done = false
    private var timer: Scheduled<Void>?

    init(registry: ResumableSessions, observer: any TransportObserver) {
        self.registry = registry
        self.observer = observer
    }

    func handlerAdded(context: ChannelHandlerContext) {
        timer = context.eventLoop.assumeIsolated().scheduleTask(in: Self.timeout) { [weak self] in
            guard let self, !self.done else { return }
            self.done = true
            context.close(promise: nil)
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) { timer?.cancel() }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !done else { return }
        let bytes: [UInt8]
        switch ResumeFraming.read(unwrapInboundIn(data), into: &buffer, size: Resumption.requestSize) {
        case .needMore: return
        case .wrongLength:
            refuse(context)
            return
        case .message(let message, _): bytes = message
        }
        done = true
        timer?.cancel()
        guard let request = try? Resumption.parseRequest(bytes), case .found(let session) = registry.lookup(request) else {
            refuse(context)
            return
        }
        let nonce = ResumeFraming.nonce()
        do {
            let link = try session.installLink(in: context.channel, after: self, makeCurrent: false)
            context.pipeline.syncOperations.removeHandler(self, promise: nil)
            observer.sessionResumed()
            session.onLoop { $0.resume(over: link, request: request, nonce: nonce) }
        } catch {
            context.close(promise: nil)
        }
    }

    private func refuse(_ context: ChannelHandlerContext) {
        done = true
        buffer = nil
        timer?.cancel()
        observer.sessionFailed(reason: "resume_refused")
        context.writeAndFlush(wrapOutboundOut(ResumeFraming.frame(Resumption.refuse(.unknownSession), context.channel.allocator))).assumeIsolated().whenComplete { _ in context.close(promise: nil) }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let e = event as? ChannelEvent, e == .inputClosed, !done {
            done = true
            context.close(promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }
}
