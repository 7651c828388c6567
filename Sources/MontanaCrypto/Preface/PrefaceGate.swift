import MontanaWire

/// The checks a hop applies to an opened preface before it answers anything (PROTOCOL.md
/// section 3): timestamp within ±120 s, not a replay within 240 s, the alliance when admission is
/// on. The replay memory is hard-bounded; when full it refuses new prefaces (fail closed) rather
/// than forgetting live ones. Not thread-safe: one gate per event loop, or guard it with a lock.
public struct PrefaceGate: Sendable {
    public static let maxSkew: UInt64 = 120
    public static let replayWindow: UInt64 = 240

    public let capacity: Int
    public let alliance: [UInt8]?
    private var seen: [[UInt8]: UInt64] = [:]
    private var order: [(digest: [UInt8], expiry: UInt64)] = []
    private var orderStart = 0

    public init(capacity: Int = 65536, alliance: [UInt8]? = nil) {
        self.capacity = capacity
        self.alliance = alliance
    }

    public var count: Int { seen.count }

    /// Opens and checks a preface. On success the preface is remembered against replay.
    public mutating func admit(_ preface: [UInt8], key: KEMKey, now: UInt64) throws(PrefaceError) -> (message: Preface.Message, keys: Preface.Keys) {
        let opened = try Preface.open(preface, with: key)
        try check(opened.message, kemCiphertext: Array(preface.prefix(KEMKey.ciphertextSize)), now: now)
        return opened
    }

    /// The checks after opening: freshness, admission, replay (remembering it on success).
    public mutating func check(_ message: Preface.Message, kemCiphertext: [UInt8], now: UInt64) throws(PrefaceError) {
        let ext = message.ext
        guard let ts = ext.ts else { throw .missingTimestamp }
        guard (ts > now ? ts - now : now - ts) <= Self.maxSkew else { throw .staleTimestamp }
        if let alliance {
            guard let theirs = ext.alliance, ConstantTime.equal(theirs, alliance) else { throw .unknownAlliance }
        }
        try remember(digest: Digests.sha256(kemCiphertext), now: now)
    }

    private mutating func remember(digest: [UInt8], now: UInt64) throws(PrefaceError) {
        expire(now: now)
        if let expiry = seen[digest], expiry > now { throw .replay }
        guard seen.count < capacity else { throw .replayCacheFull }
        let expiry = now + Self.replayWindow
        seen[digest] = expiry
        order.append((digest, expiry))
    }

    private mutating func expire(now: UInt64) {
        while orderStart < order.count, order[orderStart].expiry <= now {
            let d = order[orderStart].digest
            if let e = seen[d], e <= now { seen[d] = nil }
            orderStart += 1
        }
        if orderStart > 1024 && orderStart * 2 > order.count {
            order.removeFirst(orderStart)
            orderStart = 0
        }
    }
}
