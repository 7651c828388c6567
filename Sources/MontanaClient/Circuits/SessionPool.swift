import MontanaCrypto
import MontanaTransport
import NIOCore

/// A session being built to an exit, and how many connections were promised a stream on it
/// (each opens one when it is up: at most `CircuitManager.streamsPerSession`).
final class PendingSession {
    let future: EventLoopFuture<ExitSession>
    var claimed = 1

    init(future: EventLoopFuture<ExitSession>) { self.future = future }
}

/// A connection waiting for a stream: every session to its exit is full and no more may be built.
final class StreamWaiter {
    let exit: AllianceMember
    let promise: EventLoopPromise<ExitSession>
    var timer: Scheduled<Void>?

    init(exit: AllianceMember, promise: EventLoopPromise<ExitSession>) {
        self.exit = exit
        self.promise = promise
    }
}

/// Sessions per exit: one app connection is one stream, and an exit takes at most
/// `MAX_STREAMS_PER_SESSION` (256, PROTOCOL.md 7.4) on one session. When every session to an
/// exit carries that many, the next connection gets another session to the same exit (at most
/// `sessionsPerExit`, which with 256 each is the exit's default of 1,024 streams per account);
/// past that it waits, in order, for a stream to end (at most `streamWaitTimeout`, at most
/// `maxWaitingConnections` waiting in all). Apps never see the stream limit as a failure.
/// The first session is the *primary*: the warm reserve and resumption status follow it; the
/// others ("overflow") resume like it when their carrier breaks, and close after
/// `overflowIdleTime` without streams.
extension CircuitManager {
    /// Streams the client opens on one session (the exit's default limit, PROTOCOL.md 7.4).
    public static let streamsPerSession = 256
    /// Sessions to one exit at once: 4 × 256 = the exit's default 1,024 streams per account
    /// (`[limits] streams_per_account`; it also allows 8 sessions per account).
    public static let sessionsPerExit = 4
    /// Connections waiting for a stream, over all exits; the next one fails at once (`busy`).
    public static let maxWaitingConnections = 4096
    /// How long a connection waits for a stream before it fails (`busy`).
    public static let streamWaitTimeout = TimeAmount.seconds(30)
    /// An overflow session without streams this long is closed (the primary stays).
    public static let overflowIdleTime = TimeAmount.seconds(30)

    /// The live sessions to an exit, the primary first.
    func liveSessions(_ exit: NodeID) -> [ExitSession] {
        ((sessions[exit].map { [$0] } ?? []) + (overflow[exit] ?? [])).filter(\.isActive)
    }

    /// A session to `exit` with a free stream, building one (or joining one being built) if none
    /// has; when `sessionsPerExit` are up and full, the connection waits for a stream to end.
    public func session(to exit: AllianceMember) -> EventLoopFuture<ExitSession> {
        loop.preconditionInEventLoop()
        if let ready = roomNow(for: exit) { return ready }
        guard waitingCount < Self.maxWaitingConnections else {
            return loop.makeFailedFuture(CircuitManagerError.busy(
                "\(waitingCount) connections are already waiting for a stream; try again when some have finished"))
        }
        let waiter = StreamWaiter(exit: exit, promise: loop.makePromise())
        waiting[exit.nodeID, default: []].append(waiter)
        waitingCount += 1
        waiter.timer = loop.assumeIsolated().scheduleTask(in: Self.streamWaitTimeout) { [self] in
            guard removeWaiter(waiter) else { return }
            waiter.promise.fail(CircuitManagerError.busy(
                "every session to exit \(exit.label) carries \(Self.streamsPerSession) streams (\(Self.sessionsPerExit) sessions); "
                    + "none ended within \(Self.streamWaitTimeout.nanoseconds / 1_000_000_000) s"))
        }
        return waiter.promise.futureResult
    }

    /// A live session with a free stream, a build with room for one more connection, or a new
    /// build while fewer than `sessionsPerExit` exist; nil when the connection has to wait.
    private func roomNow(for exit: AllianceMember) -> EventLoopFuture<ExitSession>? {
        if let s = liveSessions(exit.nodeID).first(where: { $0.activeStreams < $0.streamLimit }) {
            return loop.makeSucceededFuture(s)
        }
        if let p = building[exit.nodeID]?.first(where: { $0.claimed < Self.streamsPerSession }) {
            p.claimed += 1
            return p.future
        }
        guard liveSessions(exit.nodeID).count + (building[exit.nodeID]?.count ?? 0) < Self.sessionsPerExit else { return nil }
        if let problem = options.passCheck?() { return loop.makeFailedFuture(CircuitManagerError.passRefused(problem)) }
        return startSession(to: exit)
    }

