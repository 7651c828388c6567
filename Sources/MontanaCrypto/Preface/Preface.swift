import Crypto
import Foundation
import MontanaWire

/// One hop of a circuit (PROTOCOL.md section 3): a request sealed to the next hop's X-Wing key.
/// `preface = kem_ct (1120) ‖ AEAD(k_req, 0¹², block (496))` — 1632 bytes; the answer is
/// `AEAD(k_resp, 0¹², block' (64))` — 80 bytes.
public enum Preface {
    public static let size = KEMKey.ciphertextSize + sealedBlockSize
    public static let blockSize = 496
    public static let sealedBlockSize = blockSize + 16
    public static let maxMessage = blockSize - 3
    public static let responseBlockSize = 64
    public static let responseSize = responseBlockSize + 16
    static let salt = Array("montana-preface-v1".utf8)

    public enum Kind: UInt8, Sendable {
        case hop = 1
        case stop = 2
    }

    public enum Message: Equatable, Sendable {
        case hop(HopMessage)
        case stop(StopMessage)

        public var kind: Kind {
            switch self {
            case .hop: return .hop
            case .stop: return .stop
            }
        }

        public func encode() -> [UInt8] {
            switch self {
            case .hop(let m): return m.encode()
            case .stop(let m): return m.encode()
            }
        }

        public var ext: RelayExtension {
            switch self {
            case .hop(let m): return m.ext
            case .stop(let m): return m.ext
            }
        }

        static func decode(kind: Kind, _ bytes: [UInt8]) throws(WireError) -> Message {
            switch kind {
            case .hop: return .hop(try HopMessage.decode(bytes))
            case .stop: return .stop(try StopMessage.decode(bytes))
            }
        }
    }

    /// The keys one preface exchange derives. `responseKey` opens (or seals) the 80-byte answer.
    public struct Keys: Sendable {
        public let requestKey: [UInt8]
        public let responseKey: [UInt8]
    }

    static func deriveKeys(sharedSecret: [UInt8], kemCiphertext: [UInt8]) -> Keys {
        let okm = HKDF<SHA256>.deriveKey(inputKeyMaterial: SymmetricKey(data: sharedSecret), salt: salt,
                                         info: kemCiphertext, outputByteCount: 64)
        let bytes = okm.withUnsafeBytes { Array($0) }
        return Keys(requestKey: Array(bytes[0..<32]), responseKey: Array(bytes[32..<64]))
    }

    static func block(kind: UInt8, message: [UInt8], size: Int) throws(PrefaceError) -> [UInt8] {
        guard message.count <= size - 3 else { throw .messageTooLong(message.count) }
        var block: [UInt8] = [kind]
        block.appendLE(UInt16(message.count))
        block += message
        block += [UInt8](repeating: 0, count: size - block.count)
        return block
    }

    static func parseBlock(_ block: [UInt8]) throws(PrefaceError) -> (kind: UInt8, message: [UInt8]) {
        var r = ByteReader(block)
        guard let kind = try? r.readU8(), let length = try? r.readLE(UInt16.self) else { throw .undecodable }
        guard Int(length) <= block.count - 3 else { throw .badLength(Int(length)) }
        return (kind, try! r.readBytes(Int(length)))
    }

    static let zeroNonce = try! ChaChaPoly.Nonce(data: [UInt8](repeating: 0, count: 12))

    static func aeadSeal(_ plaintext: [UInt8], key: [UInt8]) -> [UInt8] {
        let box = try! ChaChaPoly.seal(plaintext, using: SymmetricKey(data: key), nonce: zeroNonce)
        return Array(box.ciphertext) + Array(box.tag)
    }

    static func aeadOpen(_ sealed: ArraySlice<UInt8>, key: [UInt8]) -> [UInt8]? {
        guard sealed.count >= 16,
              let box = try? ChaChaPoly.SealedBox(nonce: zeroNonce, ciphertext: sealed.dropLast(16), tag: sealed.suffix(16)),
              let plain = try? ChaChaPoly.open(box, using: SymmetricKey(data: key)) else { return nil }
        return Array(plain)
    }

    /// Seals `message` to a hop's KEM public key. Returns the 1632 preface bytes and the keys
    /// needed to read the hop's answer.
    public static func seal(_ message: Message, to hopKEMPublicKey: [UInt8]) throws -> (bytes: [UInt8], keys: Keys) {
        let (ct, ss) = try KEMKey.encapsulate(to: hopKEMPublicKey)
        return try seal(message, ciphertext: ct, sharedSecret: ss)
    }

