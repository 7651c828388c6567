import Crypto
import Foundation

/// The parts of TLS 1.3 (RFC 8446) a T1 client needs to complete a real handshake with the cover
/// site through the front (PROTOCOL.md 2.2): the key schedule (7.1), traffic keys (7.3), Finished
/// (4.4.4) and record protection (5.2). Primitives are swift-crypto's; nothing here is a new one.
/// Only the three TLS 1.3 suites Chrome offers are supported.
public enum TLS13 {
    public enum Suite: UInt16, Sendable {
        case aes128GCMSHA256 = 0x1301
        case aes256GCMSHA384 = 0x1302
        case chacha20Poly1305SHA256 = 0x1303

        public var hashLength: Int { self == .aes256GCMSHA384 ? 48 : 32 }
        public var keyLength: Int { self == .aes128GCMSHA256 ? 16 : 32 }

        public func hash(_ bytes: [UInt8]) -> [UInt8] {
            self == .aes256GCMSHA384 ? Array(SHA384.hash(data: bytes)) : Array(SHA256.hash(data: bytes))
        }

        public func extract(salt: [UInt8], ikm: [UInt8]) -> [UInt8] {
            let key = SymmetricKey(data: ikm)
            if self == .aes256GCMSHA384 { return Array(HKDF<SHA384>.extract(inputKeyMaterial: key, salt: salt)) }
            return Array(HKDF<SHA256>.extract(inputKeyMaterial: key, salt: salt))
        }

        public func expand(prk: [UInt8], info: [UInt8], length: Int) -> [UInt8] {
            let key = SymmetricKey(data: prk)
            let out: SymmetricKey = self == .aes256GCMSHA384
                ? HKDF<SHA384>.expand(pseudoRandomKey: key, info: info, outputByteCount: length)
                : HKDF<SHA256>.expand(pseudoRandomKey: key, info: info, outputByteCount: length)
            return out.withUnsafeBytes { Array($0) }
        }

        public func hmac(key: [UInt8], _ data: [UInt8]) -> [UInt8] {
            let k = SymmetricKey(data: key)
            if self == .aes256GCMSHA384 { return Array(HMAC<SHA384>.authenticationCode(for: data, using: k)) }
            return Array(HMAC<SHA256>.authenticationCode(for: data, using: k))
        }

        /// HKDF-Expand-Label (RFC 8446 7.1).
        public func expandLabel(_ secret: [UInt8], _ label: String, context: [UInt8], length: Int) -> [UInt8] {
            let full = Array("tls13 \(label)".utf8)
            var info: [UInt8] = [UInt8(length >> 8), UInt8(length & 0xff), UInt8(full.count)]
            info += full
            info.append(UInt8(context.count))
            info += context
            return expand(prk: secret, info: info, length: length)
        }

        /// Derive-Secret(secret, label, messages) with the transcript hash already taken.
        public func deriveSecret(_ secret: [UInt8], _ label: String, transcriptHash: [UInt8]) -> [UInt8] {
            expandLabel(secret, label, context: transcriptHash, length: hashLength)
        }
    }

    /// The secrets of one (EC)DHE handshake without PSK.
    public struct Schedule: Sendable {
        public let suite: Suite
        public let handshakeSecret: [UInt8]

        public init(suite: Suite, sharedSecret: [UInt8]) {
            self.suite = suite
            let zeros = [UInt8](repeating: 0, count: suite.hashLength)
            let early = suite.extract(salt: zeros, ikm: zeros)
            let derived = suite.deriveSecret(early, "derived", transcriptHash: suite.hash([]))
            handshakeSecret = suite.extract(salt: derived, ikm: sharedSecret)
        }

        /// `c hs traffic` / `s hs traffic` over Hash(ClientHello ‖ ServerHello).
        public func handshakeTraffic(helloHash: [UInt8]) -> (client: [UInt8], server: [UInt8]) {
            (suite.deriveSecret(handshakeSecret, "c hs traffic", transcriptHash: helloHash),
             suite.deriveSecret(handshakeSecret, "s hs traffic", transcriptHash: helloHash))
        }

        /// `c ap traffic` / `s ap traffic` over Hash(ClientHello … server Finished).
        public func applicationTraffic(serverFinishedHash: [UInt8]) -> (client: [UInt8], server: [UInt8]) {
            let zeros = [UInt8](repeating: 0, count: suite.hashLength)
            let derived = suite.deriveSecret(handshakeSecret, "derived", transcriptHash: suite.hash([]))
            let master = suite.extract(salt: derived, ikm: zeros)
            return (suite.deriveSecret(master, "c ap traffic", transcriptHash: serverFinishedHash),
                    suite.deriveSecret(master, "s ap traffic", transcriptHash: serverFinishedHash))
        }

        /// Finished.verify_data for `baseKey` (a handshake traffic secret) over `transcriptHash`.
        public func finished(baseKey: [UInt8], transcriptHash: [UInt8]) -> [UInt8] {
            let key = suite.expandLabel(baseKey, "finished", context: [], length: suite.hashLength)
            return suite.hmac(key: key, transcriptHash)
        }
    }

    /// Record protection for one direction (RFC 8446 5.2–5.3): nonce = iv XOR 64-bit sequence
    /// number, AAD = the 5-byte record header, inner plaintext = content ‖ type ‖ zero padding.
    public struct RecordCipher: Sendable {
        public enum CipherError: Error, Equatable { case open, sequenceExhausted, badLength }
        public let suite: Suite
        private let key: SymmetricKey
        private let iv: [UInt8]
        public private(set) var sequence: UInt64 = 0
        /// The inner plaintext of the bulk path (`sealParts`), reused record after record.
        private var scratch: [UInt8] = []

