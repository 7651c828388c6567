import Foundation
import Logging
import MontanaCrypto
import MontanaReachability
import MontanaSession
import MontanaTransport
import MontanaWire
import NIOCore
import NIOPosix

public enum CircuitManagerError: Error, CustomStringConvertible, Equatable {
    case noExit(String)
    /// Exits exist for the selection but none is corroborated, and advisory exits are not allowed.
    case onlyAdvisory(String)
    case noFront
    case unreachable(String)
    /// No front other than the exit answered, and the user has not allowed the exit to be its
    /// own front (which would show it the client's address).
    case exitAsFrontRequired
    /// The account pass cannot be used (the reason says why).
    case passRefused(String)
    /// Every front tried for an exit failed at the carrier: nothing on this network reaches
    /// them. The text names the country, the exit and each front tried with its profile and error.
    case unreachableFromHere(String)
    /// Every session to the exit carries its streams, no more may be built, and no stream freed
    /// within `streamWaitTimeout` (or too many connections wait already).
    case busy(String)

    public var description: String {
        switch self {
        case .noExit(let what): return "no exit matches \(what)"
        case .onlyAdvisory(let what):
            return "the exits for \(what) are advisory (their country is not corroborated by 2 independent members); set advisory_exits = true to use them"
        case .noFront: return "no front is configured"
        case .unreachable(let why): return "could not reach the exit: \(why)"
        case .passRefused(let why), .unreachableFromHere(let why), .busy(let why): return why
        case .exitAsFrontRequired:
            return "no front other than the exit is reachable; set exit_as_front = true to let the exit see your address"
        }
    }
}

/// How the client builds circuits, from `[client]` in client.toml (or command-line flags).
public struct CircuitOptions: Sendable {
    /// Let an exit be its own front when no other front is reachable. Off by default: the exit
    /// would then see the client's address next to the destinations it opens.
    public var exitAsFront: Bool
    /// The local address outgoing carrier connections are bound to (port 0); nil lets the OS choose.
    public var sourceAddress: SocketAddress?
    /// Allow exits whose country is not corroborated (`advisory_exits`). Off by default.
    public var allowAdvisory = false
    /// A signed account pass (PROTOCOL.md 7.1) sent in every EgressAuth.
    public var pass: [UInt8]?
    /// Why the pass cannot work now (expired, not yet valid, foreign issuer), checked before
    /// every new session: the exit would close it without saying why.
    public var passCheck: (@Sendable () -> String?)?
    /// When the local proxy answers an app's CONNECT before the exit did (`optimistic_connect`).
    public var optimisticConnect = OptimisticConnect.known
    /// The carrier ladder (`[client] carriers`): profiles in the order to try them per front,
    /// filtered to what a front's record offers and what `connectors` this client has (T0
    /// needs none). Default T1, T2, T3, T0.
    public var carriers: [CarrierProfile] = CarrierProfile.defaultOrder
    /// How to open each profile other than T0 (T3: `Obfs4Connector`).
    public var connectors: [CarrierProfile: any CarrierConnector] = [:]

    public init(exitAsFront: Bool = false, sourceAddress: SocketAddress? = nil) {
        self.exitAsFront = exitAsFront
        self.sourceAddress = sourceAddress
    }
}