    /// Deterministic half of `seal`, for recorded encapsulations (vectors).
    public static func seal(_ message: Message, ciphertext: [UInt8], sharedSecret: [UInt8]) throws -> (bytes: [UInt8], keys: Keys) {
        let keys = deriveKeys(sharedSecret: sharedSecret, kemCiphertext: ciphertext)
        let plain = try block(kind: message.kind.rawValue, message: message.encode(), size: blockSize)
        return (ciphertext + aeadSeal(plain, key: keys.requestKey), keys)
    }

    /// Seals an arbitrary 496-byte block, valid or not: for building hostile prefaces in tests,
    /// vectors and probes. Production code uses `seal(_:to:)`.
    public static func sealRawBlock(_ block: [UInt8], to hopKEMPublicKey: [UInt8]) throws -> [UInt8] {
        precondition(block.count == blockSize, "a preface block is 496 bytes")
        let (ct, ss) = try KEMKey.encapsulate(to: hopKEMPublicKey)
        return ct + aeadSeal(block, key: deriveKeys(sharedSecret: ss, kemCiphertext: ct).requestKey)
    }

    /// Opens a preface with the hop's KEM key. Checks only what the cryptography and the block
    /// layout decide; freshness, replay and admission are `PrefaceGate`'s.
    public static func open(_ preface: [UInt8], with key: KEMKey) throws(PrefaceError) -> (message: Message, keys: Keys) {
        guard preface.count == size else { throw .wrongSize(preface.count) }
        let ct = Array(preface[0..<KEMKey.ciphertextSize])
        guard let ss = try? key.decapsulate(ct) else { throw .doesNotOpen }
        let keys = deriveKeys(sharedSecret: ss, kemCiphertext: ct)
        guard let plain = aeadOpen(preface[KEMKey.ciphertextSize...], key: keys.requestKey) else { throw .doesNotOpen }
        return (try decodeRequestBlock(plain), keys)
    }

    /// Parses a decrypted 496-byte request block (public for fuzzing: the AEAD in front of it
    /// would otherwise hide this decoder from a fuzzer).
    public static func decodeRequestBlock(_ plain: [UInt8]) throws(PrefaceError) -> Message {
        let (rawKind, body) = try parseBlock(plain)
        guard let kind = Kind(rawValue: rawKind) else { throw .badKind(rawKind) }
        guard body.count <= maxMessage else { throw .badLength(body.count) }
        do {
            return try Message.decode(kind: kind, body)
        } catch {
            throw .undecodable
        }
    }

    /// The 80-byte answer; it echoes the request's kind.
    public static func sealResponse(_ message: Message, keys: Keys) throws(PrefaceError) -> [UInt8] {
        aeadSeal(try block(kind: message.kind.rawValue, message: message.encode(), size: responseBlockSize), key: keys.responseKey)
    }

    public static func openResponse(_ response: [UInt8], keys: Keys, expecting kind: Kind) throws(PrefaceError) -> Message {
        guard response.count == responseSize else { throw .wrongSize(response.count) }
        guard let plain = aeadOpen(response[...], key: keys.responseKey) else { throw .doesNotOpen }
        let (rawKind, body) = try parseBlock(plain)
        guard rawKind == kind.rawValue else { throw .badKind(rawKind) }
        do {
            return try Message.decode(kind: kind, body)
        } catch {
            throw .undecodable
        }
    }
}

public enum PrefaceError: Error, Equatable, Sendable, CustomStringConvertible {
    case wrongSize(Int)
    case doesNotOpen
    case badKind(UInt8)
    case badLength(Int)
    case undecodable
    case messageTooLong(Int)
    case missingTimestamp
    case staleTimestamp
    case replay
    case replayCacheFull
    /// The sender's network (or member) holds its whole share of the replay memory.
    case replayShareFull
    case unknownAlliance

    /// A short label for metrics ("handshake failures by reason").
    public var reason: String {
        switch self {
        case .wrongSize: return "size"
        case .doesNotOpen: return "does_not_open"
        case .badKind: return "bad_kind"
        case .badLength: return "bad_length"
        case .undecodable: return "undecodable"
        case .messageTooLong: return "too_long"
        case .missingTimestamp: return "no_ts"
        case .staleTimestamp: return "stale_ts"
        case .replay: return "replay"
        case .replayCacheFull: return "replay_cache_full"
        case .replayShareFull: return "replay_share_full"
        case .unknownAlliance: return "unknown_alliance"
        }
    }

    public var description: String { "preface rejected: \(reason)" }
}
