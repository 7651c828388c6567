import MontanaCrypto
import MontanaWire

/// A live member as the store shows it: its record, and how well its country is corroborated.
public struct DirectoryMember: Sendable {
    public let nodeID: NodeID
    public let record: DirectoryRecord
    /// The signed record as gossiped.
    public let signed: [UInt8]
    public let operatorLabel: String
    public let addressGroup: String
    public let corroboration: Corroboration

    public init(nodeID: NodeID, record: DirectoryRecord, signed: [UInt8], operatorLabel: String, addressGroup: String,
                corroboration: Corroboration) {
        self.nodeID = nodeID
        self.record = record
        self.signed = signed
        self.operatorLabel = operatorLabel
        self.addressGroup = addressGroup
        self.corroboration = corroboration
    }

    public var country: String { record.entry.countryCode }
    public var roles: NodeRoles { record.roles }
}

/// How many independent members back a member's claimed country (PROTOCOL.md section 8.4).
public struct Corroboration: Sendable, Equatable {
    public enum State: String, Sendable {
        /// An exit whose country at least `DirectoryStore.DIRECTORY_QUORUM` independent attesters confirm.
        case corroborated
        /// Not (yet) confirmed; clients do not choose it automatically by default.
        case advisory
    }

    public let state: State
    /// Distinct qualifying attesters (pairwise different node id, operator and address group).
    public let attesters: Int
    /// Distinct live attesters whose fresh geolocated attestation names another country.
    public let contradicting: Int
    /// The newest window of a qualifying attestation.
    public let lastAttestedWindow: UInt32?

    public init(state: State, attesters: Int, contradicting: Int, lastAttestedWindow: UInt32?) {
        self.state = state
        self.attesters = attesters
        self.contradicting = contradicting
        self.lastAttestedWindow = lastAttestedWindow
    }
}
