import MontanaCrypto
import MontanaWire

/// Creating a new alliance.
public enum Alliance {
    /// One short id of 8 random bytes is issued at creation; more can be added to the file.
    public static let initialShortIDBytes = 8

    /// A new alliance: a random (version 4) UUID, a universal T1 key, a membership key and a pass
    /// issuer key. The document trusts exactly the new pass issuer.
    public static func create(name: String, open: Bool, serverName: String = "www.example.com",
                              cover: String = "") throws -> (AllianceDocument, AllianceSecret) {
        var uuid = SecureRandom.bytes(16)
        uuid[6] = (uuid[6] & 0x0f) | 0x40
        uuid[8] = (uuid[8] & 0x3f) | 0x80
        let t1 = try T1Key.generate()
        let membership = try IdentityKey.generate()
        let issuer = try IdentityKey.generate()
        let universal = UniversalT1(x25519PublicKey: t1.publicKey, shortIDs: [SecureRandom.bytes(initialShortIDBytes)],
                                    serverName: serverName, cover: cover)
        var doc = AllianceDocument(name: name, uuid: uuid, open: open, universalT1: universal,
                                   membershipPublicKey: membership.publicKey, passIssuers: [issuer.publicKey])
        try doc.validate(file: "(new alliance)")
        let secret = AllianceSecret(uuid: uuid, membershipKey: membership, passIssuerKey: issuer, universalT1: t1)
        return (doc, secret)
    }
}
