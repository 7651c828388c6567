import MontanaCrypto
import MontanaTransport
import MontanaWire
import NIOCore

/// One re-steer or loss, for `montana status` (`steering.events`). Node labels only: no
/// destinations, no client address, and times as "seconds ago" from the event loop's clock.
public struct SteeringEvent: Sendable {
    public enum Kind: String, Sendable {
        /// A session to an exit was built (through `toFront`).
        case newSession = "new_session"
        /// The session's carrier closed while it was in use (`fromFront` was carrying it).
        case frontLost = "front_lost"
        /// A warm reserve front was chosen (or re-chosen after its own session failed).
        case reserveChosen = "reserve_chosen"
        /// The reserve's control session failed; `reason` says how.
        case reserveFailed = "reserve_failed"
        /// The session lost its carrier (`fromFront`) and was resumed through `toFront`: same
        /// exit, same streams; `stallMilliseconds` is how long no byte arrived.
        case resumed = "resumed"
        /// No front could resume the session within the window (`reason` lists the attempts); its
        /// streams were reset and the next connection builds a new session.
        case resumeFailed = "resume_failed"
    }

    public static let maxKept = 64

    public let kind: Kind
    public let exit: String
    public let fromFront: String
    public let toFront: String
    public let reason: String
    public let stallMilliseconds: UInt64?
    /// Event-loop uptime (ns).
    public let at: UInt64
}

/// The warm reserve of an exit's session: a control session (throwaway identity, no egress)
/// kept up to another front — a different operator and /16 than the active one where the
/// directory has one — so that the next circuit to the same exit goes through a front this
/// network let through a moment ago. yamux keepalive pings it every 30 s and closes it after
/// 95 s of silence; a failed reserve is marked in the reachability record and re-chosen.
/// Confined to the client's event loop, like the manager that holds it.
final class ReserveFront: @unchecked Sendable {
    let front: AllianceMember
    var session: DialedSession?

    init(front: AllianceMember) { self.front = front }

    var isUp: Bool { session?.channel.isActive ?? false }

    func close() {
        session?.close()
        session = nil
    }
}

extension CircuitManager {
    func note(_ kind: SteeringEvent.Kind, exit: AllianceMember, from: String = "", to: String = "", reason: String = "",
              stallMilliseconds: UInt64? = nil) {
        let event = SteeringEvent(kind: kind, exit: exit.label, fromFront: from, toFront: to, reason: reason,
                                  stallMilliseconds: stallMilliseconds, at: NIODeadline.now().uptimeNanoseconds)
        events.append(event)
        onSteeringEvent?(event)
        if events.count > SteeringEvent.maxKept { events.removeFirst(events.count - SteeringEvent.maxKept) }
    }

    /// A session to `session.exit` is up: record it, watch its carrier, and (re)choose its reserve.
    func sessionEstablished(_ session: ExitSession, milliseconds: UInt64, primary: Bool = true) {
        note(.newSession, exit: session.exit, to: session.front.label, reason: primary ? "" : "another session: every session to the exit carries \(Self.streamsPerSession) streams",
             stallMilliseconds: milliseconds)
        session.session?.onCarrierLost = { [weak self, weak session] reason in
            guard let self, let session else { return }
            self.carrierLost(session, reason: reason)
        }
        session.onStreamFinished = { [weak self, weak session] in
            guard let self, let session else { return }
            self.streamEnded(on: session)
        }
        session.channel.closeFuture.assumeIsolatedUnsafeUnchecked().whenComplete { [self] _ in
            loop.execute { [self] in sessionClosed(session) }
        }
        if primary { chooseReserve(for: session) }
    }

    private func sessionClosed(_ session: ExitSession) {
        defer { serveWaiting(session.exit.nodeID) }
        // An overflow session: its connections were reset with it; the primary carries on.
        if removeOverflow(session) || session.retired { return }
        guard forgetSession(session) else { return }  // closed by us, or already replaced
        if session.gaveUp {
            if !promoteOverflow(session.exit.nodeID) { _ = self.session(to: session.exit) }
            return
        }
        note(.frontLost, exit: session.exit, from: session.front.label, reason: "the session closed")
        // Suspect until it answers again: the reserve (another front) is the better bet now.
        if session.front.nodeID != session.exit.nodeID {
            recordFront(session.front, reached: false, error: "the carrier of a session closed", endpoint: session.front.endpoint(session.carrier))
        }
        logger.notice("session to the exit lost; the next connection goes through the reserve",
                      metadata: ["exit": "\(session.exit.label)", "front": "\(session.front.label)",
                                 "reserve": "\(reserves[session.exit.nodeID]?.front.label ?? "none")"])
        // Another session to the exit takes over; else warm the replacement now, so the apps'
        // next connection finds it ready.
        if !promoteOverflow(session.exit.nodeID) { _ = self.session(to: session.exit) }
    }

