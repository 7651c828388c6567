import Dispatch
import Foundation
import Logging
import MontanaClient
import MontanaCrypto
import MontanaReachability
import MontanaDirectory
import MontanaSession
import MontanaTransport
import MontanaWire
import NIOConcurrencyHelpers
import NIOCore

extension FramedStream: FramedStreamSink {}

/// A member's directory: the SQLite store of signed records and attestations, this node's own
/// record (re-signed every 5 minutes), pull-based anti-entropy with other members over
/// `/montana/peer-exchange/1.0.0` (one scheduled exchange per peer per window, plus a push
/// hint on every change so a join spreads in seconds), the client-facing
/// `/montana/directory/1.0.0`, and attestations of other members (`Attester`).
///
/// Threading: gossip state is confined to `loop`; the store is thread-safe and written on
/// `queue` (SQLite writes and signature checks stay off the event loops).
final class NodeDirectory: @unchecked Sendable {
    static let resignInterval: UInt64 = 300
    static let recordLifetime: UInt64 = 3600
    static let window = TimeAmount.seconds(60)
    /// A push hint waits this long so a burst of changes becomes one exchange per peer.
    static let pushDelay = TimeAmount.milliseconds(150)
    /// Exchanges with one peer, whatever prompts them, are at least this far apart (ns).
    static let minExchangeGapNanos: UInt64 = 1_000_000_000
    /// Peers a change is pushed to at once (bootstrap links plus this many random members).
    static let pushFanout = 6
    /// Outbound sessions to peers kept open at once.
    static let maxPeerSessions = 16

    let settings: DirectorySettings
    let store: DirectoryStore
    let identity: IdentityKey
    let kem: KEMKey
    let configuration: NodeConfiguration
    let loop: any EventLoop
    let queue = DispatchQueue(label: "montana.directory.store")
    let logger: Logger
    let metrics: MontanaMetrics
    let geoip: (any GeoIPDatabase)?
    let inbound = InboundExchangeLimiter()
    let waiters = DirectoryWaiters()
    private(set) var attester: Attester?
    /// Called (on `loop`) after the store changed, e.g. to refresh the exit's self-denials.
    /// The node's reachability map, exchanged with peers after each directory exchange.
    var reachability: ReachabilityMap?
    var onMembersChanged: (@Sendable () -> Void)?

    /// Outgoing member connections leave from the transit address when it is a specific one, so
    /// members see (and exempt from per-prefix budgets) the address this node publishes.
    var localAddress: SocketAddress? {
        let transit = configuration.listen.transit
        guard !transit.isWildcard else { return nil }
        return try? SocketAddress(ipAddress: transit.host, port: 0)
    }

    // Loop-confined.
    private var sessions: [NodeID: DialedSession] = [:]
    private var dialing: [NodeID: EventLoopFuture<DialedSession>] = [:]
    private var lastExchange: [NodeID: UInt64] = [:]
    private var pushScheduled = false
    private var timers: [RepeatedTask] = []
    private var lastPublished: UInt64 = 0
    private var stopped = false

    init(settings: DirectorySettings, configuration: NodeConfiguration, loop: any EventLoop, logger: Logger, metrics: MontanaMetrics) throws {
        self.settings = settings
        self.configuration = configuration
        identity = configuration.identity
        kem = configuration.kem
        self.loop = loop
        self.logger = logger
        self.metrics = metrics
        store = try DirectoryStore(path: settings.databasePath, alliance: settings.alliance)
        if let path = settings.geoipPath {
            do { geoip = try GeoIP.open(path: path) } catch {
                throw NodeStartError.state(path, "cannot open the GeoIP database ([directory] geoip): \(error)")
            }
        } else {
            geoip = nil
        }
        if settings.attest { attester = Attester(directory: self) }
    }

    /// Where a withdrawal marker lives: `montana node deregister` writes it, and a running node
    /// that sees it publishes its withdrawal instead of re-signing its record.
    static func withdrawalMarker(database: String) -> String { database + ".withdrawn" }
    var isWithdrawn: Bool { FileManager.default.fileExists(atPath: Self.withdrawalMarker(database: settings.databasePath)) }

