import MontanaWire

/// Who a replay-memory entry is charged to: a source network (IPv4 /24, IPv6 /48 by default) or
/// a member's address. Opaque here; `MontanaTransport`'s admission derives it from the source.
public struct ReplayOwner: Hashable, Sendable {
    public let high: UInt64
    public let low: UInt64
    public let tag: UInt8

    public init(high: UInt64, low: UInt64, tag: UInt8) {
        self.high = high
        self.low = low
        self.tag = tag
    }
}

/// `H(kem_ct)` as four words: a dictionary key without a heap allocation per entry.
public struct ReplayDigest: Hashable, Sendable {
    let a: UInt64, b: UInt64, c: UInt64, d: UInt64

    init(_ bytes: [UInt8]) {
        func word(_ i: Int) -> UInt64 { bytes[i..<(i + 8)].reduce(0) { $0 << 8 | UInt64($1) } }
        a = word(0)
        b = word(8)
        c = word(16)
        d = word(24)
    }

    public init(kemCiphertext: [UInt8]) {
        self.init(Digests.sha256(kemCiphertext))
    }
}

/// The checks a hop applies to an opened preface before it answers anything (PROTOCOL.md
/// section 3): timestamp within ±120 s, not a replay within 240 s, the alliance when admission is
/// on. The replay memory is hard-bounded; when full it refuses new prefaces (fail closed) rather
/// than forgetting live ones. Each owner (a source network or a member) may hold at most its own
/// share of the memory: a prefix over its share is refused and only that prefix degrades.
/// Not thread-safe: one gate per event loop, or guard it with a lock.
///
/// Memory: about 150 bytes per entry (digest key and expiry in the map, digest, expiry and owner
/// in the expiry queue, per-owner counters), so the default 65,536 entries take about 10 MiB.
public struct PrefaceGate: Sendable {
    public static let maxSkew: UInt64 = 120
    public static let replayWindow: UInt64 = 240
    /// PROTOCOL.md 3.4 / docs/OPERATIONS.md `admission.replay_capacity`.
    public static let defaultCapacity = 65536

    private struct Entry {
        let digest: ReplayDigest
        let expiry: UInt64
        let owner: ReplayOwner?
    }

    public let capacity: Int
    public let alliance: [UInt8]?
    private var seen: [ReplayDigest: UInt64] = [:]
    private var order: [Entry] = []
    private var orderStart = 0
    private var owners: [ReplayOwner: Int] = [:]

    public init(capacity: Int = PrefaceGate.defaultCapacity, alliance: [UInt8]? = nil) {
        self.capacity = capacity
        self.alliance = alliance
    }

    public var count: Int { seen.count }

    /// Live entries charged to `owner`.
    public func count(of owner: ReplayOwner) -> Int { owners[owner] ?? 0 }

    /// Opens and checks a preface. On success the preface is remembered against replay.
    public mutating func admit(_ preface: [UInt8], key: KEMKey, now: UInt64) throws(PrefaceError) -> (message: Preface.Message, keys: Preface.Keys) {
        let opened = try Preface.open(preface, with: key)
        try check(opened.message, kemCiphertext: Array(preface.prefix(KEMKey.ciphertextSize)), now: now)
        return opened
    }

    /// The checks after opening: freshness, admission, replay (remembering it on success).
    public mutating func check(_ message: Preface.Message, kemCiphertext: [UInt8], now: UInt64) throws(PrefaceError) {
        let digest = try inspect(message, kemCiphertext: kemCiphertext, now: now, owner: nil, ownerLimit: capacity)
        try remember(digest, now: now, owner: nil, ownerLimit: capacity)
    }

    /// Every check after opening — freshness, alliance, replay, room in the memory and in the
    /// owner's share — without remembering anything. The caller remembers the returned digest
    /// (`remember`) only once it has decided to answer the preface, so refused prefaces never
    /// take room.
    public mutating func inspect(_ message: Preface.Message, kemCiphertext: [UInt8], now: UInt64,
                                 owner: ReplayOwner?, ownerLimit: Int) throws(PrefaceError) -> ReplayDigest {
        let ext = message.ext
        guard let ts = ext.ts else { throw .missingTimestamp }
        guard (ts > now ? ts - now : now - ts) <= Self.maxSkew else { throw .staleTimestamp }
        if let alliance {
            guard let theirs = ext.alliance, ConstantTime.equal(theirs, alliance) else { throw .unknownAlliance }
        }
        let digest = ReplayDigest(kemCiphertext: kemCiphertext)
        try room(for: digest, now: now, owner: owner, ownerLimit: ownerLimit)
        return digest
    }

    /// Remembers an inspected preface for 240 s. Checks again (another connection may have
    /// remembered the same ciphertext, or taken the last room, since `inspect`).
    public mutating func remember(_ digest: ReplayDigest, now: UInt64, owner: ReplayOwner?, ownerLimit: Int) throws(PrefaceError) {
        try room(for: digest, now: now, owner: owner, ownerLimit: ownerLimit)
        let expiry = now &+ Self.replayWindow
        seen[digest] = expiry
        order.append(Entry(digest: digest, expiry: expiry, owner: owner))
        if let owner { owners[owner, default: 0] += 1 }
    }

    private mutating func room(for digest: ReplayDigest, now: UInt64, owner: ReplayOwner?, ownerLimit: Int) throws(PrefaceError) {
        expire(now: now)
        if let expiry = seen[digest], expiry > now { throw .replay }
        if let owner, owners[owner, default: 0] >= ownerLimit { throw .replayShareFull }
        guard seen.count < capacity else { throw .replayCacheFull }
    }

    private mutating func expire(now: UInt64) {
        while orderStart < order.count, order[orderStart].expiry <= now {
            let entry = order[orderStart]
            if let e = seen[entry.digest], e <= now { seen[entry.digest] = nil }
            if let owner = entry.owner {
                let left = owners[owner, default: 1] - 1
                owners[owner] = left > 0 ? left : nil
            }
            orderStart += 1
        }
        if orderStart > 1024 && orderStart * 2 > order.count {
            order.removeFirst(orderStart)
            orderStart = 0
        }
    }
}
