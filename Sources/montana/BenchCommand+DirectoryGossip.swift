import Foundation
import MontanaCrypto
import MontanaDirectory
import MontanaTransport
import MontanaWire

/// Figures 2 and 3 of `montana bench directory`: an alliance of `members` in-memory
/// `DirectoryStore`s gossiping in simulated time, exchanges made the way `NodeDirectory` makes
/// them and answered the way `PeerExchangeService` answers, with the real store calls
/// (`digest()`, `newer(than:now:)`, `offerRecord`, `offerAttestation`) on real signed records
/// and attestations. Every SyncFrame either side would write is encoded and counted with its
/// uvarint length prefix (yamux, Noise and TCP framing come on top).
///
/// Model (the constants are NodeDirectory's):
/// - members start at uniformly random times in the first `startSpread` (5 minutes), so their
///   5-minute re-sign timers are spread as in a long-running alliance; each bootstraps from the
///   previous one (a ring, as `montana demo` does);
/// - each re-signs every 300 s, gossips with its bootstrap link and 3 random live members every
///   60 s (first round 300 ms after start), and after any change of its store pushes, 150 ms
///   later, to its bootstrap link and 6 random live members; exchanges with one peer are at
///   least 1 s apart (a push is deferred until then, a scheduled one is skipped);
/// - a responder allows each initiator a burst of 8 exchanges, then one per 5 s
///   (`InboundExchangeLimiter`); a refused initiator has still sent its opening frame;
/// - an exchange takes `exchangeMillis` (100 ms); the stores change when it ends. Received items
///   are applied after the receiver has computed its own answer (as `SyncBatch` flushes them);
/// - each exit is attested by `attesters` others, each 2 s after it first holds the exit's record
///   (`Attester.settleSeconds`); attestations are re-issued after 6 h, so not within the run;
/// - one client long-polls member 0 as `ClientDirectory` does (first ask without waiting, then
///   `wait_seconds = 25`, at least 500 ms between answers), to show a client's steady cost.
final class GossipSimulation {
    struct Parameters {
        var members = 100
        var exits = 60
        var attesters = 16
        var hours = 2
        var seed: UInt64 = 1
        var exchangeMillis: UInt64 = 100
        var startSpreadMillis: UInt64 = 300_000
    }

    // NodeDirectory, Attester, InboundExchangeLimiter and ClientDirectory constants, in ms.
    static let windowMillis: UInt64 = 60_000
    static let firstRoundMillis: UInt64 = 300
    static let resignMillis: UInt64 = 300_000
    static let pushDelayMillis: UInt64 = 150
    static let minGapMillis: UInt64 = 1000
    static let fanout = 3
    static let pushFanout = 6
    static let maxPeerSessions = 16
    static let expireMillis: UInt64 = 30_000
    static let settleMillis: UInt64 = 2000
    static let inboundBurst = 8.0
    static let inboundRefillMillis = 5000.0
    static let clientWaitSeconds: UInt64 = 25
    static let clientGapMillis: UInt64 = 500
    static let hourMillis: UInt64 = 3_600_000

    /// Bytes and counts of one simulated hour.
    struct Hour {
        var sent: [Int]
        var received: [Int]
        var openingDigest = 0, openingSelfRecord = 0, answerDigest = 0, records = 0, attestations = 0, ends = 0
        var exchanges = 0, scheduled = 0, pushes = 0, deferred = 0, skippedGap = 0, rateLimited = 0, unreachable = 0
        var recordsCarried = 0, attestationsCarried = 0, newSessions = 0
        var clientRequests = 0, clientRequestBytes = 0, clientAnswerBytes = 0, clientRecords = 0, clientAttestations = 0

        init(members: Int) {
            sent = Array(repeating: 0, count: members)
            received = Array(repeating: 0, count: members)
        }

        var total: Int { sent.reduce(0, +) }
    }

    /// What a client downloads to bootstrap from a converged member (figure 3).
    struct Bootstrap {
        let requestBytes: Int
        let records: Int
        let recordBytes: Int
        let attestations: Int
        let attestationBytes: Int
        let endBytes: Int
        var answerBytes: Int { recordBytes + attestationBytes + endBytes }
    }

