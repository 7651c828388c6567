/// EgressAuth (`0x01`), the IBT level-3 proof carried in msg3's payload (PROTOCOL.md section 7.1):
/// `0x01 ‖ version (1) ‖ account_pk (1952) ‖ nonce (32) ‖ proof (3309) [‖ u16 LE pass_len ‖ SignedPass]`.
/// This is only the byte layout; checking it is `MontanaCrypto.EgressAuthVerifier`.
public struct EgressAuth: Equatable, Sendable {
    public static let type: UInt8 = 0x01
    public static let version: UInt8 = 1
    public static let accountKeySize = 1952
    public static let nonceSize = 32
    public static let proofSize = 3309
    public static let baseSize = 2 + accountKeySize + nonceSize + proofSize
    /// The pass length is a u16 on the wire.
    public static let maxPassSize = Int(UInt16.max)

    public var accountPublicKey: [UInt8]
    public var nonce: [UInt8]
    public var proof: [UInt8]
    public var signedPass: [UInt8]?

    public init(accountPublicKey: [UInt8], nonce: [UInt8], proof: [UInt8], signedPass: [UInt8]? = nil) {
        self.accountPublicKey = accountPublicKey
        self.nonce = nonce
        self.proof = proof
        self.signedPass = signedPass
    }

    public func encode() -> [UInt8] {
        var out: [UInt8] = [Self.type, Self.version]
        out += accountPublicKey
        out += nonce
        out += proof
        if let signedPass {
            // Never traps: `EgressAuthProof.build` and `decode` keep passes within maxPassSize; a
            // longer one set by hand encodes a wrong length, which every verifier rejects.
            out.appendLE(UInt16(truncatingIfNeeded: signedPass.count))
            out += signedPass
        }
        return out
    }

    public static func decode(_ bytes: [UInt8]) throws(WireError) -> EgressAuth {
        var r = ByteReader(bytes)
        let type = try r.readU8()
        guard type == Self.type else { throw .unknownType(type) }
        let version = try r.readU8()
        guard version == Self.version else { throw .invalidValue(field: "EgressAuth.version", value: UInt64(version)) }
        let pk = try r.readBytes(accountKeySize)
        let nonce = try r.readBytes(nonceSize)
        let proof = try r.readBytes(proofSize)
        var pass: [UInt8]?
        if !r.isAtEnd {
            let length = Int(try r.readLE(UInt16.self))
            guard length > 0 else { throw .invalidField("EgressAuth pass_len is 0") }
            pass = try r.readBytes(length)
        }
        try r.expectEnd()
        return EgressAuth(accountPublicKey: pk, nonce: nonce, proof: proof, signedPass: pass)
    }
}