/// Chooses exits and fronts, builds circuits, and keeps one session per exit (arti's
/// circuit manager in miniature). Confined to one event loop: every method runs on `loop`.
public final class CircuitManager: @unchecked Sendable {
    public let loop: any EventLoop
    let account: IdentityKey
    /// Every member known: static ones, or the directory's (replaced by `update(members:)`).
    public private(set) var members: [AllianceMember]
    let defaultSelection: ExitSelection
    let alliance: [UInt8]?
    let options: CircuitOptions
    let logger: Logger
    /// The primary session to each exit (the one the reserve and status follow).
    var sessions: [NodeID: ExitSession] = [:]
    /// More sessions to the same exit, built when every session to it carries
    /// `streamsPerSession` streams (SessionPool.swift).
    var overflow: [NodeID: [ExitSession]] = [:]
    /// Sessions being built, with the connections already promised a stream on each.
    var building: [NodeID: [PendingSession]] = [:]
    /// Connections waiting for a stream to free (every session full, no more may be built).
    var waiting: [NodeID: [StreamWaiter]] = [:]
    var waitingCount = 0
    /// What this client saw of each front from its current network (ranks fronts, names them
    /// when none answers; `montana status` shows it).
    public internal(set) var reachability = FrontReachability()
    /// The warm reserve front of each exit with a live session (HotReserve.swift).
    var reserves: [NodeID: ReserveFront] = [:]
    /// Re-steers and losses, newest last, at most `SteeringEvent.maxKept`.
    public internal(set) var events: [SteeringEvent] = []
    /// A feeler probe is in flight.
    var feeling = false
    /// Called on the loop for every steering event (the client counts them in its metrics).
    public var onSteeringEvent: ((SteeringEvent) -> Void)?
    /// Handshake time (ms) of the last session built to each exit: the RTT automatic selection uses.
    var measuredRTT: [NodeID: UInt64] = [:]
    private var probing: Set<NodeID> = []
    /// (country, ASN) of an address, from the client's GeoIP database (`[client] geoip`), if any.
    public var vantageLookup: (@Sendable ([UInt8]) -> Vantage?)?
    /// The client's network changed (a new source group): the runtime restores what it saved for it.
    public var onVantageChanged: ((String) -> Void)?

    /// Observations saved for `sourceGroup` in an earlier run (they rank fronts until redone).
    public func restoreObservations(_ saved: [FrontReachability.Observation], sourceGroup: String) {
        loop.preconditionInEventLoop()
        reachability.restore(saved, sourceGroup: sourceGroup)
    }
    /// Source groups behind each map entry for this vantage (status only).
    var mapSources: [NodeID: Int] = [:]
    /// When a front last served the map for this vantage (status only: `map_seconds_ago`).
    var mapFetchedAt: NIODeadline?
    /// Why the last session to an exit failed (shown by `montana status`).
    public internal(set) var lastFailure: [NodeID: String] = [:]
    /// Destinations each exit opened recently (`optimistic_connect = "known"`).
    var openedDestinations = OpenedDestinations()

    /// Whether the proxy may tell the app its connection to `address`:`port` through `exit` is open
    /// before the exit answered.
    /// Never on a session that is not on a live carrier (resuming, or its exit just died): the app
    /// then gets the clear answer.
    func answersOptimistically(_ session: ExitSession, address: EgressAddress, port: UInt16) -> Bool {
        let exit = session.exit.nodeID
        guard session.isActive, !session.resuming, !session.lostItsCarrier, session.session?.isAttached ?? true else { return false }
        switch options.optimisticConnect {
        case .never: return false
        case .always: return true
        case .known:
            return openedDestinations.contains(.init(exit: exit, address: address, port: port), now: NIODeadline.now().uptimeNanoseconds)
        }
    }

    /// The exit's answer to an open: an opened destination is remembered, a refused one forgotten.
    func exitAnswered(_ status: EgressOpenStatus, exit: NodeID, address: EgressAddress, port: UInt16) {
        guard options.optimisticConnect == .known else { return }
        let key = OpenedDestinations.Key(exit: exit, address: address, port: port)
        if status == .open {
            openedDestinations.remember(key, now: NIODeadline.now().uptimeNanoseconds)
        } else {
            openedDestinations.forget(key)
        }
    }

    public init(loop: any EventLoop, account: IdentityKey, members: [AllianceMember], defaultSelection: ExitSelection,
                alliance: [UInt8]?, options: CircuitOptions = CircuitOptions(), logger: Logger) {
        self.loop = loop
        self.account = account
        self.members = members
        self.defaultSelection = defaultSelection
        self.alliance = alliance
        self.options = options
        self.logger = logger
    }

