import MontanaCrypto
import MontanaWire

/// A record as the store keeps it: the validated record (or a withdrawal tombstone) plus what
/// eviction orders by.
struct StoredRecord: Sendable {
    var validated: ValidatedRecord
    /// Unix seconds when this node id was first taken in (kept across updates).
    var firstSeen: UInt64
    /// Order of arrival in this process (ties of `firstSeen` within one second).
    var arrival: UInt64
    /// The newest window of a qualifying attestation about it (0: never).
    var lastCorroborated: UInt32

    var nodeID: NodeID { validated.nodeID }
    var window: UInt32 { validated.window }
    var isTombstone: Bool { validated.isWithdrawal }

    /// Still worth keeping at `now`: a tombstone while its window is fresh, a record while live.
    func isKept(now: UInt64) -> Bool {
        isTombstone ? RecordValidator.isFresh(window: window, now: now) : validated.isLive(now: now)
    }

    /// Eviction order: least recently corroborated first, then first received first.
    func evictsBefore(_ other: StoredRecord) -> Bool {
        (lastCorroborated, firstSeen, arrival) < (other.lastCorroborated, other.firstSeen, other.arrival)
    }
}

/// A change the database must mirror, collected while the state is mutated and written in one
/// transaction afterwards.
enum StoreOp: Sendable {
    case putRecord(StoredRecord)
    case deleteRecord([UInt8])
    case putAttestation(ValidatedAttestation)
    case deleteAttestation(subject: [UInt8], attester: [UInt8])
    /// All attestations whose subject or attester is this node.
    case deleteAttestationsInvolving([UInt8])
    case setLastCorroborated([UInt8], UInt32)
}

extension Array where Element == UInt8 {
    /// Byte-wise order, used to sort node ids.
    static func ordered(_ a: [UInt8], _ b: [UInt8]) -> Bool { a.lexicographicallyPrecedes(b) }
}
