/// Bounds of a `DirectoryStore` (PROTOCOL.md section 8.4). Past them the store evicts; it never
/// refuses to start or grows without bound.
public struct DirectoryLimits: Sendable, Equatable {
    /// Records including withdrawal tombstones. The shared spec's 4096.
    public var maxRecords = 4096
    /// Attestations about one subject: 16 attesters are far more than the quorum of 2 needs.
    public var maxAttestationsPerSubject = 16
    /// All attestations: 4096 × 4 on average.
    public var maxAttestations = 16384

    public init() {}

    public init(maxRecords: Int = 4096, maxAttestationsPerSubject: Int = 16, maxAttestations: Int = 16384) {
        self.maxRecords = max(1, maxRecords)
        self.maxAttestationsPerSubject = max(1, maxAttestationsPerSubject)
        self.maxAttestations = max(1, maxAttestations)
    }
}

/// What `offerRecord`/`offerAttestation` did with what it was given.
public enum OfferOutcome: Equatable, Sendable {
    /// New to the store.
    case added
    /// Replaced an older version (for a record: a smaller window, or a withdrawal in the same window).
    case updated
    /// Already held, or older than what is held, or pushed out at once by a bound; nothing changed.
    case unchanged
    case rejected(RecordRejection)
}