    public var exits: [AllianceMember] { members.filter(\.isExit) }

    /// Replaces the member list (the client's directory refreshed). Sessions to members that
    /// left stay until they close; no new circuit uses them.
    public func update(members: [AllianceMember]) {
        loop.preconditionInEventLoop()
        self.members = members
    }

    /// Exits automatic and country selection may use: corroborated ones, or all with `allowAdvisory`.
    private func eligible(_ candidates: [AllianceMember], what: String) throws(CircuitManagerError) -> [AllianceMember] {
        guard !candidates.isEmpty else { throw .noExit(what) }
        let ok = options.allowAdvisory ? candidates : candidates.filter(\.corroborated)
        guard !ok.isEmpty else { throw .onlyAdvisory(what) }
        return ok
    }

    /// Lowest measured RTT first; unmeasured after, in random order (so clients do not herd).
    private func best(_ candidates: [AllianceMember]) -> AllianceMember? {
        let shuffled = candidates.shuffled()
        return shuffled.min { (measuredRTT[$0.nodeID] ?? .max) < (measuredRTT[$1.nodeID] ?? .max) }
    }

    /// The exit for a selection: manual country or node, or automatic (the default country when
    /// configured, else the exit with a live session, else the first listed).
    public func chooseExit(_ selection: ExitSelection) throws(CircuitManagerError) -> AllianceMember {
        let effective = selection == .automatic ? defaultSelection : selection
        switch effective {
        case .automatic:
            let candidates = try eligible(exits, what: "any country")
            if let live = candidates.first(where: { sessions[$0.nodeID]?.isActive == true }) { return live }
            guard let chosen = best(candidates) else { throw .noExit("any country") }
            return chosen
        case .country(let cc):
            let matching = try eligible(exits.filter { $0.country == cc }, what: "country \(cc)")
            if let live = matching.first(where: { sessions[$0.nodeID]?.isActive == true }) { return live }
            guard let chosen = best(matching) else { throw .noExit("country \(cc)") }
            return chosen
        case .node(let prefix):
            guard let m = exits.first(where: { $0.nodeID.hex.hasPrefix(prefix) }) else { throw .noExit("node \(prefix)…") }
            return m
        }
    }

    /// Fronts to try for an exit, best first, recently failing ones last. The exit itself is
    /// never among them unless `options.exitAsFront` (then it comes last): as its own front it
    /// would see the client's address. A front offering none of this client's carriers (a
    /// T0-only front for a `carriers = ["t2"]` client) is no candidate: dialling it fails at once
    /// without a network attempt, and the reserve's retry picked it again and again (a
    /// synchronous recursion that overflowed the stack).
    func frontCandidates(for exit: AllianceMember) -> [AllianceMember] {
        var sorted = reachability.ranked(members.filter { $0.isFront && $0.nodeID != exit.nodeID && !carrierLadder(for: $0).isEmpty })
        // A warm reserve whose control session is up goes first: it answered a moment ago.
        if let reserve = reserves[exit.nodeID], reserve.isUp, let i = sorted.firstIndex(of: reserve.front) {
            sorted.insert(sorted.remove(at: i), at: 0)
        }
        return options.exitAsFront && !carrierLadder(for: exit).isEmpty ? sorted + [exit] : sorted
    }

    /// A front's outcome seen elsewhere (the directory's session, a probe): it ranks fronts too.
    /// `steers`: the dial went through the ladder (see `FrontReachability.record`).
    public func recordFront(_ front: AllianceMember, reached: Bool, rttMilliseconds: UInt64? = nil, error: String? = nil,
                            endpoint: CarrierEndpoint? = nil, steers: Bool = true) {
        loop.preconditionInEventLoop()
        reachability.record(front, reached: reached, rttMilliseconds: rttMilliseconds, error: error, now: NIODeadline.now().uptimeNanoseconds,
                            profile: endpoint?.profile ?? .t0, endpoint: endpoint, steers: steers)
    }

