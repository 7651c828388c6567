import MontanaCrypto
import MontanaTransport
import NIOCore

/// Resuming an exit session whose carrier broke (PROTOCOL.md 5.3): the client tries fronts —
/// the warm reserve first, then the others by rank, the lost front last (a byte cap or a reset
/// may spare a fresh connection) — with a resume circuit to the **same exit**, one at a time,
/// for at most `resumeWindow`. The streams and the apps' connections wait meanwhile; on success
/// no byte is lost or repeated. If the exit no longer has the session, or no front works in
/// time, the session is closed (its streams reset) and the next connection builds a new one.
extension CircuitManager {
    /// How long the client tries to resume before it gives the session up.
    public static let resumeWindow = TimeAmount.seconds(20)

    func carrierLost(_ session: ExitSession, reason: String) {
        loop.preconditionInEventLoop()
        guard isInUse(session), !session.resuming else { return }
        session.resuming = true
        let lost = session.front
        if lost.nodeID != session.exit.nodeID {
            recordFront(lost, reached: false, error: "a session's carrier was lost: \(reason)", endpoint: lost.endpoint(session.carrier))
        }
        note(.frontLost, exit: session.exit, from: lost.label, reason: reason)
        logger.notice("session carrier lost; resuming through another front",
                      metadata: ["exit": "\(session.exit.label)", "front": "\(lost.label)", "reason": "\(reason)"])
        var candidates = frontCandidates(for: session.exit).filter { $0.nodeID != lost.nodeID }
        candidates.append(lost)
        let detachedAt = NIODeadline.now()
        resumeAttempt(session, lost: lost, reason: reason, candidates: candidates, tried: [], answered: false, detachedAt: detachedAt)
    }

    /// `tried` lists each failed attempt; `answered`: some front answered (the carrier works).
    private func resumeAttempt(_ session: ExitSession, lost: AllianceMember, reason: String, candidates: [AllianceMember],
                               tried: [String], answered: Bool, detachedAt: NIODeadline) {
        guard let channel = session.session, channel.isActive else { return }
        guard let front = candidates.first, NIODeadline.now() - detachedAt < Self.resumeWindow else {
            if !answered && !tried.isEmpty {
                // Nothing on this network reaches a front: say so, as a new session would.
                let why = unreachableMessage(session.exit, tried: tried)
                session.unreachableFromHere = why
                lastFailure[session.exit.nodeID] = why
            }
            giveUp(session, why: tried.isEmpty ? "no front to resume through" : "tried \(tried.count): " + tried.joined(separator: "; "))
            return
        }
        let started = NIODeadline.now()
        // The carrier is independent of the session: it may resume over another profile.
        guard let endpoint = carrierLadder(for: front).first else {
            resumeAttempt(session, lost: lost, reason: reason, candidates: Array(candidates.dropFirst()), tried: tried,
                          answered: answered, detachedAt: detachedAt)
            return
        }
        SessionResumer.resume(channel, exit: session.exit.nodeID, via: front.target, alliance: alliance,
                              localAddress: options.sourceAddress, connectTimeout: Self.frontConnectTimeout,
                              carrier: carrierDial(endpoint))
            .hop(to: loop).assumeIsolated().whenComplete { [self] result in
                switch result {
                case .success:
                    session.resuming = false
                    session.front = front
                    session.carrier = endpoint.profile
                    recordFront(front, reached: true, rttMilliseconds: Self.milliseconds(since: started), endpoint: endpoint)
                    // From when the path broke (acknowledgements stopped, or the carrier closed).
                    let stall = Self.elapsed(since: channel.brokenSince, now: NIODeadline.now().uptimeNanoseconds) / 1_000_000
                    session.resumptions += 1
                    session.lastStallMilliseconds = stall
                    note(.resumed, exit: session.exit, from: lost.label, to: front.label, reason: reason, stallMilliseconds: stall)
                    logger.info("session resumed", metadata: ["exit": "\(session.exit.label)", "front": "\(front.label)", "stall_ms": "\(stall)"])
                    if sessions[session.exit.nodeID] === session { chooseReserve(for: session) }
                case .failure(let error):
                    if let refusal = error as? SessionResumeError, case .refused = refusal {
                        giveUp(session, why: "\(refusal)")
                        return
                    }
                    let reached = Self.isAnswerFromFront(error) || error is SessionResumeError
                    recordFront(front, reached: reached, error: reached ? nil : Self.carrierFailure(error), endpoint: endpoint)
                    let line = "\(front.label) \(endpoint.host):\(endpoint.port) over \(FrontReachability.profileName(endpoint.profile)): \(Self.carrierFailure(error))"
                    resumeAttempt(session, lost: lost, reason: reason, candidates: Array(candidates.dropFirst()), tried: tried + [line],
                                  answered: answered || reached, detachedAt: detachedAt)
                }
            }
    }

    private func giveUp(_ session: ExitSession, why: String) {
        session.resuming = false
        session.gaveUp = true
        note(.resumeFailed, exit: session.exit, from: session.front.label, reason: why)
        logger.notice("could not resume the session; its connections are reset", metadata: ["exit": "\(session.exit.label)", "why": "\(why)"])
        session.channel.close(promise: nil)
    }
}
