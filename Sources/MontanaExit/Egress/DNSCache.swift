import NIOConcurrencyHelpers
import NIOCore

/// The resolver's cache, shared by every session of the node: one entry per (name, type), positive
/// (addresses) or negative (NXDOMAIN / NODATA), each expiring after its clamped TTL. At most
/// `capacity` entries; the least recently used goes first when it is full.
public final class DNSCache: Sendable {
    public struct Key: Hashable, Sendable {
        public var name: String
        public var type: DNSRecordType
        public init(name: String, type: DNSRecordType) {
            self.name = name
            self.type = type
        }
    }

    public enum Value: Sendable, Equatable {
        case addresses([[UInt8]])
        case negative(nameExists: Bool)
    }

    private struct Entry {
        var value: Value
        var expires: NIODeadline
        var stamp: UInt64
    }

    private struct State {
        var entries: [Key: Entry] = [:]
        /// Keys in order of last use, with the stamp they had then; stale pairs (the entry was
        /// used again or removed since) are skipped when evicting and dropped when compacting.
        var order: [(Key, UInt64)] = []
        var head = 0
        var clock: UInt64 = 0
    }

    public let capacity: Int
    private let state = NIOLockedValueBox(State())

    public init(capacity: Int) {
        self.capacity = max(0, capacity)
    }

    public var count: Int { state.withLockedValue { $0.entries.count } }

    /// The live entry for `key`, refreshed as recently used; an expired one is removed.
    public func get(_ key: Key, now: NIODeadline = .now()) -> Value? {
        state.withLockedValue { s in
            guard let entry = s.entries[key] else { return nil }
            guard entry.expires > now else {
                s.entries[key] = nil
                return nil
            }
            Self.touch(&s, key)
            Self.compactIfNeeded(&s, capacity: capacity)
            return entry.value
        }
    }

    /// Stores `value` for `ttlSeconds` (already clamped by the caller).
    public func put(_ key: Key, _ value: Value, ttlSeconds: UInt32, now: NIODeadline = .now()) {
        guard capacity > 0 else { return }
        state.withLockedValue { s in
            s.clock &+= 1
            s.entries[key] = Entry(value: value, expires: now + .seconds(Int64(ttlSeconds)), stamp: s.clock)
            s.order.append((key, s.clock))
            while s.entries.count > capacity, s.head < s.order.count {
                let (oldest, stamp) = s.order[s.head]
                s.head += 1
                if s.entries[oldest]?.stamp == stamp { s.entries[oldest] = nil }
            }
            Self.compactIfNeeded(&s, capacity: capacity)
        }
    }

    private static func touch(_ s: inout State, _ key: Key) {
        s.clock &+= 1
        s.entries[key]?.stamp = s.clock
        s.order.append((key, s.clock))
    }

    /// Keeps `order` within a constant factor of `capacity`: rebuilt from the live entries when
    /// stale pairs outnumber them, so hits on a cache that never fills cannot grow it forever.
    private static func compactIfNeeded(_ s: inout State, capacity: Int) {
        let live = s.order.count - s.head
        guard live > 2 * max(capacity, s.entries.count) + 64 else { return }
        s.order = s.entries.map { ($0.key, $0.value.stamp) }.sorted { $0.1 < $1.1 }
        s.head = 0
    }
}