    /// Among the other fronts of an exit, the one to hold warm: not the active front, not known
    /// unreachable from here, preferring another operator, then another /16, then rank.
    private func reserveCandidate(for session: ExitSession) -> AllianceMember? {
        let active = session.front
        let activeGroup = Self.sourceGroup(ofHost: active.host)
        let candidates = frontCandidates(for: session.exit).filter {
            $0.nodeID != active.nodeID && $0.nodeID != session.exit.nodeID && reachability.observation($0.nodeID)?.state != .unreachable
        }
        func score(_ m: AllianceMember) -> Int {
            var s = 0
            if m.operatorLabel == nil || m.operatorLabel != active.operatorLabel { s += 2 }
            if Self.sourceGroup(ofHost: m.host) != activeGroup { s += 1 }
            return s
        }
        return candidates.enumerated().max { a, b in
            let sa = score(a.element), sb = score(b.element)
            return sa != sb ? sa < sb : a.offset > b.offset
        }?.element
    }

    /// "a.b" for a dotted IPv4 host, the host itself otherwise.
    static func sourceGroup(ofHost host: String) -> String {
        let parts = host.split(separator: ".")
        return parts.count == 4 && parts.allSatisfy({ UInt8($0) != nil }) ? "\(parts[0]).\(parts[1])" : host
    }

    func chooseReserve(for session: ExitSession) {
        let exitID = session.exit.nodeID
        guard let pick = reserveCandidate(for: session) else {
            dropReserve(exitID)
            return
        }
        if let current = reserves[exitID], current.front.nodeID == pick.nodeID, current.isUp || current.session == nil { return }
        dropReserve(exitID)
        let reserve = ReserveFront(front: pick)
        reserves[exitID] = reserve
        note(.reserveChosen, exit: session.exit, from: session.front.label, to: pick.label)
        dialControl(to: pick, timeout: .seconds(10)).whenComplete { [self] result in
            guard reserves[exitID] === reserve else {
                if case .success(let s) = result { s.close() }
                return
            }
            switch result {
            case .success(let dialed):
                reserve.session = dialed
                dialed.channel.closeFuture.assumeIsolatedUnsafeUnchecked().whenComplete { [self] _ in
                    loop.execute { [self] in
                        guard reserves[exitID] === reserve else { return }
                        recordFront(pick, reached: false, error: "its control session closed", steers: false)
                        reserveLost(reserve, exitID: exitID, reason: "its control session closed")
                    }
                }
            case .failure(let error):
                reserveLost(reserve, exitID: exitID, reason: Self.carrierFailure(error))
            }
        }
    }

    /// A control session (a throwaway identity, no egress) to `front`, its outcome recorded.
    private func dialControl(to front: AllianceMember, timeout: TimeAmount) -> EventLoopFuture<DialedSession> {
        guard let identity = try? IdentityKey.generate() else { return loop.makeFailedFuture(CircuitError.carrierClosed) }
        let started = NIODeadline.now()
        // Over the front's ladder's first carrier, as circuits go (a T3-only client sends no T0).
        guard let endpoint = carrierLadder(for: front).first else {
            return loop.makeFailedFuture(CarrierError.missingParams("\(front.label) offers none of the carriers this client uses"))
        }
        return SessionDialer.connect(on: loop, to: front.target, identity: identity, alliance: alliance, localAddress: options.sourceAddress,
                                     timeout: timeout, carrier: carrierDial(endpoint))
            .always { [self] result in recordControlDial(front, started: started, result: result.map(\.established.peer.payload), endpoint: endpoint) }
    }

    private func reserveLost(_ reserve: ReserveFront, exitID: NodeID, reason: String) {
        guard reserves[exitID] === reserve else { return }
        reserves[exitID] = nil
        reserve.close()
        guard let session = liveSession(exitID) else { return }
        note(.reserveFailed, exit: session.exit, from: reserve.front.label, reason: reason)
        // The failed front is now ranked unreachable, so the next pick is another one (or none).
        chooseReserve(for: session)
    }

    /// One feeler probe: a control session (throwaway identity, no egress) to the front this
    /// client knows least about from here — never tried first, then the one tried longest ago —
    /// recorded like any attempt, then closed. One at a time; the caller sets the pace.
    public func feelOneFront() {
        loop.preconditionInEventLoop()
        guard !feeling else { return }
        let fronts = members.filter(\.isFront)
        let pick = fronts.min { a, b in
            let oa = reachability.observation(a.nodeID)?.lastAttempt ?? 0, ob = reachability.observation(b.nodeID)?.lastAttempt ?? 0
            return oa < ob
        }
        guard let pick else { return }
        feeling = true
        dialControl(to: pick, timeout: .seconds(5)).whenComplete { [self] result in
            feeling = false
            if case .success(let dialed) = result { dialed.close() }
        }
    }

    func dropReserve(_ exitID: NodeID) {
        reserves.removeValue(forKey: exitID)?.close()
    }
}