    /// Milliseconds from `start` to now (0 if the clock is odd).
    static func milliseconds(since start: NIODeadline) -> UInt64 {
        UInt64(max(0, (NIODeadline.now() - start).nanoseconds / 1_000_000))
    }

    /// Records one dial of a control session to a front (directory, reserve, feeler): on success
    /// the answer time and the vantage from msg2's observed-address TLV (`payload`); on failure
    /// unreachable, unless the front itself answered (a refusal is a reachable front).
    public func recordControlDial(_ front: AllianceMember, started: NIODeadline, result: Result<[UInt8], any Error>,
                                  endpoint: CarrierEndpoint? = nil) {
        loop.preconditionInEventLoop()
        switch result {
        case .success(let payload):
            if let group = ObservedAddress.sourceGroup(inPayload: payload) {
                let before = reachability.sourceGroup
                reachability.observedSourceGroup(group, address: ObservedAddress.address(inPayload: payload))
                if group != before { onVantageChanged?(group) }
            }
            recordFront(front, reached: true, rttMilliseconds: Self.milliseconds(since: started), endpoint: endpoint, steers: endpoint != nil)
        case .failure(let error):
            let answered = Self.isAnswerFromFront(error)
            recordFront(front, reached: answered, error: answered ? nil : Self.carrierFailure(error), endpoint: endpoint, steers: endpoint != nil)
        }
    }

    /// Exits no listed front but themselves could carry, while `exitAsFront` is off: every
    /// connection to them fails with `exitAsFrontRequired`. Reads only immutable state.
    public func exitsWithoutOtherFronts() -> [AllianceMember] {
        guard !options.exitAsFront else { return [] }
        return exits.filter { exit in !members.contains { $0.isFront && $0.nodeID != exit.nodeID } }
    }

    /// A front whose TCP handshake takes longer than this is treated as blocked from here: a
    /// censor that drops SYNs would otherwise cost 10 s per front.
    public static let frontConnectTimeout = TimeAmount.seconds(3)

    /// Tries `candidates` in order. `frontAnswered` records whether any front answered a preface
    /// (so the exit, not the fronts, is what is unreachable).
    /// `tried` lists the fronts that did not answer, with their profile and error, for the
    /// message when none does.
    func build(to exit: AllianceMember, candidates: [AllianceMember], lastError: (any Error)?,
                       frontAnswered: Bool, tried: [String], rungs: [CarrierEndpoint]? = nil) -> EventLoopFuture<ExitSession> {
        guard let front = candidates.first else {
            if !options.exitAsFront && !frontAnswered {
                if let lastError { logger.info("no front answered", metadata: ["exit": "\(exit.label)", "error": "\(lastError)"]) }
                if tried.isEmpty { return loop.makeFailedFuture(CircuitManagerError.exitAsFrontRequired) }
            }
            if !frontAnswered && !tried.isEmpty {
                return loop.makeFailedFuture(CircuitManagerError.unreachableFromHere(unreachableMessage(exit, tried: tried)))
            }
            return loop.makeFailedFuture(CircuitManagerError.unreachable(lastError.map { "\($0)" } ?? "no route"))
        }
        // The carrier ladder for this front (CarrierLadder.swift): its profiles in order.
        let ladder = rungs ?? carrierLadder(for: front)
        guard let endpoint = ladder.first else {
            let line = "\(front.label): offers none of the carriers this client uses (\(options.carriers.map(\.name).joined(separator: ", ")))"
            return build(to: exit, candidates: Array(candidates.dropFirst()), lastError: lastError, frontAnswered: frontAnswered,
                         tried: tried + [line])
        }
        let answered = NIOLoopBoundBox<UInt64?>(nil, eventLoop: loop)
        let started = NIODeadline.now()
        return open(to: exit, via: front, endpoint: endpoint, onAnswer: { answered.value = Self.milliseconds(since: started) }).map { [self] session in
            recordFront(front, reached: true, rttMilliseconds: answered.value, endpoint: endpoint)
            return session
        }.flatMapError { [self] error in
            logger.info("circuit via front failed; trying the next", metadata: ["front": "\(front.label)", "exit": "\(exit.label)",
                                                                                "carrier": "\(endpoint.profile)", "error": "\(error)"])
            let reached = answered.value != nil || Self.isAnswerFromFront(error)
            // Only the carrier's failure says the front is unreachable from here (over this
            // profile); a front that answered (and the exit behind it failed) is reachable.
            let why = Self.carrierFailure(error)
            recordFront(front, reached: reached, rttMilliseconds: answered.value, error: reached ? nil : why, endpoint: endpoint)
            let triedNow = reached ? tried : tried + ["\(front.label) \(endpoint.host):\(endpoint.port) over \(FrontReachability.profileName(endpoint.profile)): \(why)"]
            if !reached && ladder.count > 1 {
                // The next profile of the same front: a blocked profile is an observation, not an error.
                return build(to: exit, candidates: candidates, lastError: error, frontAnswered: frontAnswered, tried: triedNow,
                             rungs: Array(ladder.dropFirst()))
            }
            return build(to: exit, candidates: Array(candidates.dropFirst()), lastError: error,
                         frontAnswered: frontAnswered || (reached && front.nodeID != exit.nodeID), tried: triedNow)
        }
    }

