import MontanaCrypto
import MontanaWire

/// A record that passed every check of `RecordValidator`, with what the directory derives from it.
public struct ValidatedRecord: Sendable {
    public let record: DirectoryRecord
    /// The envelope exactly as received (what is stored and gossiped).
    public let signed: [UInt8]
    public let nodeID: NodeID
    /// The verified endorsement; nil in an open alliance.
    public let endorsement: Endorsement?
    /// The operator the alliance vouches for (the endorsement's; equal to the record's label,
    /// which validation requires), else the record's own label, else "".
    public let operatorLabel: String
    /// `AddressGroup.of` the first endpoint's host ("" without endpoints).
    public let addressGroup: String

    public var window: UInt32 { record.entry.advertisedWindow }
    public var isWithdrawal: Bool { record.isWithdrawal }

    init(record: DirectoryRecord, signed: [UInt8], nodeID: NodeID, endorsement: Endorsement?) {
        self.record = record
        self.signed = signed
        self.nodeID = nodeID
        self.endorsement = endorsement
        operatorLabel = endorsement?.operatorLabel ?? record.operatorLabel ?? ""
        addressGroup = record.endpoints.first.map { AddressGroup.of(host: $0.host) } ?? ""
    }

    /// Live at `now`: not a withdrawal, `expires_at` not passed, at most 7 windows old.
    public func isLive(now: UInt64) -> Bool {
        !isWithdrawal && record.expiresAt >= now && RecordValidator.isFresh(window: window, now: now)
    }
}

/// An attestation that passed `RecordValidator.validateAttestation`.
public struct ValidatedAttestation: Sendable {
    public let attestation: Attestation
    public let signed: [UInt8]
    public let subject: NodeID
    public let attester: NodeID

    public var window: UInt32 { attestation.window }
}