    struct Result {
        let parameters: Parameters
        let hours: [Hour]
        /// Simulated seconds until every store held every record and attestation (equal digests).
        let convergedAfter: Double?
        let bootstrap: Bootstrap
        let recordBytes: Int
        let attestationBytes: Int
        let runSeconds: Double
    }

    private enum Event {
        case start(Int)
        case publish(Int)
        case gossip(Int)
        case changed(Int)
        case push(Int)
        case exchange(Int, Int)
        case attest(Int, Int)
        case expire(Int)
        case clientPoll
        case clientTimeout(Int)
    }

    private final class Member {
        let bench: BenchMember
        let store: DirectoryStore
        let bootstrap: Int
        let startMillis: UInt64
        var started = false
        var ownSigned: [UInt8] = []
        var ownWindow: UInt32 = 0
        var lastExchange: [Int: UInt64] = [:]
        var pushScheduled = false
        var inbound: [Int: (tokens: Double, at: UInt64)] = [:]
        var sessions: [Int] = []
        var attests: [Int] = []
        var attestScheduled: Set<Int> = []
        var digestCache: (counter: UInt64, entries: [DigestEntry], bytes: [UInt8], windows: [[UInt8]: UInt32])?
        /// Attestations this store has taken in (`.added` or `.updated`).
        var taken: Set<[UInt8]> = []
        /// This state's digest's number among the window's distinct digests.
        var digestID: (counter: UInt64, window: UInt64, id: Int)?
        /// Answers of `newer(than:now:)` for this state and window, by the digest asked about.
        var newerCache: (counter: UInt64, window: UInt64, answers: [Int: Items]) = (0, 0, [:])

        init(bench: BenchMember, store: DirectoryStore, bootstrap: Int, startMillis: UInt64) {
            self.bench = bench
            self.store = store
            self.bootstrap = bootstrap
            self.startMillis = startMillis
        }

        /// The store's digest, recomputed only when the store changed (it depends on nothing else).
        func digest() -> (entries: [DigestEntry], bytes: [UInt8]) {
            let c = cachedDigest()
            return (c.entries, c.bytes)
        }

        /// The window of the record held for a node id, from the digest.
        func window(of id: NodeID) -> UInt32? { cachedDigest().windows[id.bytes] }

        private func cachedDigest() -> (counter: UInt64, entries: [DigestEntry], bytes: [UInt8], windows: [[UInt8]: UInt32]) {
            let counter = store.changeCounter
            if let c = digestCache, c.counter == counter { return c }
            let entries = store.digest()
            var windows: [[UInt8]: UInt32] = [:]
            for e in entries { windows[e.nodeID] = e.window }
            let c = (counter, entries, DigestEntry.encode(entries), windows)
            digestCache = c
            return c
        }
    }

    typealias Items = (records: [[UInt8]], attestations: [[UInt8]])

    let parameters: Parameters
    private var rng: SplitMix64
    /// Distinct digests seen in the current window, numbered (so a digest is hashed once).
    private var digestIDs: (window: UInt64, ids: [[UInt8]: Int]) = (0, [:])
    private let t0: UInt64
    private var members: [Member] = []
    private var index: [[UInt8]: Int] = [:]
    /// Offering an attestation a store has taken in before can only be `.unchanged` while none
    /// leaves it: true when no subject has more attesters than the store keeps (16) — no
    /// records leave in the simulation (none expires, is withdrawn or evicted).
    private let skipKnownAttestations: Bool
    private var peerChecks = 0
    private var queue = EventQueue<Event>()
    private var hours: [Hour]
    private var complete: Set<Int> = []
    private var convergedAt: UInt64?
    private var expectedAttestations = 0
    private var attestationBytes = 0
    private var attestationsSigned = 0
    private let client: DirectoryStore
    private var clientParked = false
    private var clientToken = 0
    private var clientAsked = false

