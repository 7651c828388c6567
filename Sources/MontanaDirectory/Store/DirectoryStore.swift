import Foundation
import MontanaCrypto
import MontanaWire
import NIOConcurrencyHelpers

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The alliance directory a node holds: validated member records (and withdrawal tombstones),
/// attestations about them, persisted in SQLite (PROTOCOL.md section 8.4).
///
/// Thread-safe: one lock around the in-memory state; database writes happen synchronously under
/// that lock, in one transaction per offer (records arrive at most a few per second). Reads are
/// served from memory. `onChange` runs outside the lock after every accepted change.
public final class DirectoryStore: @unchecked Sendable {
    /// Independent attesters needed to corroborate an exit's country (shared spec section 8).
    public static let DIRECTORY_QUORUM = 2

    public let path: String?
    public let alliance: AllianceDocument
    public let limits: DirectoryLimits
    /// The file could not be opened as our database; it was moved to `path.corrupt-<unix>` and a
    /// new one created.
    public let recovered: Bool

    private let state: NIOLockedValueBox<StoreState>
    private let database: StoreDatabase
    private let changeHandler = NIOLockedValueBox<(@Sendable () -> Void)?>(nil)

    /// Opens or creates the store. `path` nil keeps everything in memory. `now` (default: the
    /// wall clock) is the time rows are re-validated at.
    public init(path: String?, alliance: AllianceDocument, limits: DirectoryLimits = .init(), now: UInt64? = nil) throws {
        let now = now ?? Self.wallClock()
        self.path = path
        self.alliance = alliance
        self.limits = limits
        let opened = try StoreDatabase.open(path: path, now: now)
        database = opened.database
        recovered = opened.recovered
        var s = StoreState(alliance: alliance, limits: limits)
        s.load(records: opened.records, attestations: opened.attestations, now: now)
        database.apply(s.ops)
        s.ops = []
        state = NIOLockedValueBox(s)
    }

    static func wallClock() -> UInt64 { UInt64(clamping: time(nil)) }

    /// Called after any accepted change (outside the store's lock).
    public var onChange: (@Sendable () -> Void)? {
        get { changeHandler.withLockedValue { $0 } }
        set { changeHandler.withLockedValue { $0 = newValue } }
    }

    private func mutate<T>(_ body: (inout StoreState) -> T) -> T {
        let (result, changed) = state.withLockedValue { s -> (T, Bool) in
            let before = s.changeCounter
            let r = body(&s)
            database.apply(s.ops)
            s.ops = []
            return (r, s.changeCounter != before)
        }
        if changed, let handler = onChange { handler() }
        return result
    }

    private func read<T>(_ body: (StoreState) -> T) -> T {
        state.withLockedValue { body($0) }
    }

    // MARK: offering

    /// Validates and takes in a signed record (see `RecordValidator` and `StoreState.insert`).
    public func offerRecord(_ signed: [UInt8], now: UInt64) -> OfferOutcome {
        mutate { $0.offerRecord(signed, now: now) }
    }

    /// Validates and takes in a signed attestation: its attester must be a live member here and
    /// its subject held.
    public func offerAttestation(_ signed: [UInt8], now: UInt64) -> OfferOutcome {
        mutate { $0.offerAttestation(signed, now: now) }
    }

    /// Drops stale or expired records, tombstones 7 windows old, their attestations and
    /// attestations older than 1440 windows. Returns how many records (tombstones included) went.
    @discardableResult
    public func expire(now: UInt64) -> Int {
        mutate { $0.expire(now: now) }
    }

    // MARK: reading

    /// Live members (not withdrawn, fresh, not expired at `now`), sorted by node id.
    public func members(now: UInt64) -> [DirectoryMember] {
        read { s in s.sortedRecords().filter { $0.validated.isLive(now: now) }.map { s.member($0, now: now) } }
    }

    /// The member with this id if it is live at the wall clock's time.
    public func member(_ id: NodeID) -> DirectoryMember? {
        member(id, now: Self.wallClock())
    }

    public func member(_ id: NodeID, now: UInt64) -> DirectoryMember? {
        read { s in s.records[id].flatMap { $0.validated.isLive(now: now) ? s.member($0, now: now) : nil } }
    }

    /// Every record held (tombstones included), sorted by node id.
    public func digest() -> [DigestEntry] {
        read { $0.digest() }
    }

    /// What to send a peer whose digest is `theirs`: records first (so attestations find their
    /// subjects and attesters), then attestations.
    public func newer(than theirs: [DigestEntry]) -> (records: [[UInt8]], attestations: [[UInt8]]) {
        newer(than: theirs, now: Self.wallClock())
    }

    public func newer(than theirs: [DigestEntry], now: UInt64) -> (records: [[UInt8]], attestations: [[UInt8]]) {
        read { $0.newer(than: theirs, now: now) }
    }

    /// Rejections by reason since the store was opened.
    public var rejections: [RecordRejection: Int] { read { $0.rejections } }
    /// Records held, tombstones included.
    public var recordCount: Int { read { $0.records.count } }
    public var tombstoneCount: Int { read { $0.records.values.filter(\.isTombstone).count } }
    public var attestationCount: Int { read { $0.attestationTotal } }
    /// Increments on every accepted change; long polls wait for it to move.
    public var changeCounter: UInt64 { read { $0.changeCounter } }
    /// Database transactions that failed since opening (the in-memory state is still right).
    public var writeErrors: Int { read { _ in database.writeErrors } }
}
