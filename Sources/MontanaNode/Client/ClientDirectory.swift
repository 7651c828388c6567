import Foundation
import Logging
import MontanaClient
import MontanaCrypto
import MontanaDirectory
import MontanaSession
import MontanaTransport
import MontanaWire
import NIOConcurrencyHelpers
import NIOCore

/// The client's view of the alliance: a directory store (SQLite cache, so a restart starts from
/// what it knew), filled over `/montana/directory/1.0.0` from any reachable front. The client
/// keeps one control session to a front open and long-polls it (`wait_seconds = 25`): the
/// front answers as soon as its own store changes, so a member that joins reaches the client
/// within the gossip time. Every record and attestation is verified here again (signatures,
/// endorsement by the alliance's membership key) — a front cannot invent members.
///
/// The directory session uses a throwaway identity, not the account: fronts cannot tie
/// directory reads to an account.
public final class ClientDirectory: @unchecked Sendable {
    public static let pollWait: UInt64 = 25
    public static let minPollGap = TimeAmount.milliseconds(500)
    public static let maxBackoff = TimeAmount.seconds(30)

    public let alliance: AllianceDocument
    public let store: DirectoryStore
    private let loop: any EventLoop
    private let identity: IdentityKey
    private let logger: Logger
    private let options: CircuitOptions
    private let queue = DispatchQueue(label: "montana.client.directory")
    /// Called on `loop` with the members after every change.
    public var onUpdate: (([AllianceMember]) -> Void)?
    /// Each dial of a front for the directory: the front, when the dial started, and the
    /// responder's msg2 payload (it carries the observed-address TLV) or the error. Feeds the
    /// client's reachability record (`CircuitManager.recordControlDial`). Called on `loop`.
    public var onFrontAttempt: ((RelayTarget, NIODeadline, Result<[UInt8], any Error>) -> Void)?
    /// After each directory read, with the session it used (a control session straight to a
    /// front): the client exchanges its reachability reports there. Called on `loop`.
    public var onRead: ((DialedSession) -> Void)?

    // Loop-confined.
    private var bootstrap: [MemberLink]
    private var session: DialedSession?
    private var front: NodeID?
    private var failures: [NodeID: Int] = [:]
    private var backoff = TimeAmount.seconds(1)
    private var stopped = false
    public private(set) var lastRefresh: UInt64 = 0
    public private(set) var lastError: String?

    public init(alliance: AllianceDocument, bootstrap: [MemberLink], cachePath: String?, loop: any EventLoop,
                options: CircuitOptions, logger: Logger) throws {
        self.alliance = alliance
        self.bootstrap = bootstrap
        self.loop = loop
        self.options = options
        self.logger = logger
        identity = try IdentityKey.generate()
        store = try DirectoryStore(path: cachePath, alliance: alliance)
    }

    /// Members from the cache at once, then polling.
    public func start() {
        loop.execute { [self] in
            publish()
            poll()
        }
    }

    public func stop() {
        loop.execute { [self] in
            stopped = true
            session?.close()
        }
    }

    /// New bootstrap links (a refreshed subscription).
    public func update(bootstrap links: [MemberLink]) {
        loop.execute { self.bootstrap = links }
    }

    public var frontLabel: String? { front?.short }

    /// The members as the circuit manager wants them: live records with a T0 endpoint, exits
    /// marked corroborated or advisory.
    public func members(now: UInt64 = WallClock.now()) -> [AllianceMember] {
        store.members(now: now).compactMap { m in
            guard var member = NodeDirectory.allianceMember(m) else { return nil }
            member.corroborated = m.corroboration.state == .corroborated
            member.operatorLabel = m.operatorLabel
            return member
        }
    }

    /// The `/directory` admin document as of the last `publish()`: what the proxy uses, never a
    /// store change the circuit manager has not seen yet (a withdrawn exit must not show as gone
    /// while the proxy can still pick it).
    private let published = NIOLockedValueBox<[String: any Sendable]?>(nil)

    /// The admin `/directory` document: the members the circuit manager was last given.
    public func document() -> [String: any Sendable] {
        published.withLockedValue { $0 } ?? DirectoryView.document(store: store, alliance: alliance)
    }

    private func publish() {
        onUpdate?(members())
        let document = DirectoryView.document(store: store, alliance: alliance)
        published.withLockedValue { $0 = document }
    }