    /// A carrier failure in words a user can act on: reset (something refused or reset the
    /// connection), no answer (packets dropped), or the error itself, shortened.
    public static func carrierFailure(_ error: any Error) -> String {
        let text = "\(error)"
        if text.contains("Connection refused") || text.contains("connection reset") || text.contains("Connection reset") {
            return "connection refused or reset"
        }
        if text.contains("connectTimeout") || text.contains("timed out") || text.contains("timeout") {
            return "no answer (timed out; packets may be dropped)"
        }
        return String(text.prefix(160))
    }

    /// "country DE (exit x) is unreachable from this network: no front answered (tried …)".
    func unreachableMessage(_ exit: AllianceMember, tried: [String]) -> String {
        // No vantage in the text: it is logged, and the client's own /16 stays out of logs.
        var text = "country \(exit.country ?? "??") (exit \(exit.label)) is unreachable from this network: "
            + "no front answered; tried \(tried.count): " + tried.joined(separator: "; ")
        if !options.exitAsFront && exit.isFront {
            text += ". Setting exit_as_front = true would let the exit be its own front (it would then see your address)"
        }
        return text
    }

    /// A refusal or an answer that did not open came from the front itself: it is reachable.
    public static func isAnswerFromFront(_ error: any Error) -> Bool {
        switch error as? CircuitError {
        case .refused?, .badAnswer?: return true
        default: return false
        }
    }

