import Crypto
import Foundation
import MontanaWire

/// An ML-DSA-65 identity (node or account), from a 32-byte seed. Pure mode, empty context.
public struct IdentityKey: Sendable {
    public static let publicKeySize = 1952
    public static let signatureSize = 3309

    public let seed: [UInt8]
    private let key: MLDSA65.PrivateKey
    public let publicKey: [UInt8]

    public init(seed: [UInt8]) throws {
        guard seed.count == 32 else { throw KeyError.badSeedLength(expected: 32, got: seed.count) }
        self.seed = seed
        key = try MLDSA65.PrivateKey(seedRepresentation: seed, publicKey: nil)
        publicKey = Array(key.publicKey.rawRepresentation)
    }

    public static func generate() throws -> IdentityKey {
        try IdentityKey(seed: SecureRandom.bytes(32))
    }

    public var nodeID: NodeID { NodeID(identityPublicKey: publicKey) }
    public var accountID: [UInt8] { AccountID.derive(accountPublicKey: publicKey) }

    public func sign(_ message: [UInt8]) throws -> [UInt8] {
        Array(try key.signature(for: message))
    }

    /// Verifies an ML-DSA-65 signature; any malformed key or signature is simply "invalid".
    public static func verify(publicKey: [UInt8], signature: [UInt8], message: [UInt8]) -> Bool {
        guard publicKey.count == publicKeySize, signature.count == signatureSize,
              let pk = try? MLDSA65.PublicKey(rawRepresentation: publicKey) else { return false }
        return pk.isValidSignature(signature, for: message)
    }
}

/// An X-Wing (ML-KEM-768 + X25519) key, from a 32-byte seed: the node's preface key and the
/// handshake's ephemerals.
public struct KEMKey: Sendable {
    public static let publicKeySize = 1216
    public static let ciphertextSize = 1120

    public let seed: [UInt8]
    private let key: XWingMLKEM768X25519.PrivateKey
    public let publicKey: [UInt8]

    public init(seed: [UInt8]) throws {
        guard seed.count == 32 else { throw KeyError.badSeedLength(expected: 32, got: seed.count) }
        self.seed = seed
        key = try XWingMLKEM768X25519.PrivateKey(seedRepresentation: seed, publicKey: nil)
        publicKey = Array(key.publicKey.rawRepresentation)
    }

    public static func generate() throws -> KEMKey {
        try KEMKey(seed: SecureRandom.bytes(32))
    }

    /// X-Wing decapsulation. A tampered ciphertext of the right length does not throw (implicit
    /// rejection): it yields a key that fails later at the AEAD.
    public func decapsulate(_ ciphertext: [UInt8]) throws -> [UInt8] {
        guard ciphertext.count == Self.ciphertextSize else { throw KeyError.badCiphertextLength(ciphertext.count) }
        let ss = try key.decapsulate(Data(ciphertext))
        return ss.withUnsafeBytes { Array($0) }
    }

    public static func encapsulate(to publicKey: [UInt8]) throws -> (ciphertext: [UInt8], sharedSecret: [UInt8]) {
        guard publicKey.count == publicKeySize else { throw KeyError.badPublicKeyLength(publicKey.count) }
        let pk = try XWingMLKEM768X25519.PublicKey(rawRepresentation: publicKey)
        let result = try pk.encapsulate()
        return (Array(result.encapsulated), result.sharedSecret.withUnsafeBytes { Array($0) })
    }
}

/// An X25519 key for T1 carriers (universal or own).
public struct T1Key: Sendable {
    public let privateKey: [UInt8]
    public let publicKey: [UInt8]

    public init(privateKey: [UInt8]) throws {
        guard privateKey.count == 32 else { throw KeyError.badSeedLength(expected: 32, got: privateKey.count) }
        let key = try Curve25519.KeyAgreement.PrivateKey(rawRepresentation: privateKey)
        self.privateKey = privateKey
        publicKey = Array(key.publicKey.rawRepresentation)
    }

    public static func generate() throws -> T1Key {
        try T1Key(privateKey: Array(Curve25519.KeyAgreement.PrivateKey().rawRepresentation))
    }
}

public enum KeyError: Error, Equatable, CustomStringConvertible {
    case badSeedLength(expected: Int, got: Int)
    case badPublicKeyLength(Int)
    case badCiphertextLength(Int)

    public var description: String {
        switch self {
        case .badSeedLength(let e, let g): return "key seed must be \(e) bytes, got \(g)"
        case .badPublicKeyLength(let n): return "public key has wrong length \(n)"
        case .badCiphertextLength(let n): return "KEM ciphertext has wrong length \(n)"
        }
    }
}
