import Foundation
import MontanaCrypto

/// Replays the randomised parts of a recorded handshake: a fixed ephemeral seed, a recorded
/// encapsulation (ciphertext + the shared secret recovered by decapsulating it) and a recorded
/// signature. With it a state machine reproduces recorded messages byte for byte.
public struct RecordedEntropy: HandshakeEntropy {
    let seed: [UInt8]
    let ciphertext: [UInt8]
    let sharedSecret: [UInt8]
    let signature: [UInt8]

    public init(seed: [UInt8], ciphertext: [UInt8], sharedSecret: [UInt8], signature: [UInt8]) {
        self.seed = seed
        self.ciphertext = ciphertext
        self.sharedSecret = sharedSecret
        self.signature = signature
    }

    public func ephemeralSeed() -> [UInt8] { seed }
    public func encapsulate(to publicKey: [UInt8]) throws -> (ciphertext: [UInt8], sharedSecret: [UInt8]) { (ciphertext, sharedSecret) }
    public func sign(_ message: [UInt8], with key: IdentityKey) throws -> [UInt8] { signature }
}

/// Fixed ephemeral seeds with real (random) encapsulations and signatures, remembering the
/// signatures it made: used to *record* a transcript for our own vectors.
public final class SeededEntropy: HandshakeEntropy, @unchecked Sendable {
    let seed: [UInt8]
    private let lock = NSLock()
    private var made: [[UInt8]] = []

    public init(seed: [UInt8]) { self.seed = seed }

    public var signatures: [[UInt8]] { lock.withLock { made } }

    public func ephemeralSeed() -> [UInt8] { seed }

    public func encapsulate(to publicKey: [UInt8]) throws -> (ciphertext: [UInt8], sharedSecret: [UInt8]) {
        try KEMKey.encapsulate(to: publicKey)
    }

    public func sign(_ message: [UInt8], with key: IdentityKey) throws -> [UInt8] {
        let sig = try key.sign(message)
        lock.withLock { made.append(sig) }
        return sig
    }
}