    init(_ parameters: Parameters, alliance: AllianceDocument, members bench: [BenchMember]) throws {
        self.parameters = parameters
        rng = SplitMix64(seed: parameters.seed)
        t0 = WallClock.now()
        hours = Array(repeating: Hour(members: bench.count), count: parameters.hours)
        client = try DirectoryStore(path: nil, alliance: alliance, now: t0)
        skipKnownAttestations = parameters.attesters <= DirectoryLimits().maxAttestationsPerSubject
            && parameters.exits * parameters.attesters <= DirectoryLimits().maxAttestations
        for (i, b) in bench.enumerated() {
            let store = try DirectoryStore(path: nil, alliance: alliance, now: t0)
            let start = UInt64.random(in: 0..<max(1, parameters.startSpreadMillis), using: &rng)
            members.append(Member(bench: b, store: store, bootstrap: (i + bench.count - 1) % bench.count, startMillis: start))
            index[b.nodeID.bytes] = i
        }
        for (e, exit) in bench.enumerated() where exit.isExit {
            let others = (0..<bench.count).filter { $0 != e }.shuffled(using: &rng).prefix(parameters.attesters)
            for a in others { members[a].attests.append(e) }
            expectedAttestations += min(others.count, DirectoryLimits().maxAttestationsPerSubject)
        }
    }

    private func unix(_ ms: UInt64) -> UInt64 { t0 + ms / 1000 }
    private func hour(_ ms: UInt64) -> Int { min(Int(ms / Self.hourMillis), parameters.hours - 1) }

    /// Runs the simulated hours; `progress` hears about each one.
    func run(progress: (String) -> Void) throws -> Result {
        let began = Date()
        for i in members.indices { queue.push(.start(i), at: members[i].startMillis) }
        queue.push(.clientPoll, at: members[0].startMillis + 1000)
        let end = UInt64(parameters.hours) * Self.hourMillis
        var reported = 0
        while let (t, event) = queue.pop(), t < end {
            if hour(t) > reported {
                reported = hour(t)
                progress(String(format: "  simulated hour %d done (%.0f s)", reported, Date().timeIntervalSince(began)))
            }
            try handle(event, at: t)
        }
        let last = members[0].store.newer(than: [], now: unix(end))
        let bootstrap = Bootstrap(
            requestBytes: Self.wire(SyncFrame(digest: DigestEntry.encode([]), waitSeconds: 0)),
            records: last.records.count, recordBytes: last.records.reduce(0) { $0 + Self.wire(SyncFrame(record: $1)) },
            attestations: last.attestations.count,
            attestationBytes: last.attestations.reduce(0) { $0 + Self.wire(SyncFrame(attestation: $1)) },
            endBytes: Self.wire(SyncFrame(end: 1)))
        let recordBytes = members.map(\.ownSigned.count).reduce(0, +) / max(1, members.count)
        let attestationAverage = attestationsSigned > 0 ? attestationBytes / attestationsSigned : 0
        return Result(parameters: parameters, hours: hours, convergedAfter: convergedAt.map { Double($0) / 1000 }, bootstrap: bootstrap,
                      recordBytes: recordBytes, attestationBytes: attestationAverage, runSeconds: Date().timeIntervalSince(began))
    }

    /// A frame's bytes on the stream: `uvarint len ‖ frame`.
    static func wire(_ frame: SyncFrame) -> Int {
        let n = frame.encode().count
        return n + UVarint.encode(UInt64(n)).count
    }

    private func handle(_ event: Event, at t: UInt64) throws {
        switch event {
        case .start(let m):
            members[m].started = true
            try publish(m, at: t)
            queue.push(.gossip(m), at: t + Self.firstRoundMillis)
            queue.push(.expire(m), at: t + Self.expireMillis)
        case .publish(let m):
            try publish(m, at: t)
        case .gossip(let m):
            for p in try peers(m, random: Self.fanout, at: t) { exchange(m, p, push: false, at: t) }
            queue.push(.gossip(m), at: t + Self.windowMillis)
        case .changed(let m):
            changed(m, at: t)
        case .push(let m):
            members[m].pushScheduled = false
            for p in try peers(m, random: Self.pushFanout, at: t) { exchange(m, p, push: true, at: t) }
        case .exchange(let a, let b):
            exchange(a, b, push: true, at: t)
        case .attest(let a, let s):
            let signed = try members[a].bench.attestation(of: members[s].bench, now: unix(t))
            attestationBytes += signed.count
            attestationsSigned += 1
            if offer(attestation: signed, to: members[a], now: unix(t)) { queue.push(.changed(a), at: t) }
        case .expire(let m):
            if members[m].store.expire(now: unix(t)) > 0 { queue.push(.changed(m), at: t) }
            queue.push(.expire(m), at: t + Self.expireMillis)
        case .clientPoll:
            clientPoll(at: t)
        case .clientTimeout(let token):
            if clientParked, token == clientToken {
                clientParked = false
                clientAnswer(at: t)
            }
        }
    }

