import MontanaSession

/// A rate with its burst.
struct BucketRate: Sendable {
    let rate: Int
    let burst: Int
}

/// What admission keeps per prefix: its preface bucket, its handshake-share bucket (networks
/// only) and its concurrent circuits.
struct PrefixState: Sendable {
    var preface: TokenBucket
    var handshake: TokenBucket
    var circuits: Int

    init(preface: BucketRate, handshake: BucketRate, now: UInt64) {
        self.preface = TokenBucket(burst: preface.burst, now: now)
        self.handshake = TokenBucket(burst: handshake.burst, now: now)
        circuits = 0
    }
}

/// A bounded map of prefix states. When full, a sweep (at most once per `sweepInterval`) drops
/// idle entries — no circuits, both buckets full, so forgetting them loses nothing — and if there
/// is still no room the prefix shares the one overflow entry.
struct PrefixTable: Sendable {
    /// How often a full table may be swept: a sweep walks every entry (~1 ms for 65,536).
    static let sweepInterval: UInt64 = 1_000_000_000

    enum Slot: Sendable, Equatable {
        case entry(SourcePrefix)
        case overflow
    }

    let capacity: Int
    let preface: BucketRate
    let handshake: BucketRate
    private(set) var entries: [SourcePrefix: PrefixState] = [:]
    private(set) var overflow: PrefixState
    private var lastSweep: UInt64?

    init(capacity: Int, preface: BucketRate, handshake: BucketRate, now: UInt64) {
        self.capacity = capacity
        self.preface = preface
        self.handshake = handshake
        overflow = PrefixState(preface: preface, handshake: handshake, now: now)
    }

    var count: Int { entries.count }

    /// The slot for `key`, creating its entry if there is (or a sweep makes) room.
    mutating func slot(_ key: SourcePrefix, now: UInt64) -> Slot {
        if entries[key] != nil { return .entry(key) }
        if entries.count >= capacity { sweep(now: now) }
        guard entries.count < capacity else { return .overflow }
        entries[key] = PrefixState(preface: preface, handshake: handshake, now: now)
        return .entry(key)
    }

    /// The existing slot for `key` (no creation): for releasing what a ticket holds.
    func existing(_ key: SourcePrefix) -> Slot {
        entries[key] != nil ? .entry(key) : .overflow
    }

    mutating func with<R>(_ slot: Slot, _ body: (inout PrefixState) -> R) -> R {
        switch slot {
        case .entry(let key):
            if entries[key] == nil { return body(&overflow) }  // cannot happen: held entries are never swept
            return body(&entries[key]!)
        case .overflow:
            return body(&overflow)
        }
    }

    private mutating func sweep(now: UInt64) {
        if let lastSweep, now >= lastSweep, now - lastSweep < Self.sweepInterval { return }
        lastSweep = now
        let preface = self.preface, handshake = self.handshake
        entries = entries.filter { _, s in
            s.circuits > 0 || !s.preface.isFull(rate: preface.rate, burst: preface.burst, now: now)
                || !s.handshake.isFull(rate: handshake.rate, burst: handshake.burst, now: now)
        }
    }
}