    /// Builds one more session to `exit`: the primary when there is none, else an overflow one.
    private func startSession(to exit: AllianceMember) -> EventLoopFuture<ExitSession> {
        let future = build(to: exit, candidates: frontCandidates(for: exit), lastError: nil, frontAnswered: false, tried: [])
        let pendingSession = PendingSession(future: future)
        building[exit.nodeID, default: []].append(pendingSession)
        let started = NIODeadline.now()
        // Registered first, so it runs before the callbacks of the connections that wait for it.
        future.assumeIsolated().whenComplete { [self] result in
            building[exit.nodeID]?.removeAll { $0 === pendingSession }
            if building[exit.nodeID]?.isEmpty == true { building[exit.nodeID] = nil }
            switch result {
            case .success(let s):
                let primary = sessions[exit.nodeID].map { !$0.isActive } ?? true
                if primary { sessions[exit.nodeID] = s } else { overflow[exit.nodeID, default: []].append(s) }
                lastFailure[exit.nodeID] = nil
                let ms = Self.milliseconds(since: started)
                measuredRTT[exit.nodeID] = ms
                sessionEstablished(s, milliseconds: ms, primary: primary)
            case .failure(let error):
                lastFailure[exit.nodeID] = "\(error)"
                if liveSessions(exit.nodeID).isEmpty { dropReserve(exit.nodeID) }
            }
            // After the promised connections have opened their streams.
            loop.execute { [self] in serveWaiting(exit.nodeID) }
        }
        return future
    }

    /// Hands free streams to waiting connections, oldest first.
    func serveWaiting(_ exit: NodeID) {
        while let waiter = waiting[exit]?.first, let ready = roomNow(for: waiter.exit) {
            _ = removeWaiter(waiter)
            waiter.timer?.cancel()
            // A ready session completes at once: the connection opens its stream before the next turn.
            waiter.promise.completeWith(ready)
        }
    }

    private func removeWaiter(_ waiter: StreamWaiter) -> Bool {
        let id = waiter.exit.nodeID
        guard let i = waiting[id]?.firstIndex(where: { $0 === waiter }) else { return false }
        waiting[id]!.remove(at: i)
        if waiting[id]!.isEmpty { waiting[id] = nil }
        waitingCount -= 1
        return true
    }

    func failAllWaiting(_ error: CircuitManagerError) {
        let all = waiting.values.joined()
        waiting = [:]
        waitingCount = 0
        for w in all {
            w.timer?.cancel()
            w.promise.fail(error)
        }
    }

    /// A stream of `session` ended: a waiting connection may take it; an overflow session left
    /// without streams is closed after `overflowIdleTime`.
    func streamEnded(on session: ExitSession) {
        let exit = session.exit.nodeID
        if waiting[exit] != nil { serveWaiting(exit) }
        guard session.activeStreams == 0, overflow[exit]?.contains(where: { $0 === session }) == true else { return }
        loop.assumeIsolated().scheduleTask(in: Self.overflowIdleTime) { [self] in
            guard session.activeStreams == 0, !session.resuming, removeOverflow(session) else { return }
            session.retired = true
            logger.debug("closing an idle overflow session", metadata: ["exit": "\(session.exit.label)"])
            session.mux.close()
        }
    }

    /// Removes an overflow session from its exit's list; false if it is not one.
    @discardableResult
    func removeOverflow(_ session: ExitSession) -> Bool {
        let exit = session.exit.nodeID
        guard let i = overflow[exit]?.firstIndex(where: { $0 === session }) else { return false }
        overflow[exit]!.remove(at: i)
        if overflow[exit]!.isEmpty { overflow[exit] = nil }
        return true
    }

    /// The primary session closed: the first live overflow session takes its place (true), so
    /// the reserve follows it and no new session is needed.
    func promoteOverflow(_ exit: NodeID) -> Bool {
        guard let next = overflow[exit]?.first(where: \.isActive) else { return false }
        removeOverflow(next)
        sessions[exit] = next
        chooseReserve(for: next)
        return true
    }

    /// Whether `session` is one of the sessions in use to its exit (primary or overflow).
    func isInUse(_ session: ExitSession) -> Bool {
        liveSessions(session.exit.nodeID).contains { $0 === session }
    }
}