    /// One circuit: preface to the front naming the exit, Noise_PQ XX with the account identity
    /// (only the exit can read it), EgressAuth bound to this session in msg3, then yamux.
    /// `probe`: a control session (a throwaway identity, no EgressAuth) only to measure the path.
    /// `endpoint`: the carrier to the front (default: the first of its ladder, else its T0).
    func open(to exit: AllianceMember, via front: AllianceMember, endpoint: CarrierEndpoint? = nil, probe: Bool = false,
              onAnswer: @escaping @Sendable () -> Void = {}) -> EventLoopFuture<ExitSession> {
        let endpoint = endpoint ?? carrierLadder(for: front).first ?? CarrierEndpoint(profile: .t0, host: front.host, port: front.port)
        logger.debug("opening circuit", metadata: ["front": "\(front.label)", "exit": "\(exit.label)", "carrier": "\(endpoint.profile)"])
        let hop = HopMessage(type: .connect, peer: RelayPeer(id: exit.nodeID.multihash),
                             ext: RelayExtension(ts: WallClock.now(), alliance: alliance, purpose: .session))
        let account = probe ? ((try? IdentityKey.generate()) ?? self.account) : self.account
        let pass = options.pass
        let exitID = exit.nodeID
        let role = SessionRole.initiator(identity: account, responder: exitID) { h in
            if probe { return TLV.encode([TLV(type: PayloadTLV.features, value: [UInt8].le(UInt32(0)))]) }
            let auth = try EgressAuthProof.build(account: account, exit: exitID, bindingHash: h, now: WallClock.now(), signedPass: pass)
            // An egress session offers resumption; it happens when the exit offers it too.
            return TLV.encode([TLV(type: PayloadTLV.features, value: [UInt8].le(SessionCryptoHandler.featureResume)),
                               TLV(type: PayloadTLV.egressAuth, value: auth.encode())])
        }
        // An egress session lives in its own channel so that it can outlive this carrier.
        let session: SessionChannel? = probe ? nil : SessionChannel(eventLoop: loop, holdTime: Self.resumeWindow)
        let established = loop.makePromise(of: SessionEstablished.self)
        let muxBox = NIOLoopBoundBox<MuxHandler?>(nil, eventLoop: loop)
        return CircuitDialer.connect(on: loop, host: front.host, port: front.port, hopKEMPublicKey: front.kemPublicKey,
                                     message: .hop(hop), connectTimeout: Self.frontConnectTimeout,
                                     localAddress: options.sourceAddress, carrier: carrierDial(endpoint)) { channel in
            // Client sessions ping often, so a silently dropped carrier (a censor's black hole)
            // is noticed in seconds and the next connection goes through the reserve.
            let mux = MuxHandler(role: .client, keepalive: probe ? .standard : .client)
            mux.onEstablished = { event in
                if let event { established.succeed(event) } else { established.fail(CircuitError.carrierClosed) }
            }
            muxBox.value = mux
            let crypto = SessionCryptoHandler(role: role, onFailure: { error in established.fail(error) })
            if let session {
                try session.pipeline.syncOperations.addHandler(crypto)
                try session.pipeline.syncOperations.addHandler(mux)
                try session.installLink(in: channel, makeCurrent: true)
            } else {
                try channel.pipeline.syncOperations.addHandler(crypto)
                try channel.pipeline.syncOperations.addHandler(mux)
            }
        }
        .flatMap { [logger] (channel, _) -> EventLoopFuture<any Channel> in
            onAnswer()
            logger.debug("front accepted the circuit; waiting for the exit's handshake", metadata: ["front": "\(front.label)"])
            return established.futureResult.map { _ in channel }
        }
        .flatMapErrorThrowing { error in
            established.fail(error)
            session?.close(promise: nil)
            throw error
        }
        .map { channel in
            let session = ExitSession(exit: exit, front: front, mux: muxBox.value!, channel: session ?? channel)
            session.carrier = endpoint.profile
            self.logger.info("session established", metadata: ["front": "\(front.label)", "exit": "\(exit.label)", "country": "\(exit.country ?? "?")",
                                                               "carrier": "\(endpoint.profile)"])
            return session
        }
    }