    // MARK: own record

    /// This node's record at `now` (a withdrawal when `withdrawal`), signed.
    static func signedRecord(configuration: NodeConfiguration, endorsement: [UInt8]?, now: UInt64, withdrawal: Bool) throws -> [UInt8] {
        guard let endpoint = configuration.listen.publicEndpoint, let port = UInt16(exactly: endpoint.port) else {
            throw NodeStartError.state(configuration.file, "listen.public_host is not set: the directory record needs the address others dial")
        }
        let window = UInt32(truncatingIfNeeded: TimeWindow.window(unixSeconds: now))
        guard let country = configuration.country else {
            throw NodeStartError.state(configuration.file, "node.country is not set: the directory record names the node's country")
        }
        let entry = try EgressDirectoryEntry(exitNodeID: configuration.nodeID.bytes, countryCode: country,
                                             capacityClass: configuration.capacity, advertisedWindow: window)
        let record = DirectoryRecord(entry: entry, identityPublicKey: configuration.identity.publicKey, kemPublicKey: configuration.kem.publicKey,
                                     roles: configuration.roles,
                                     endpoints: [Endpoint(profile: 0, host: endpoint.host, port: port)] + configuration.publishedCarriers.endpoints,
                                     issuedAt: now, expiresAt: withdrawal ? now : now + recordLifetime,
                                     keyMode: configuration.publishedCarriers.keyMode, ownT1: configuration.publishedCarriers.ownT1,
                                     operatorLabel: configuration.operatorLabel, endorsement: endorsement)
        return try RecordSigner.sign(record, with: configuration.identity).encode()
    }

    func ownSignedRecord(now: UInt64 = WallClock.now()) -> [UInt8]? {
        if let member = store.member(identity.nodeID), Self.isFresh(signedAt: member.record.issuedAt, now: now) { return member.signed }
        return try? Self.signedRecord(configuration: configuration, endorsement: settings.endorsement, now: now, withdrawal: isWithdrawn)
    }

    static func isFresh(signedAt: UInt64, now: UInt64) -> Bool { now >= signedAt && now - signedAt < resignInterval }

    /// Signs and stores our record (or our withdrawal), then pushes it.
    func publish() {
        let now = WallClock.now()
        let withdrawn = isWithdrawn
        guard let signed = try? Self.signedRecord(configuration: configuration, endorsement: settings.endorsement, now: now, withdrawal: withdrawn) else {
            logger.error("cannot sign this node's directory record (is listen.public_host set?)")
            return
        }
        queue.async { [self] in
            let outcome = store.offerRecord(signed, now: now)
            if case .rejected(let why) = outcome {
                logger.error("this node's own record is refused by its directory", metadata: ["reason": "\(why.rawValue)"])
            }
        }
        if withdrawn { logger.notice("published this node's withdrawal from the directory") }
    }

    // MARK: lifecycle

    func start() {
        store.onChange = { [weak self] in
            guard let self else { return }
            self.loop.execute { self.changed() }
        }
        publish()
        let resign = loop.scheduleRepeatedTask(initialDelay: .seconds(Int64(Self.resignInterval)), delay: .seconds(Int64(Self.resignInterval))) { [weak self] _ in
            self?.publish()
        }
        let gossip = loop.scheduleRepeatedTask(initialDelay: .milliseconds(300), delay: Self.window) { [weak self] _ in
            self?.gossipRound()
        }
        let expire = loop.scheduleRepeatedTask(initialDelay: .seconds(30), delay: .seconds(30)) { [weak self] _ in
            guard let self else { return }
            self.queue.async { _ = self.store.expire(now: WallClock.now()) }
        }
        timers = [resign, gossip, expire]
        attester?.start()
    }

