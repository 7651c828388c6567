import MontanaWire
import NIOConcurrencyHelpers

/// Where reports come from: the /16 (IPv4) or /32 (IPv6) of the address a front saw the report
/// arrive from, never chosen by the reporter. 0x04 ‖ a ‖ b or 0x06 ‖ 4 bytes, as a number.
public struct SourceGroup: Hashable, Sendable, Comparable, CustomStringConvertible {
    public let raw: UInt64

    public init(raw: UInt64) { self.raw = raw }

    /// From a 16-byte IPv6 or IPv4-mapped address.
    public init(address16 ip: [UInt8]) {
        precondition(ip.count == 16)
        if ip[0..<10].allSatisfy({ $0 == 0 }) && ip[10] == 0xff && ip[11] == 0xff {
            raw = 4 << 32 | UInt64(ip[12]) << 8 | UInt64(ip[13])
        } else {
            raw = 6 << 32 | UInt64(ip[0]) << 24 | UInt64(ip[1]) << 16 | UInt64(ip[2]) << 8 | UInt64(ip[3])
        }
    }

    public static func < (a: SourceGroup, b: SourceGroup) -> Bool { a.raw < b.raw }

    public var description: String {
        if raw >> 32 == 4 { return "\((raw >> 8) & 0xff).\(raw & 0xff).0.0/16" }
        let v = raw & 0xffff_ffff
        return String(v >> 16, radix: 16) + ":" + String(v & 0xffff, radix: 16) + "::/32"
    }
}

/// (country, ASN) of a vantage; ("ZZ", 0) when unknown.
public struct Vantage: Hashable, Sendable {
    public let country: String
    public let asn: UInt32
    public init(country: String, asn: UInt32) {
        self.country = country
        self.asn = asn
    }
    public static let unknown = Vantage(country: "ZZ", asn: 0)
}

/// The alliance's reachability map at one member (PROTOCOL.md section 9): what clients of each
/// vantage report about reaching each front with each profile, one vote per source group. A
/// (vantage, target, profile) entry steers clients only when `quorum` distinct source groups back
/// it, so any number of reports from one /16 cannot move it. Thread-safe; bounded everywhere:
/// `maxVantages` × `maxEntriesPerVantage` entries of at most `maxSourcesPerEntry` votes each, and
/// each source group may submit `maxAdvertsPerSourcePerWindow` adverts per window (tracked for at
/// most `maxTrackedSources` groups). Votes older than 7 windows are dropped.
public final class ReachabilityMap: Sendable {
    public struct Limits: Sendable {
        public var quorum = 3
        public var maxVantages = 64
        public var maxEntriesPerVantage = 256
        public var maxSourcesPerEntry = 32
        public var maxAdvertsPerSourcePerWindow = 256
        public var maxTrackedSources = 4096
        public init() {}
    }

    /// A key of the map.
    public struct Key: Hashable, Sendable {
        public let vantage: Vantage
        public let target: [UInt8]
        public let profile: UInt8
    }

    /// One source group's vote on a key.
    public struct Vote: Sendable, Equatable {
        public var reachable: Bool
        public var window: UInt32
    }

    public enum State: String, Sendable {
        case reachable, unreachable
        /// Too few source groups, or a tie: not actionable.
        case unknown
    }

    public struct Entry: Sendable, Equatable {
        public let target: [UInt8]
        public let profile: UInt8
        public let sources: Int
        public let reachableSources: Int
        public let state: State
    }

    /// A vote with its source group, as members exchange them.
    public struct SourcedAdvert: Sendable, Equatable {
        public let source: SourceGroup
        public let advert: ReachabilityAdvert
    }

    private struct Table {
        var votes: [Key: [SourceGroup: Vote]] = [:]
        var perVantage: [Vantage: Int] = [:]
        var submitted: [SourceGroup: (window: UInt64, count: Int)] = [:]
    }

    public let limits: Limits
    private let table = NIOLockedValueBox(Table())

    public init(limits: Limits = Limits()) { self.limits = limits }

    /// Records `adverts` as votes of `source` (the submitter's group as this node saw it);
    /// returns how many were taken. Stale adverts, a full map, or a source over its rate are dropped.
    @discardableResult
    public func submit(_ adverts: [ReachabilityAdvert], from source: SourceGroup, window: UInt64) -> Int {
        table.withLockedValue { t in
            var taken = 0
            for advert in adverts {
                guard fresh(advert.observedWindow, now: window) else { continue }
                var quota = t.submitted[source] ?? (window, 0)
                if quota.window != window { quota = (window, 0) }
                guard quota.count < limits.maxAdvertsPerSourcePerWindow else { break }
                if t.submitted[source] == nil, t.submitted.count >= limits.maxTrackedSources {
                    t.submitted = t.submitted.filter { $0.value.window == window }
                    guard t.submitted.count < limits.maxTrackedSources else { break }
                }
                quota.count += 1
                t.submitted[source] = quota
                if record(&t, advert, source: source) { taken += 1 }
            }
            return taken
        }
    }