    /// Fronts to read the directory from: live fronts and bootstrap links, least failed first,
    /// and among equals fronts that are not exits first (a directory read shows the front this
    /// client's address; better a node that never carries its egress).
    private func candidates() -> [RelayTarget] {
        var out: [NodeID: RelayTarget] = [:]
        for link in bootstrap {
            out[link.nodeID] = RelayTarget(nodeID: link.nodeID, kemPublicKey: link.kemPublicKey, host: link.host, port: Int(link.port))
        }
        let known = members()
        for m in known where m.isFront { out[m.nodeID] = m.target }
        let exits = Set(known.filter(\.isExit).map(\.nodeID))
        return out.values.shuffled().sorted { a, b in
            let fa = failures[a.nodeID] ?? 0, fb = failures[b.nodeID] ?? 0
            if fa != fb { return fa < fb }
            return !exits.contains(a.nodeID) && exits.contains(b.nodeID)
        }
    }

    private func poll() {
        guard !stopped else { return }
        if let session, session.channel.isActive {
            ask(session, wait: lastRefresh == 0 ? 0 : Self.pollWait)
            return
        }
        let targets = candidates()
        guard !targets.isEmpty else {
            lastError = "no front to read the directory from (the subscription lists no bootstrap front)"
            retryLater()
            return
        }
        connect(targets[...])
    }

    private func connect(_ targets: ArraySlice<RelayTarget>) {
        guard let target = targets.first else {
            retryLater()
            return
        }
        let started = NIODeadline.now()
        SessionDialer.connect(on: loop, to: target, identity: identity, alliance: alliance.uuidBytes,
                              localAddress: options.sourceAddress, timeout: .seconds(10))
            .whenComplete { [self] result in
                switch result {
                case .failure(let error):
                    onFrontAttempt?(target, started, .failure(error))
                    failures[target.nodeID, default: 0] += 1
                    lastError = "front \(target.nodeID.short): \(error)"
                    logger.info("directory: front unreachable", metadata: ["front": "\(target.nodeID.short)", "error": "\(error)"])
                    connect(targets.dropFirst())
                case .success(let s):
                    onFrontAttempt?(target, started, .success(s.established.peer.payload))
                    session = s
                    front = target.nodeID
                    failures[target.nodeID] = 0
                    ask(s, wait: lastRefresh == 0 ? 0 : Self.pollWait)
                }
            }
    }

    private func ask(_ session: DialedSession, wait: UInt64) {
        guard let stream = session.mux.openStream(protocol: DirectoryFetchService.protocolID, negotiated: { _ in }) else {
            dropSession()
            return
        }
        let framed = FramedStream(stream: stream, maxMessageSize: SyncFrame.maxFrameBytes)
        let batch = SyncBatch(store: store, queue: queue) { _ in }
        var finished = false
        framed.onMessage = { [self] bytes in
            guard !finished else { return }
            guard let frame = try? SyncFrame.decode(bytes) else { framed.reset(); batch.discard(); return }
            if let r = frame.record, !batch.add(record: r) { framed.reset(); batch.discard(); return }
            if let a = frame.attestation, !batch.add(attestation: a) { framed.reset(); batch.discard(); return }
            if frame.end != nil {
                finished = true
                let received = batch.received
                batch.flush { [self] in
                    loop.execute { [self] in
                        lastRefresh = WallClock.now()
                        lastError = nil
                        backoff = .seconds(1)
                        if received > 0 { publish() }
                        onRead?(session)
                        loop.scheduleTask(in: Self.minPollGap) { self.poll() }
                    }
                }
            }
        }
        framed.onEnd = { [self] end in
            guard !finished else { return }
            finished = true
            batch.discard()
            if end != .remoteFinished {
                lastError = "the front closed the directory stream"
                dropSession()
            } else {
                // A long poll that ended with nothing new is a read too: the session is up, and
                // what rides on reads (reachability reports, once a minute) must not wait for a
                // change of the directory.
                onRead?(session)
                loop.scheduleTask(in: Self.minPollGap) { self.poll() }
            }
        }
        framed.send(SyncFrame(digest: DigestEntry.encode(store.digest()), waitSeconds: wait).encode())
        framed.start()
    }

    private func dropSession() {
        if let front { failures[front, default: 0] += 1 }
        session?.close()
        session = nil
        front = nil
        retryLater()
    }

    private func retryLater() {
        guard !stopped else { return }
        let delay = backoff
        backoff = min(Self.maxBackoff, backoff + backoff)
        loop.scheduleTask(in: delay) { self.poll() }
    }

    /// Expired records go (a member that stopped refreshing drops out after 7 windows).
    public func expire() {
        queue.async { [self] in
            if store.expire(now: WallClock.now()) > 0 { loop.execute { self.publish() } }
        }
    }
}
