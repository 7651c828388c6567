import MontanaCrypto
import MontanaDirectory
import MontanaSession
import MontanaTransport
import MontanaWire
import NIOConcurrencyHelpers
import NIOCore

/// `/montana/peer-exchange/1.0.0`, the responder. Only members may exchange: the session's
/// initiator must be a live member of our store, or present in its first frame its own
/// endorsed record (`self_record`, the same identity the session proved) — that is how a
/// joining node is let in. Per peer at most `InboundExchangeLimiter`'s budget.
struct PeerExchangeService: StreamService {
    static let protocolID = "/montana/peer-exchange/1.0.0"
    let protocolName = PeerExchangeService.protocolID
    let directory: NodeDirectory

    func serve(_ stream: MuxStream, session: MuxHandler) {
        guard let peerKey = session.establishedEvent?.peer.identityPublicKey else { stream.reset(); return }
        let peer = NodeID(identityPublicKey: peerKey)
        guard directory.inbound.allow(peer) else {
            directory.metrics.gossipExchanges(outcome: "rate_limited")
            stream.reset()
            return
        }
        let store = directory.store
        let framed = FramedStream(stream: stream, maxMessageSize: SyncFrame.maxFrameBytes)
        let batch = SyncBatch(store: store, queue: directory.queue) { [metrics = directory.metrics] in metrics.directoryRejected($0) }
        var answered = false
        let alliance = directory.settings.alliance
        let metrics = directory.metrics
        framed.onMessage = { bytes in
            guard let frame = try? SyncFrame.decode(bytes) else { framed.reset(); batch.discard(); return }
            if !answered {
                answered = true
                if store.member(peer) == nil {
                    // Not (yet) a member here: its own endorsed record, for the identity it proved.
                    var admitted = false
                    if let own = frame.selfRecord {
                        switch RecordValidator.validate(own, alliance: alliance, now: WallClock.now()) {
                        case .success(let validated): admitted = validated.nodeID == peer && !validated.isWithdrawal
                        case .failure(let why): metrics.directoryRejected(why)
                        }
                    }
                    guard admitted else {
                        metrics.gossipExchanges(outcome: "not_member")
                        framed.reset()
                        return
                    }
                }
                if let own = frame.selfRecord, !batch.add(record: own) { framed.reset(); batch.discard(); return }
                let theirs = (try? DigestEntry.decode(frame.digest ?? [])) ?? []
                SyncSend.items(store, newerThan: theirs, to: framed)
                framed.send(SyncFrame(digest: DigestEntry.encode(store.digest()), end: 1).encode())
                return
            }
            if let r = frame.record, !batch.add(record: r) { framed.reset(); batch.discard(); return }
            if let a = frame.attestation, !batch.add(attestation: a) { framed.reset(); batch.discard(); return }
            if frame.end != nil {
                batch.flush()
                framed.finish()
                metrics.gossipExchanges(outcome: "served")
            }
        }
        framed.onEnd = { end in
            if end == .remoteFinished { framed.finish() } else { batch.discard() }
        }
        framed.start()
    }
}

/// `/montana/directory/1.0.0`: what clients read. The client sends one frame with its digest
/// (empty for everything) and `wait_seconds`; the node answers every record and attestation
/// newer than the digest, then `end`, then FIN. With `wait_seconds > 0` and nothing newer, the
/// answer waits (a long poll, ≤ 60 s) until the store changes, so a join reaches waiting clients
/// within the gossip time. Parked polls give back their control-stream slot and are bounded
/// node-wide by `DirectoryWaiters.limit`; beyond it the poll is answered at once.
struct DirectoryFetchService: StreamService {
    static let protocolID = "/montana/directory/1.0.0"
    let protocolName = DirectoryFetchService.protocolID
    let store: DirectoryStore
    let waiters: DirectoryWaiters

    func serve(_ stream: MuxStream, session: MuxHandler) {
        let framed = FramedStream(stream: stream, maxMessageSize: SyncFrame.maxFrameBytes)
        var asked = false
        framed.onMessage = { [store, waiters] bytes in
            guard !asked else { return }
            asked = true
            guard let frame = try? SyncFrame.decode(bytes), let theirs = try? DigestEntry.decode(frame.digest ?? []) else {
                framed.reset()
                return
            }
            let wait = min(Int(frame.waitSeconds ?? 0), 60)
            let answer: @Sendable () -> Void = {
                framed.stream.eventLoop?.execute {
                    SyncSend.items(store, newerThan: theirs, to: framed)
                    framed.send(SyncFrame(end: 1).encode())
                    framed.finish()
                }
            }
            let (records, attestations) = store.newer(than: theirs)
            let key = ObjectIdentifier(framed)
            if wait == 0 || !records.isEmpty || !attestations.isEmpty || stream.eventLoop == nil
                || !waiters.park(key, on: stream.eventLoop!, seconds: wait, answer: answer) {
                answer()
            } else {
                stream.releaseStreamBudget()
                framed.onEnd = { end in
                    if end != .remoteFinished { waiters.drop(key) }
                }
            }
        }
        framed.onEnd = { end in
            if end == .remoteFinished, !asked { framed.finish() }
        }
        framed.start()
    }
}

extension FramedStream: @unchecked Sendable {}

/// Parked directory long polls: woken all at once when the store changes, or each at its own
/// deadline. At most `limit` (4096) at once, node-wide.
final class DirectoryWaiters: Sendable {
    static let limit = 4096
    private struct Parked {
        let answer: @Sendable () -> Void
        let timer: Scheduled<Void>?
    }
    private let parked = NIOLockedValueBox<[ObjectIdentifier: Parked]>([:])

    var count: Int { parked.withLockedValue { $0.count } }

    let limit: Int

    init(limit: Int = DirectoryWaiters.limit) { self.limit = limit }

    /// False when full (answer now instead).
    func park(_ key: ObjectIdentifier, on loop: any EventLoop, seconds: Int, answer: @escaping @Sendable () -> Void) -> Bool {
        let limit = self.limit
        let admitted = parked.withLockedValue { table -> Bool in
            guard table.count < limit, table[key] == nil else { return false }
            table[key] = Parked(answer: answer, timer: nil)
            return true
        }
        guard admitted else { return false }
        let timer = loop.scheduleTask(in: .seconds(Int64(seconds))) { [weak self] () -> Void in self?.wake(key) }
        parked.withLockedValue { table in
            if let p = table[key] { table[key] = Parked(answer: p.answer, timer: timer) }
        }
        return true
    }

    private func wake(_ key: ObjectIdentifier) {
        let p = parked.withLockedValue { $0.removeValue(forKey: key) }
        p?.timer?.cancel()
        p?.answer()
    }

    func drop(_ key: ObjectIdentifier) {
        parked.withLockedValue { $0.removeValue(forKey: key) }?.timer?.cancel()
    }

    func wakeAll() {
        let all = parked.withLockedValue { table -> [Parked] in
            defer { table = [:] }
            return Array(table.values)
        }
        for p in all {
            p.timer?.cancel()
            p.answer()
        }
    }
}
