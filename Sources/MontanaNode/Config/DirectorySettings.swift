import MontanaCrypto
import MontanaDirectory
import MontanaWire

/// A node's place in an alliance: the alliance's public file, the endorsement of this node by
/// the alliance's membership key, and the `[directory]` section (bootstrap links, GeoIP, the
/// SQLite store). Without `node.alliance` pointing at an alliance.json the node has no
/// directory: it serves its own record only and relays to its static `[[peers]]`.
public struct DirectorySettings: Sendable {
    public var alliance: AllianceDocument
    public var allianceFile: String
    /// The endorsement's SignedEnvelope bytes; nil only in an `open` alliance.
    public var endorsement: [UInt8]?
    /// Members to exchange with first (`montana://` links).
    public var bootstrap: [MemberLink]
    /// GeoIP database for attestations: `.mmdb` (MaxMind/DB-IP) or a `CIDR,CC` CSV.
    public var geoipPath: String?
    /// SQLite file of the directory store (default `directory.sqlite` beside the config).
    public var databasePath: String
    /// Whether this node attests other members (verified session + geolocated egress).
    public var attest: Bool
    /// Members this node exchanges with each window besides its bootstrap links.
    public var fanout: Int

    static let keys = ["bootstrap", "geoip", "database", "attest", "fanout"]

    /// `node` is the `[node]` section (for `alliance` and `endorsement`), `section` is `[directory]`.
    static func parse(node: ConfigSection, section: ConfigSection?, nodeID: NodeID, operatorLabel: String?,
                      warnings: inout [String]) throws(ConfigurationError) -> DirectorySettings? {
        guard let allianceText = try node.string("alliance"), !allianceText.isEmpty,
              !SharedSettings.looksLikeUUID(allianceText) else {
            if let section { warnings.append("\(section.file): [directory] is ignored: node.alliance does not name an alliance.json") }
            return nil
        }
        let allianceFile = node.resolve(allianceText)
        let alliance: AllianceDocument
        do { alliance = try AllianceDocument.load(path: allianceFile) } catch { throw node.invalid("alliance", "\(error)") }

        var endorsement: [UInt8]?
        if let path = try node.path("endorsement") {
            let file: EndorsementFile
            do { file = try EndorsementFile.load(path: path) } catch { throw node.invalid("endorsement", "\(error)") }
            let signed = file.signedBytes
            let endorsed: Endorsement
            do {
                endorsed = try EndorsementSigner.verify(signed, membershipPublicKey: alliance.membershipKeyBytes)
            } catch {
                throw node.invalid("endorsement", "\(path): not signed by the membership key of \(allianceFile) (\(error))")
            }
            guard endorsed.nodeID == nodeID.bytes else {
                throw node.invalid("endorsement", "\(path) endorses node \(Hex.encode(endorsed.nodeID).prefix(16))…, not this node (\(nodeID.short))")
            }
            guard endorsed.operatorLabel == (operatorLabel ?? "") else {
                throw node.invalid("endorsement", "\(path) endorses operator \"\(endorsed.operatorLabel)\" but node.operator is \"\(operatorLabel ?? "")\"")
            }
            endorsement = signed
        } else if !alliance.open {
            throw node.invalid("endorsement", "required: \(allianceFile) is not an open alliance, so members need `montana alliance endorse` (set node.endorsement)")
        }

        var bootstrap: [MemberLink] = []
        var geoip: String?
        var database = node.resolve("directory.sqlite")
        var attest = true
        var fanout = 3
        if let section {
            try section.allowOnly(keys)
            for (i, text) in (try section.strings("bootstrap") ?? []).enumerated() {
                let link: MemberLink
                do { link = try MemberLink.parse(text) } catch { throw section.invalid("bootstrap", "entry \(i + 1): \(error)") }
                guard link.alliance == alliance.uuidBytes else {
                    throw section.invalid("bootstrap", "entry \(i + 1) belongs to another alliance (\(Hex.encode(link.alliance)))")
                }
                if link.nodeID == nodeID { continue }
                bootstrap.append(link)
            }
            geoip = try section.path("geoip")
            database = try section.path("database") ?? database
            attest = try section.bool("attest") ?? true
            fanout = try section.int("fanout", in: 1...32) ?? 3
        }
        if bootstrap.isEmpty {
            warnings.append("\(node.file): [directory] bootstrap is empty: this node learns of other members only when they exchange with it")
        }
        return DirectorySettings(alliance: alliance, allianceFile: allianceFile, endorsement: endorsement, bootstrap: bootstrap,
                                 geoipPath: geoip, databasePath: database, attest: attest, fanout: fanout)
    }
}