    private func publish(_ m: Int, at t: UInt64) throws {
        let signed = try members[m].bench.signedRecord(now: unix(t))
        members[m].ownSigned = signed
        members[m].ownWindow = UInt32(truncatingIfNeeded: TimeWindow.window(unixSeconds: unix(t)))
        let outcome = members[m].store.offerRecord(signed, now: unix(t))
        if case .rejected(let why) = outcome { throw BenchError("member \(m)'s own record refused: \(why)") }
        queue.push(.changed(m), at: t)
        queue.push(.publish(m), at: t + Self.resignMillis)
    }

    /// `NodeDirectory.changed`: wake long polls, schedule one push; the attester notices members.
    private func changed(_ m: Int, at t: UInt64) {
        let member = members[m]
        if m == 0, clientParked {
            clientParked = false
            clientAnswer(at: t)
        }
        for s in member.attests where !member.attestScheduled.contains(s) {
            if member.store.member(members[s].bench.nodeID, now: unix(t)) != nil {
                member.attestScheduled.insert(s)
                queue.push(.attest(m, s), at: t + Self.settleMillis)
            }
        }
        if !member.pushScheduled {
            member.pushScheduled = true
            queue.push(.push(m), at: t + Self.pushDelayMillis)
        }
        if convergedAt == nil, member.store.recordCount == members.count, member.store.attestationCount == expectedAttestations {
            complete.insert(m)
            // Converged: every store holds every record and attestation, the same ones (equal digests).
            let window = TimeWindow.window(unixSeconds: unix(t))
            let id = digestID(member, window: window)
            if complete.count == members.count, members.allSatisfy({ digestID($0, window: window) == id }) { convergedAt = t }
        }
    }

    /// `store.newer(than: digest, now:)`, memoized: the answer depends only on the store's state
    /// (which moves `changeCounter` whenever it changes), the digest, and `now` through which
    /// records are kept — which within one window changes only when a record's `expires_at`
    /// passes, and here none does (each lives an hour and is replaced every 5 minutes).
    /// Spares the simulation most of its `newer` calls (each hashes every subject's
    /// attestations); the items are the store's own answer.
    private func newer(_ member: Member, than peer: Member, now: UInt64) -> Items {
        let window = TimeWindow.window(unixSeconds: now)
        let counter = member.store.changeCounter
        let id = digestID(peer, window: window)
        // The same digest as ours: nothing is newer (records of the same window are not sent, nor
        // are attestations with the same digest), unless we hold tombstones (sent at equal windows).
        if id == digestID(member, window: window), member.store.tombstoneCount == 0 { return ([], []) }
        if member.newerCache.counter != counter || member.newerCache.window != window { member.newerCache = (counter, window, [:]) }
        if let hit = member.newerCache.answers[id] { return hit }
        let answer = member.store.newer(than: peer.digest().entries, now: now)
        member.newerCache.answers[id] = answer
        return answer
    }

    private func digestID(_ member: Member, window: UInt64) -> Int {
        let counter = member.store.changeCounter
        if let d = member.digestID, d.counter == counter, d.window == window { return d.id }
        if digestIDs.window != window { digestIDs = (window, [:]) }
        let bytes = member.digest().bytes
        let id = digestIDs.ids[bytes] ?? digestIDs.ids.count
        digestIDs.ids[bytes] = id
        member.digestID = (counter, window, id)
        return id
    }

    /// `NodeDirectory.peers`: the bootstrap link, then `random` other live members, taken from
    /// the store's digest: here a record held is live exactly while its window is fresh (none
    /// is withdrawn or expires), which every 256th call checks against `members(now:)`.
    private func peers(_ m: Int, random: Int, at t: UInt64) throws -> [Int] {
        let member = members[m]
        var out = member.bootstrap == m ? [] : [member.bootstrap]
        let now = unix(t)
        let live = member.digest().entries.filter { RecordValidator.isFresh(window: $0.window, now: now) }.compactMap { index[$0.nodeID] }
        peerChecks += 1
        if peerChecks % 256 == 0 {
            let real = member.store.members(now: now).compactMap { index[$0.nodeID.bytes] }
            guard Set(real) == Set(live) else { throw BenchError("member \(m): live members differ from the digest's at t = \(t) ms") }
        }
        out += live.filter { $0 != m && $0 != member.bootstrap }.shuffled(using: &rng).prefix(random)
        return out
    }

