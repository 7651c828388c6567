/// The alliance's statement that a node is a member (PROTOCOL.md section 8.5), signed by the
/// alliance membership key with label `montana-endorsement-v1` in a `SignedEnvelope`, and carried
/// inside the member's `DirectoryRecord` (field 12).
///
/// `{ alliance(1): bytes 16; node_id(2): bytes 32; operator(3): string ≤ 64 bytes, absent = "";
///    issued_at(4): varint unix seconds }`
public struct Endorsement: Equatable, Sendable {
    public static let allianceSize = 16
    public static let nodeIDSize = 32
    /// As `DirectoryRecord.maxOperatorLabel`.
    public static let maxOperatorLabel = 64

    public var alliance: [UInt8]
    public var nodeID: [UInt8]
    /// The operator name the alliance vouches for; "" = none.
    public var operatorLabel: String
    public var issuedAt: UInt64

    public init(alliance: [UInt8], nodeID: [UInt8], operatorLabel: String = "", issuedAt: UInt64) {
        self.alliance = alliance
        self.nodeID = nodeID
        self.operatorLabel = operatorLabel
        self.issuedAt = issuedAt
    }

    /// Fields in number order; `operator` only when non-empty (absent and empty mean the same).
    public func encode() -> [UInt8] {
        var w = ProtoWriter()
        w.lengthDelimited(1, alliance)
        w.lengthDelimited(2, nodeID)
        w.string(3, ifSet: operatorLabel.isEmpty ? nil : operatorLabel)
        w.varint(4, issuedAt)
        return w.bytes
    }

    public static func decode(_ bytes: [UInt8]) throws(WireError) -> Endorsement {
        var alliance: [UInt8]?
        var nodeID: [UInt8]?
        var label = ""
        var issuedAt: UInt64?
        try ProtoReader.forEachField(bytes) { (field, value) throws(WireError) in
            switch field {
            case 1:
                let v = try value.asBytes("endorsement.alliance")
                guard v.count == allianceSize else { throw .invalidField("endorsement.alliance: must be \(allianceSize) bytes") }
                alliance = v
            case 2:
                let v = try value.asBytes("endorsement.node_id")
                guard v.count == nodeIDSize else { throw .invalidField("endorsement.node_id: must be \(nodeIDSize) bytes") }
                nodeID = v
            case 3:
                let s = try value.asString("endorsement.operator")
                guard s.utf8.count <= maxOperatorLabel else {
                    throw .tooLong(field: "endorsement.operator", length: s.utf8.count, limit: maxOperatorLabel)
                }
                label = s
            case 4: issuedAt = try value.asVarint("endorsement.issued_at")
            default: break
            }
        }
        guard let alliance else { throw .missingField("endorsement.alliance") }
        guard let nodeID else { throw .missingField("endorsement.node_id") }
        guard let issuedAt else { throw .missingField("endorsement.issued_at") }
        return Endorsement(alliance: alliance, nodeID: nodeID, operatorLabel: label, issuedAt: issuedAt)
    }
}