    /// The active (front, exit) pairs and what this client saw of every front from here, for
    /// `/status` (`steering.active`, `reachability`). Node-level facts only.
    public func steeringDocument() -> [String: any Sendable] {
        loop.preconditionInEventLoop()
        let now = NIODeadline.now().uptimeNanoseconds
        let active: [[String: any Sendable]] = sessions.values.filter(\.isActive).sorted { $0.exit.label < $1.exit.label }.map { s in
            ["exit": s.exit.label, "exit_node": s.exit.nodeID.short, "country": s.exit.country ?? "?",
             "front": s.front.label, "front_node": s.front.nodeID.short, "front_host": "\(s.front.host):\(s.front.port)",
             "carrier": s.carrier.name,
             "reserve": reserves[s.exit.nodeID]?.front.label ?? "", "reserve_node": reserves[s.exit.nodeID]?.front.nodeID.short ?? "",
             "reserve_state": reserves[s.exit.nodeID].map { $0.isUp ? "up" : "opening" } ?? "",
             "resumptions": s.resumptions, "state": s.resuming ? "resuming" : "up"]
        }
        let fronts: [[String: any Sendable]] = reachability.all.map { o in
            var entry: [String: any Sendable] = [
                "front": o.label, "node": o.node.short, "host": o.host, "profile": o.profile, "state": o.state.rawValue,
                "working_profile": o.workingProfile?.name ?? "",
                "profile_errors": Dictionary(uniqueKeysWithValues: o.profileErrors.map { ($0.key.name, $0.value) }) as [String: String],
                "successes": o.successes, "failures": o.failures, "last_error": o.lastError ?? "",
                "seconds_ago": Int(clamping: Self.elapsed(since: o.lastAttempt, now: now) / 1_000_000_000),
            ]
            entry["rtt_ms"] = o.rttMilliseconds.map { Int(clamping: $0) as any Sendable } ?? NSNull()
            return entry
        }
        let events: [[String: any Sendable]] = self.events.map { e in
            ["kind": e.kind.rawValue, "exit": e.exit, "from_front": e.fromFront, "to_front": e.toFront, "reason": e.reason,
             "stall_ms": e.stallMilliseconds.map { Int(clamping: $0) as any Sendable } ?? NSNull(),
             "seconds_ago": Int(clamping: Self.elapsed(since: e.at, now: now) / 1_000_000_000)]
        }
        let measured: [String: any Sendable] = Dictionary(uniqueKeysWithValues: exits.compactMap { e in
            measuredRTT[e.nodeID].map { (e.label, Int(clamping: $0) as any Sendable) }
        })
        return [
            "steering": ["active": active, "events": events, "measured_ms": measured] as [String: any Sendable],
            "reachability": ["vantage": ["source_group": reachability.sourceGroup, "country": vantage.country, "asn": Int(vantage.asn)]
                                as [String: any Sendable],
                             "fronts": fronts,
                             "map_seconds_ago": mapFetchedAt.map { Int(clamping: (NIODeadline.now() - $0).nanoseconds / 1_000_000_000) as any Sendable } ?? NSNull(),
                             "map": mapSources.keys.sorted { $0.hex < $1.hex }.map { node -> [String: any Sendable] in
                                 ["node": node.short, "label": members.first { $0.nodeID == node }?.label ?? node.short, "profile": "t0",
                                  "state": reachability.map[node]?.rawValue ?? "unknown", "sources": mapSources[node] ?? 0]
                             }] as [String: any Sendable],
        ]
    }

    public func status() -> [CircuitStatus] {
        let now = WallClock.now()
        return (Array(sessions.values) + overflow.values.joined()).filter(\.isActive).map { s in
            CircuitStatus(exit: s.exit.label, exitCountry: s.exit.country ?? "?", front: s.front.label,
                          relayed: s.front.nodeID != s.exit.nodeID, streamsActive: s.activeStreams, streamsOpened: s.streamsOpened,
                          bytesUp: s.bytesUp, bytesDown: s.bytesDown, ageSeconds: Self.elapsed(since: s.openedAt, now: now),
                          reserve: reserves[s.exit.nodeID].flatMap { $0.isUp ? $0.front.label : nil },
                          resumptions: s.resumptions, lastStallMilliseconds: s.lastStallMilliseconds, carrier: s.carrier.name)
        }.sorted { $0.exit < $1.exit }
    }

