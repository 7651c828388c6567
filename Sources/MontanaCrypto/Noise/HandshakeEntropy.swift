/// The randomised parts of a handshake. Production uses `SystemEntropy`; conformance tests inject
/// recorded ephemeral seeds, ciphertexts and signatures to replay a transcript byte for byte
/// (X-Wing encapsulation and ML-DSA signing are randomised in swift-crypto).
public protocol HandshakeEntropy: Sendable {
    func ephemeralSeed() -> [UInt8]
    func encapsulate(to publicKey: [UInt8]) throws -> (ciphertext: [UInt8], sharedSecret: [UInt8])
    func sign(_ message: [UInt8], with key: IdentityKey) throws -> [UInt8]
}

public struct SystemEntropy: HandshakeEntropy {
    public init() {}

    public func ephemeralSeed() -> [UInt8] { SecureRandom.bytes(32) }

    public func encapsulate(to publicKey: [UInt8]) throws -> (ciphertext: [UInt8], sharedSecret: [UInt8]) {
        try KEMKey.encapsulate(to: publicKey)
    }

    public func sign(_ message: [UInt8], with key: IdentityKey) throws -> [UInt8] {
        try key.sign(message)
    }
}
