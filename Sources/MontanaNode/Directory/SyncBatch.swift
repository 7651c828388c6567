import Dispatch
import MontanaDirectory
import MontanaTransport
import MontanaWire
import NIOConcurrencyHelpers

/// Items received in one exchange or directory answer, applied to the store off the event loop
/// in batches. Bounds: one exchange carries at most `maxItems` items (a full store's records and
/// attestations); the bytes received and not yet applied, summed over the whole process, stay
/// under `inFlightBudget` (32 MiB) — beyond it an exchange is reset and retried next window.
final class SyncBatch: @unchecked Sendable {
    static let maxItems = 4096 + 16384
    static let batchItems = 128
    static let inFlightBudget = SharedInFlight(capacity: 32 * 1024 * 1024)

    private let budget: SharedInFlight
    private let store: DirectoryStore
    private let queue: DispatchQueue
    private let onRejected: @Sendable (RecordRejection) -> Void
    private var records: [[UInt8]] = []
    private var attestations: [[UInt8]] = []
    private var heldBytes = 0
    private(set) var received = 0

    init(store: DirectoryStore, queue: DispatchQueue, budget: SharedInFlight = SyncBatch.inFlightBudget,
         onRejected: @escaping @Sendable (RecordRejection) -> Void) {
        self.budget = budget
        self.store = store
        self.queue = queue
        self.onRejected = onRejected
    }

    /// Adds an item; false when a bound is crossed (the caller resets the stream).
    func add(record: [UInt8]? = nil, attestation: [UInt8]? = nil) -> Bool {
        let size = (record?.count ?? 0) + (attestation?.count ?? 0)
        guard size > 0 else { return true }
        received += 1
        guard received <= Self.maxItems, budget.reserve(size) else { return false }
        heldBytes += size
        if let record { records.append(record) }
        if let attestation { attestations.append(attestation) }
        if records.count + attestations.count >= Self.batchItems { flush() }
        return true
    }

    /// Applies what is held (records first: attestations need their attester's and subject's).
    func flush(completion: (@Sendable () -> Void)? = nil) {
        let records = self.records, attestations = self.attestations, bytes = heldBytes
        self.records = []
        self.attestations = []
        heldBytes = 0
        let store = self.store, onRejected = self.onRejected, budget = self.budget
        queue.async {
            let now = WallClock.now()
            for r in records {
                if case .rejected(let why) = store.offerRecord(r, now: now) { onRejected(why) }
            }
            for a in attestations {
                if case .rejected(let why) = store.offerAttestation(a, now: now) { onRejected(why) }
            }
            budget.release(bytes)
            completion?()
        }
    }

    /// Releases what is held without applying it (the exchange failed).
    func discard() {
        budget.release(heldBytes)
        records = []
        attestations = []
        heldBytes = 0
    }
}

/// A process-wide byte budget (thread-safe).
final class SharedInFlight: Sendable {
    private let capacity: Int
    private let used = NIOLockedValueBox(0)

    init(capacity: Int) { self.capacity = capacity }

    func reserve(_ n: Int) -> Bool {
        used.withLockedValue { u in
            guard u + n <= capacity else { return false }
            u += n
            return true
        }
    }

    func release(_ n: Int) { used.withLockedValue { $0 = max(0, $0 - n) } }

    var usedBytes: Int { used.withLockedValue { $0 } }
}

/// Sends a digest's answer: every record and attestation of ours the peer lacks, then `end`.
enum SyncSend {
    static func items(_ store: DirectoryStore, newerThan theirs: [DigestEntry], to framed: any FramedStreamSink) {
        let (records, attestations) = store.newer(than: theirs)
        for r in records { framed.send(SyncFrame(record: r).encode()) }
        for a in attestations { framed.send(SyncFrame(attestation: a).encode()) }
    }
}

/// What `SyncSend` writes to (a `FramedStream`).
protocol FramedStreamSink {
    func send(_ message: [UInt8])
}

extension SharedInFlight {
    /// Bytes reserved now (tests, status).
    var inUse: Int { usedBytes }
}