    /// Seconds from `start` to `now`, 0 when the wall clock stepped back in between (never traps).
    public static func elapsed(since start: UInt64, now: UInt64) -> UInt64 {
        now >= start ? now - start : 0
    }

    /// Measures the path to each exit not measured yet (at most `limit` at once): a control
    /// session through the exit's best front, timed from dial to established, then closed. The
    /// figure feeds automatic selection (lowest first); the account is never shown to the exit.
    public func measureUnmeasured(limit: Int = 4) {
        loop.preconditionInEventLoop()
        let candidates = exits.filter { measuredRTT[$0.nodeID] == nil && !probing.contains($0.nodeID) && (options.allowAdvisory || $0.corroborated) }
        for exit in candidates.prefix(max(0, limit - probing.count)) {
            guard let front = frontCandidates(for: exit).first(where: { $0.nodeID != exit.nodeID }) else { continue }
            probing.insert(exit.nodeID)
            let started = NIODeadline.now()
            let endpoint = carrierLadder(for: front).first
            open(to: exit, via: front, endpoint: endpoint, probe: true).whenComplete { [self] result in
                probing.remove(exit.nodeID)
                if case .failure(let error) = result {
                    let reached = Self.isAnswerFromFront(error)
                    recordFront(front, reached: reached, error: reached ? nil : Self.carrierFailure(error), endpoint: endpoint)
                }
                if case .success(let session) = result {
                    recordFront(front, reached: true, endpoint: endpoint)
                    let ms = UInt64(max(0, (NIODeadline.now() - started).nanoseconds / 1_000_000))
                    if measuredRTT[exit.nodeID] == nil { measuredRTT[exit.nodeID] = ms }
                    session.mux.close()
                }
            }
        }
    }

    /// The measured path time (ms) per exit, for status output.
    public var measurements: [NodeID: UInt64] { measuredRTT }

    /// Asks the exit of `session` what it knows of this account (`/montana/account/1.0.0`): why
    /// an open was refused with status 3. nil when it does not answer within 3 s.
    public func accountStatus(_ session: ExitSession) -> EventLoopFuture<AccountStatus?> {
        let promise = loop.makePromise(of: AccountStatus?.self)
        guard let stream = session.mux.openStream(protocol: AccountStatusService.protocolID, negotiated: { ok in
            if !ok { promise.succeed(nil) }
        }) else { return loop.makeSucceededFuture(nil) }
        var decoder = LengthPrefixedDecoder(maxMessageSize: 256)
        var done = false
        func finish(_ s: AccountStatus?) {
            guard !done else { return }
            done = true
            promise.succeed(s)
            stream.reset()
        }
        stream.onData = { buffer in
            decoder.append(buffer)
            stream.consumed(buffer.readableBytes)
            if let message = try? decoder.nextMessage() {
                finish(try? AccountStatus.decode(Array(message.readableBytesView)))
            }
        }
        stream.onEnd = { _ in finish(nil) }
        stream.startReading()
        loop.assumeIsolated().scheduleTask(in: .seconds(3)) { finish(nil) }
        return promise.futureResult
    }

    public func closeAll() {
        let all = Array(sessions.values) + overflow.values.joined()
        sessions = [:]
        overflow = [:]
        for s in all { s.mux.close() }
        failAllWaiting(CircuitManagerError.busy("the client is shutting down"))
        for exit in Array(reserves.keys) { dropReserve(exit) }
    }

    /// The live session to this exit, if any (the reserve logic asks).
    func liveSession(_ exit: NodeID) -> ExitSession? {
        sessions[exit].flatMap { $0.isActive ? $0 : nil }
    }

    /// A primary session that closed while still the one in use: forgotten, so the next
    /// connection builds a new one (through the reserve first).
    func forgetSession(_ session: ExitSession) -> Bool {
        guard let current = sessions[session.exit.nodeID], current === session else { return false }
        sessions[session.exit.nodeID] = nil
        return true
    }
}