        public init(suite: Suite, trafficSecret: [UInt8]) {
            self.suite = suite
            key = SymmetricKey(data: suite.expandLabel(trafficSecret, "key", context: [], length: suite.keyLength))
            iv = suite.expandLabel(trafficSecret, "iv", context: [], length: 12)
        }

        func nonce() -> [UInt8] {
            var n = iv
            for i in 0..<8 { n[4 + i] ^= UInt8(truncatingIfNeeded: sequence >> (56 - 8 * UInt64(i))) }
            return n
        }

        /// A whole record (`17 03 03 len` ‖ ciphertext ‖ tag) carrying `content` of `type`.
        /// `padding` zero bytes follow the type (RFC 8446 5.4).
        public mutating func seal(_ content: [UInt8], type: UInt8, padding: Int = 0) throws -> [UInt8] {
            guard sequence < UInt64.max else { throw CipherError.sequenceExhausted }
            guard padding >= 0 else { throw CipherError.badLength }
            var inner = content
            inner.append(type)
            if padding > 0 { inner += [UInt8](repeating: 0, count: padding) }
            let length = inner.count + 16
            guard length <= 16_384 + 256 else { throw CipherError.badLength }
            let header: [UInt8] = [0x17, 0x03, 0x03, UInt8(length >> 8), UInt8(length & 0xff)]
            let sealed = try AEAD.seal(suite: suite, key: key, nonce: nonce(), plaintext: inner, aad: header)
            sequence += 1
            return header + sealed
        }

        /// The bulk path: the same record as `seal(content, type:)` with no padding, in parts (the
        /// 5-byte header, the ciphertext, the tag) for the caller to write where it wants, with one
        /// copy of `content` (into a reused buffer) before the AEAD.
        public mutating func sealParts(_ content: UnsafeRawBufferPointer, type: UInt8) throws -> (header: [UInt8], ciphertext: Data, tag: Data) {
            guard sequence < UInt64.max else { throw CipherError.sequenceExhausted }
            let length = content.count + 1 + 16
            guard length <= 16_384 + 256 else { throw CipherError.badLength }
            scratch.removeAll(keepingCapacity: true)
            scratch.append(contentsOf: content)
            scratch.append(type)
            let header: [UInt8] = [0x17, 0x03, 0x03, UInt8(length >> 8), UInt8(length & 0xff)]
            let parts = try AEAD.sealParts(suite: suite, key: key, nonce: nonce(), plaintext: scratch, aad: header)
            sequence += 1
            return (header, parts.ciphertext, parts.tag)
        }

        /// Opens a record's payload (`header` its 5 bytes); returns (content, type). Does not
        /// advance the sequence on failure.
        public mutating func open(header: [UInt8], payload: [UInt8]) throws -> (content: [UInt8], type: UInt8) {
            guard sequence < UInt64.max else { throw CipherError.sequenceExhausted }
            guard payload.count >= 17 else { throw CipherError.open }
            guard var inner = AEAD.open(suite: suite, key: key, nonce: nonce(), sealed: payload, aad: header) else { throw CipherError.open }
            sequence += 1
            while let last = inner.last, last == 0 { inner.removeLast() }
            guard let type = inner.popLast() else { throw CipherError.open }
            return (inner, type)
        }
    }

    enum AEAD {
        static func seal(suite: Suite, key: SymmetricKey, nonce: [UInt8], plaintext: [UInt8], aad: [UInt8]) throws -> [UInt8] {
            let parts = try sealParts(suite: suite, key: key, nonce: nonce, plaintext: plaintext, aad: aad)
            return Array(parts.ciphertext) + Array(parts.tag)
        }

        static func sealParts(suite: Suite, key: SymmetricKey, nonce: [UInt8], plaintext: [UInt8], aad: [UInt8]) throws -> (ciphertext: Data, tag: Data) {
            if suite == .chacha20Poly1305SHA256 {
                let box = try ChaChaPoly.seal(plaintext, using: key, nonce: try ChaChaPoly.Nonce(data: nonce), authenticating: aad)
                return (box.ciphertext, box.tag)
            }
            let box = try AES.GCM.seal(plaintext, using: key, nonce: try AES.GCM.Nonce(data: nonce), authenticating: aad)
            return (box.ciphertext, box.tag)
        }

        static func open(suite: Suite, key: SymmetricKey, nonce: [UInt8], sealed: [UInt8], aad: [UInt8]) -> [UInt8]? {
            guard sealed.count >= 16 else { return nil }
            let ct = sealed[..<(sealed.count - 16)], tag = sealed[(sealed.count - 16)...]
            if suite == .chacha20Poly1305SHA256 {
                guard let n = try? ChaChaPoly.Nonce(data: nonce), let box = try? ChaChaPoly.SealedBox(nonce: n, ciphertext: ct, tag: tag),
                      let p = try? ChaChaPoly.open(box, using: key, authenticating: aad) else { return nil }
                return Array(p)
            }
            guard let n = try? AES.GCM.Nonce(data: nonce), let box = try? AES.GCM.SealedBox(nonce: n, ciphertext: ct, tag: tag),
                  let p = try? AES.GCM.open(box, using: key, authenticating: aad) else { return nil }
            return Array(p)
        }
    }
}
