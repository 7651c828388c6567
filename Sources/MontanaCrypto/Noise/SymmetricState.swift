import Crypto
import Foundation

/// The Noise symmetric state (h, ck, k, n) with the HKDF of the Noise spec over HMAC-SHA256.
/// Handshake AEAD nonces are `0⁴ ‖ u64 LE n`, the associated data is `h`.
struct SymmetricState {
    private(set) var h: [UInt8]
    private(set) var ck: [UInt8]
    private var k: SymmetricKey?
    private var n: UInt64 = 0
    /// Every value `h` took, in order; lets tests compare a transcript step by step.
    private(set) var hashHistory: [[UInt8]] = []

    init(protocolName: String) {
        h = Digests.sha256(Array(protocolName.utf8))
        ck = h
        hashHistory.append(h)
    }

    mutating func mixHash(_ data: [UInt8]) {
        h = Digests.sha256(h + data)
        hashHistory.append(h)
    }

    mutating func mixKey(_ ikm: [UInt8]) {
        let out = Self.hkdf(chainingKey: ck, ikm: ikm, outputs: 2)
        ck = out[0]
        k = SymmetricKey(data: out[1])
        n = 0
    }

    mutating func encryptAndHash(_ plaintext: [UInt8]) throws -> [UInt8] {
        guard let k else {
            mixHash(plaintext)
            return plaintext
        }
        let box = try ChaChaPoly.seal(plaintext, using: k, nonce: nonce(), authenticating: h)
        n += 1
        let c = Array(box.ciphertext) + Array(box.tag)
        mixHash(c)
        return c
    }

    mutating func decryptAndHash(_ ciphertext: [UInt8]) throws -> [UInt8] {
        guard let k else {
            mixHash(ciphertext)
            return ciphertext
        }
        guard ciphertext.count >= 16 else { throw NoiseError.truncated }
        let plaintext: [UInt8]
        do {
            let box = try ChaChaPoly.SealedBox(nonce: nonce(), ciphertext: ciphertext.dropLast(16), tag: ciphertext.suffix(16))
            plaintext = Array(try ChaChaPoly.open(box, using: k, authenticating: h))
        } catch {
            // On Linux a failed open throws a BoringSSL error, not .authenticationFailure.
            throw NoiseError.decryptionFailed
        }
        n += 1
        mixHash(ciphertext)
        return plaintext
    }

    /// Split with three outputs: k_i2r, k_r2i, resume_secret.
    func split() -> [[UInt8]] {
        Self.hkdf(chainingKey: ck, ikm: [], outputs: 3)
    }

    private func nonce() throws -> ChaChaPoly.Nonce {
        try ChaChaPoly.Nonce(data: [0, 0, 0, 0] + [UInt8].le(n))
    }

    /// HKDF as defined by the Noise spec (section 4.3), 2 or 3 outputs of 32 bytes.
    static func hkdf(chainingKey: [UInt8], ikm: [UInt8], outputs: Int) -> [[UInt8]] {
        let temp = SymmetricKey(data: Array(HMAC<SHA256>.authenticationCode(for: ikm, using: SymmetricKey(data: chainingKey))))
        var result: [[UInt8]] = []
        var previous: [UInt8] = []
        for i in 1...outputs {
            previous = Array(HMAC<SHA256>.authenticationCode(for: previous + [UInt8(i)], using: temp))
            result.append(previous)
        }
        return result
    }
}