    /// One exchange, initiator `a`, responder `b`, frames counted both ways.
    private func exchange(_ a: Int, _ b: Int, push: Bool, at t: UInt64) {
        let h = hour(t)
        let A = members[a], B = members[b]
        guard a != b, A.started else { return }
        if let last = A.lastExchange[b], t >= last, t - last < Self.minGapMillis {
            if push {
                hours[h].deferred += 1
                queue.push(.exchange(a, b), at: last + Self.minGapMillis)
            } else {
                hours[h].skippedGap += 1
            }
            return
        }
        A.lastExchange[b] = t
        guard B.started else {
            hours[h].unreachable += 1
            return
        }
        if !A.sessions.contains(b) {
            hours[h].newSessions += 1
            if A.sessions.count >= Self.maxPeerSessions { A.sessions.remove(at: Int.random(in: 0..<A.sessions.count, using: &rng)) }
            A.sessions.append(b)
        }
        hours[h].exchanges += 1
        if push { hours[h].pushes += 1 } else { hours[h].scheduled += 1 }
        let now = unix(t)

        // Initiator: {self_record, digest}.
        let aDigest = A.digest()
        let opening = Self.wire(SyncFrame(digest: aDigest.bytes, selfRecord: A.ownSigned))
        let digestPart = Self.wire(SyncFrame(digest: aDigest.bytes))
        count(opening, from: a, to: b, h)
        hours[h].openingDigest += digestPart
        hours[h].openingSelfRecord += opening - digestPart
        guard allowInbound(at: b, from: a, t) else {
            hours[h].rateLimited += 1
            return
        }
        // Responder: everything newer than the initiator's digest, then {digest, end}.
        let fromB = newer(B, than: A, now: now)
        let bDigest = B.digest()
        sendItems(fromB, from: b, to: a, h)
        let closing = Self.wire(SyncFrame(digest: bDigest.bytes, end: 1))
        count(closing, from: b, to: a, h)
        hours[h].answerDigest += closing
        // Initiator: what is newer than the responder's digest (computed before applying what
        // it received, as SyncBatch applies after the answer is sent), then {end}.
        let fromA = newer(A, than: B, now: now)
        sendItems(fromA, from: a, to: b, h)
        let end = Self.wire(SyncFrame(end: 1))
        count(end, from: a, to: b, h)
        hours[h].ends += end

        let aBefore = A.store.changeCounter, bBefore = B.store.changeCounter
        apply(fromB, to: A, now: now)
        // The responder offers the initiator's self_record first. When it already holds a record
        // of that window the offer is `.unchanged` (in one window only a withdrawal replaces a
        // record, and there are none here); it is skipped then, to spare two signature checks
        // per exchange in this single-process simulation.
        if B.window(of: A.bench.nodeID) != A.ownWindow { _ = B.store.offerRecord(A.ownSigned, now: now) }
        apply(fromA, to: B, now: now)
        if A.store.changeCounter != aBefore { queue.push(.changed(a), at: t + parameters.exchangeMillis) }
        if B.store.changeCounter != bBefore { queue.push(.changed(b), at: t + parameters.exchangeMillis) }
    }

    private func count(_ bytes: Int, from: Int, to: Int, _ h: Int) {
        hours[h].sent[from] += bytes
        hours[h].received[to] += bytes
    }

    private func sendItems(_ items: Items, from: Int, to: Int, _ h: Int) {
        for r in items.records {
            let n = Self.wire(SyncFrame(record: r))
            count(n, from: from, to: to, h)
            hours[h].records += n
        }
        for a in items.attestations {
            let n = Self.wire(SyncFrame(attestation: a))
            count(n, from: from, to: to, h)
            hours[h].attestations += n
        }
        hours[h].recordsCarried += items.records.count
        hours[h].attestationsCarried += items.attestations.count
    }

    private func apply(_ items: Items, to member: Member, now: UInt64) {
        for r in items.records { _ = member.store.offerRecord(r, now: now) }
        for a in items.attestations { _ = offer(attestation: a, to: member, now: now) }
    }