    func stop() {
        loop.execute { [self] in
            stopped = true
            for t in timers { t.cancel() }
            for s in sessions.values { s.close() }
            sessions = [:]
        }
        attester?.stop()
        waiters.wakeAll()
    }

    // MARK: members

    /// A live member in relay form (its T0 endpoint), for the router.
    func member(_ id: NodeID) -> AllianceMember? {
        store.member(id).flatMap(Self.allianceMember)
    }

    static func allianceMember(_ m: DirectoryMember) -> AllianceMember? {
        guard let endpoint = m.record.endpoints.first(where: { $0.profile == 0 }) else { return nil }
        return AllianceMember(nodeID: m.nodeID, kemPublicKey: m.record.kemPublicKey, host: endpoint.host, port: Int(endpoint.port),
                              country: m.roles.contains(.exit) ? m.country : nil, roles: m.roles,
                              name: m.operatorLabel.isEmpty ? nil : "\(m.operatorLabel) \(m.nodeID.short.prefix(6))",
                              endpoints: carrierEndpoints(m.record.endpoints))
    }

    /// The record's endpoints this node or client can use: known profiles with parseable params
    /// (a bad one is skipped, not the member), at most one per profile (the first).
    static func carrierEndpoints(_ endpoints: [Endpoint]) -> [CarrierEndpoint] {
        var out: [CarrierEndpoint] = []
        for e in endpoints {
            guard let profile = CarrierProfile(rawValue: e.profile), !out.contains(where: { $0.profile == profile }),
                  let params = try? CarrierEndpoint.parseParams(e.params ?? "") else { continue }
            out.append(CarrierEndpoint(profile: profile, host: e.host, port: Int(e.port), params: params))
        }
        return out
    }

    // MARK: gossip (initiator)

    private func changed() {
        waiters.wakeAll()
        onMembersChanged?()
        guard !pushScheduled, !stopped else { return }
        pushScheduled = true
        loop.scheduleTask(in: Self.pushDelay) { [self] in
            pushScheduled = false
            for target in peers(random: Self.pushFanout) { exchange(with: target, scheduled: false) }
        }
    }

    private func gossipRound() {
        for target in peers(random: settings.fanout) { exchange(with: target, scheduled: true) }
        attester?.tick()
    }

    /// Bootstrap links first, then `random` other live members that can be dialled.
    func peers(random: Int) -> [RelayTarget] {
        var out: [NodeID: RelayTarget] = [:]
        for link in settings.bootstrap {
            out[link.nodeID] = RelayTarget(nodeID: link.nodeID, kemPublicKey: link.kemPublicKey, host: link.host, port: Int(link.port))
        }
        let others = store.members(now: WallClock.now()).filter { $0.nodeID != identity.nodeID && out[$0.nodeID] == nil }
            .compactMap(Self.allianceMember).shuffled().prefix(random)
        for m in others { out[m.nodeID] = m.target }
        return Array(out.values)
    }

    func exchange(with target: RelayTarget, scheduled: Bool) {
        loop.preconditionInEventLoop()
        guard !stopped, target.nodeID != identity.nodeID else { return }
        let now = NIODeadline.now().uptimeNanoseconds
        if let last = lastExchange[target.nodeID], now >= last, now - last < Self.minExchangeGapNanos {
            // Too soon after the last one: a push hint comes back once the gap has passed.
            if !scheduled {
                loop.scheduleTask(in: .nanoseconds(Int64(Self.minExchangeGapNanos - (now - last)))) { [self] in
                    exchange(with: target, scheduled: false)
                }
            }
            return
        }
        lastExchange[target.nodeID] = now
        if lastExchange.count > 4 * DirectoryLimits().maxRecords { lastExchange = [target.nodeID: now] }
        session(to: target).whenComplete { [self] result in
            switch result {
            case .failure(let error):
                metrics.gossipExchanges(outcome: "unreachable")
                logger.debug("directory exchange: peer unreachable", metadata: ["peer": "\(target.nodeID.short)", "error": "\(error)"])
            case .success(let session):
                runExchange(on: session, peer: target.nodeID)
            }
        }
    }