    private func fresh(_ observed: UInt32, now: UInt64) -> Bool {
        UInt64(observed) <= now + 1 && UInt64(observed) + ReachabilityAdvert.maxAgeWindows >= now
    }

    private func record(_ t: inout Table, _ advert: ReachabilityAdvert, source: SourceGroup) -> Bool {
        let vantage = Vantage(country: advert.countryCode, asn: advert.asn)
        let key = Key(vantage: vantage, target: advert.target, profile: advert.profile)
        let vote = Vote(reachable: UInt32(advert.reachableNum) * 2 >= UInt32(advert.reachableDen), window: advert.observedWindow)
        if var votes = t.votes[key] {
            if let old = votes[source], old.window > vote.window { return false }
            if votes[source] == nil, votes.count >= limits.maxSourcesPerEntry {
                // The oldest vote makes room.
                guard let oldest = votes.min(by: { $0.value.window < $1.value.window }), oldest.value.window <= vote.window else { return false }
                votes[oldest.key] = nil
            }
            votes[source] = vote
            t.votes[key] = votes
            return true
        }
        if t.perVantage[vantage] == nil, t.perVantage.count >= limits.maxVantages { return false }
        guard (t.perVantage[vantage] ?? 0) < limits.maxEntriesPerVantage else { return false }
        t.perVantage[vantage, default: 0] += 1
        t.votes[key] = [source: vote]
        return true
    }

    /// Drops votes older than 7 windows (and entries left empty).
    public func expire(window: UInt64) {
        table.withLockedValue { t in
            for (key, votes) in t.votes {
                let kept = votes.filter { fresh($0.value.window, now: window) }
                if kept.isEmpty {
                    t.votes[key] = nil
                    t.perVantage[key.vantage, default: 1] -= 1
                    if t.perVantage[key.vantage] == 0 { t.perVantage[key.vantage] = nil }
                } else if kept.count != votes.count {
                    t.votes[key] = kept
                }
            }
            t.submitted = t.submitted.filter { $0.value.window == window }
        }
    }

    /// The map for one vantage: every entry with its state (actionable only with a quorum).
    public func entries(for vantage: Vantage) -> [Entry] {
        table.withLockedValue { t in
            t.votes.filter { $0.key.vantage == vantage }.map { key, votes in
                let yes = votes.values.filter(\.reachable).count
                let state: State
                if votes.count < limits.quorum || yes * 2 == votes.count {
                    state = .unknown
                } else {
                    state = yes * 2 > votes.count ? .reachable : .unreachable
                }
                return Entry(target: key.target, profile: key.profile, sources: votes.count, reachableSources: yes, state: state)
            }.sorted { $0.target.lexicographicallyPrecedes($1.target) || ($0.target == $1.target && $0.profile < $1.profile) }
        }
    }

    public var vantages: [Vantage] { table.withLockedValue { Array($0.perVantage.keys) } }

    /// Up to `limit` votes with their source groups, newest first, for another member.
    public func export(limit: Int) -> [SourcedAdvert] {
        let all: [(Key, SourceGroup, Vote)] = table.withLockedValue { t in
            t.votes.flatMap { key, votes in votes.map { (key, $0.key, $0.value) } }
        }
        return all.sorted { $0.2.window > $1.2.window }.prefix(limit).compactMap { key, source, vote in
            guard let advert = try? ReachabilityAdvert(countryCode: key.vantage.country, asn: key.vantage.asn, target: key.target,
                                                       profile: key.profile, reachableNum: vote.reachable ? 1 : 0, reachableDen: 1,
                                                       observedWindow: vote.window) else { return nil }
            return SourcedAdvert(source: source, advert: advert)
        }
    }

    /// Votes another member exported: each counts for the source group it names (a member is
    /// trusted to name the groups its reporters came from; it cannot add votes for itself).
    @discardableResult
    public func merge(_ items: [SourcedAdvert], window: UInt64) -> Int {
        table.withLockedValue { t in
            var taken = 0
            for item in items where fresh(item.advert.observedWindow, now: window) {
                if record(&t, item.advert, source: item.source) { taken += 1 }
            }
            return taken
        }
    }
}