    /// `offerAttestation`, skipping (when `skipKnownAttestations`) one the store has taken
    /// before: its answer would be `.unchanged` after two signature checks. True if it changed.
    private func offer(attestation a: [UInt8], to member: Member, now: UInt64) -> Bool {
        if skipKnownAttestations, member.taken.contains(a) { return false }
        switch member.store.offerAttestation(a, now: now) {
        case .added, .updated:
            member.taken.insert(a)
            return true
        case .unchanged, .rejected:
            return false
        }
    }

    /// `InboundExchangeLimiter`: a burst of 8 per initiator, then one every 5 s.
    private func allowInbound(at b: Int, from a: Int, _ t: UInt64) -> Bool {
        var bucket = members[b].inbound[a] ?? (Self.inboundBurst, t)
        let elapsed = t >= bucket.at ? Double(t - bucket.at) : 0
        bucket.tokens = min(Self.inboundBurst, bucket.tokens + elapsed / Self.inboundRefillMillis)
        bucket.at = t
        let allowed = bucket.tokens >= 1
        if allowed { bucket.tokens -= 1 }
        members[b].inbound[a] = bucket
        return allowed
    }

    // MARK: the client (ClientDirectory against member 0)

    private func clientPoll(at t: UInt64) {
        guard members[0].started else {
            queue.push(.clientPoll, at: t + 1000)
            return
        }
        let h = hour(t)
        let wait: UInt64 = clientAsked ? Self.clientWaitSeconds : 0
        clientAsked = true
        let digest = client.digest()
        hours[h].clientRequests += 1
        hours[h].clientRequestBytes += Self.wire(SyncFrame(digest: DigestEntry.encode(digest), waitSeconds: wait))
        let newer = members[0].store.newer(than: digest, now: unix(t))
        if wait == 0 || !newer.records.isEmpty || !newer.attestations.isEmpty {
            clientAnswer(at: t)
        } else {
            clientParked = true
            clientToken += 1
            queue.push(.clientTimeout(clientToken), at: t + Self.clientWaitSeconds * 1000)
        }
    }

    private func clientAnswer(at t: UInt64) {
        let h = hour(t)
        let newer = members[0].store.newer(than: client.digest(), now: unix(t))
        var bytes = Self.wire(SyncFrame(end: 1))
        for r in newer.records { bytes += Self.wire(SyncFrame(record: r)) }
        for a in newer.attestations { bytes += Self.wire(SyncFrame(attestation: a)) }
        hours[h].clientAnswerBytes += bytes
        hours[h].clientRecords += newer.records.count
        hours[h].clientAttestations += newer.attestations.count
        for r in newer.records { _ = client.offerRecord(r, now: unix(t)) }
        for a in newer.attestations { _ = client.offerAttestation(a, now: unix(t)) }
        queue.push(.clientPoll, at: t + parameters.exchangeMillis + Self.clientGapMillis)
    }
}

/// A min-heap of timed events; equal times keep their insertion order.
struct EventQueue<E> {
    private var heap: [(time: UInt64, seq: UInt64, event: E)] = []
    private var seq: UInt64 = 0

    mutating func push(_ e: E, at time: UInt64) {
        seq += 1
        heap.append((time, seq, e))
        var i = heap.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            guard Self.before(heap[i], heap[parent]) else { break }
            heap.swapAt(i, parent)
            i = parent
        }
    }

    mutating func pop() -> (UInt64, E)? {
        guard !heap.isEmpty else { return nil }
        heap.swapAt(0, heap.count - 1)
        let top = heap.removeLast()
        var i = 0
        while true {
            let l = 2 * i + 1, r = l + 1
            var m = i
            if l < heap.count, Self.before(heap[l], heap[m]) { m = l }
            if r < heap.count, Self.before(heap[r], heap[m]) { m = r }
            guard m != i else { break }
            heap.swapAt(i, m)
            i = m
        }
        return (top.time, top.event)
    }

    private static func before(_ a: (time: UInt64, seq: UInt64, event: E), _ b: (time: UInt64, seq: UInt64, event: E)) -> Bool {
        (a.time, a.seq) < (b.time, b.seq)
    }
}

/// A seeded generator, so a run's choices of peers repeat (keys and signatures still differ).
struct SplitMix64: RandomNumberGenerator {
    private var state: UInt64
    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }
}