    private func session(to target: RelayTarget) -> EventLoopFuture<DialedSession> {
        if let s = sessions[target.nodeID], s.channel.isActive { return loop.makeSucceededFuture(s) }
        if let pending = dialing[target.nodeID] { return pending }
        if sessions.count >= Self.maxPeerSessions, let victim = sessions.keys.randomElement() {
            sessions.removeValue(forKey: victim)?.close()
        }
        let future = SessionDialer.connect(on: loop, to: target, identity: identity, alliance: settings.alliance.uuidBytes,
                                           localAddress: localAddress)
        dialing[target.nodeID] = future
        future.whenComplete { [self] result in
            dialing[target.nodeID] = nil
            if case .success(let s) = result {
                sessions[target.nodeID] = s
                s.channel.closeFuture.whenComplete { [self] _ in
                    loop.execute { if self.sessions[target.nodeID]?.channel === s.channel { self.sessions[target.nodeID] = nil } }
                }
            }
        }
        return future
    }

    /// One exchange as the initiator: our record and digest → their newer items and digest →
    /// our newer items → FIN.
    private func runExchange(on session: DialedSession, peer: NodeID) {
        // The reachability map travels with the directory: our newest votes, with their groups.
        if let reachability {
            let votes = reachability.export(limit: ReachabilityMessage.maxSync)
            if !votes.isEmpty { _ = ReachabilityExchange.request(.sync(votes), on: session.mux, loop: loop) }
        }
        guard let stream = session.mux.openStream(protocol: PeerExchangeService.protocolID, negotiated: { _ in }) else {
            metrics.gossipExchanges(outcome: "refused")
            return
        }
        let framed = FramedStream(stream: stream, maxMessageSize: SyncFrame.maxFrameBytes)
        let batch = SyncBatch(store: store, queue: queue) { [metrics] in metrics.directoryRejected($0) }
        var done = false
        framed.onMessage = { [self] bytes in
            guard !done else { return }
            guard let frame = try? SyncFrame.decode(bytes) else { framed.reset(); batch.discard(); return }
            if let r = frame.record, !batch.add(record: r) { framed.reset(); batch.discard(); return }
            if let a = frame.attestation, !batch.add(attestation: a) { framed.reset(); batch.discard(); return }
            if frame.end != nil {
                done = true
                let theirs = (try? DigestEntry.decode(frame.digest ?? [])) ?? []
                SyncSend.items(store, newerThan: theirs, to: framed)
                framed.send(SyncFrame(end: 1).encode())
                framed.finish()
                batch.flush()
                metrics.gossipExchanges(outcome: "ok")
            }
        }
        framed.onEnd = { end in
            if end != .remoteFinished && !done { batch.discard() }
        }
        framed.send(SyncFrame(digest: DigestEntry.encode(store.digest()), selfRecord: ownSignedRecord()).encode())
        framed.start()
    }
}

/// Per-peer budget of inbound exchanges: a burst of 8, then one every 5 s (a member pushes on
/// every change, pulls once a window). At most 4096 peers are tracked (members only).
final class InboundExchangeLimiter: Sendable {
    static let burst = 8
    static let ratePerMinute = 12
    static let maxPeers = 4096
    private let buckets = NIOLockedValueBox<[NodeID: TokenBucket]>([:])

    func allow(_ peer: NodeID, now: UInt64 = NIODeadline.now().uptimeNanoseconds) -> Bool {
        buckets.withLockedValue { table in
            if table[peer] == nil {
                if table.count >= Self.maxPeers { table = table.filter { !$0.value.isFull(rate: 1, burst: Self.burst, now: now / 5) } }
                guard table.count < Self.maxPeers else { return false }
                table[peer] = TokenBucket(burst: Self.burst, now: now / 5)
            }
            // Rate is per second in TokenBucket: 12/min is expressed with a scaled clock.
            return table[peer]!.take(rate: 1, burst: Self.burst, now: now / 5)
        }
    }
}
