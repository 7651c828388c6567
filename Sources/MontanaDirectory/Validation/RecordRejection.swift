/// Why a signed record or attestation was not taken into the directory (an `Error` so it can be
/// the failure of a `Result`). The raw value is the
/// `reason` label of the rejection metric and the key in status output.
public enum RecordRejection: String, Error, Sendable, CaseIterable {
    /// Over the size bound (16384 bytes for a record, 8192 for an attestation) or a field over its own.
    case oversized
    /// Does not decode.
    case malformed
    /// The country code is not an assigned ISO 3166-1 alpha-2 code.
    case country
    /// Unknown capacity class.
    case capacity
    /// `exit_node_id` is not `H("mt-node" ‖ identity_pk)`.
    case nodeIDMismatch = "node_id_mismatch"
    case badSignature = "bad_signature"
    /// The alliance is closed and the record carries no endorsement.
    case noEndorsement = "no_endorsement"
    /// The endorsement is not signed by this alliance's membership key, or names another alliance.
    case foreignEndorsement = "foreign_endorsement"
    /// The endorsement is for another node or operator, or does not decode.
    case badEndorsement = "bad_endorsement"
    /// More than 7 windows old (records), more than 1440 windows old (attestations).
    case stale
    /// `expires_at` has passed.
    case expired
    /// Issued more than 300 s or a window ahead of our clock.
    case future
    /// Older than a withdrawal the store holds for the node.
    case withdrawn
    /// The attester has no live record here.
    case unknownAttester = "unknown_attester"
    /// The subject has no live record here.
    case unknownSubject = "unknown_subject"
    /// A node attesting itself.
    case selfAttestation = "self_attestation"
}
