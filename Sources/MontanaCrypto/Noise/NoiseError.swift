/// Why a handshake failed. Every failure ends the handshake: no session is derived.
public enum NoiseError: Error, Equatable, Sendable, CustomStringConvertible {
    case unexpectedMessage(String)
    case badMessageKind(UInt8)
    case truncated
    case wrongLength(message: String, length: Int)
    case decryptionFailed
    case invalidPublicKey
    case badSignature
    case wrongResponder(expected: String, got: String)
    case malformedPayload

    public var description: String {
        switch self {
        case .unexpectedMessage(let s): return "unexpected handshake step: \(s)"
        case .badMessageKind(let k): return "unknown session message kind 0x\(String(k, radix: 16))"
        case .truncated: return "handshake message truncated"
        case .wrongLength(let m, let l): return "\(m) has invalid length \(l)"
        case .decryptionFailed: return "handshake decryption failed"
        case .invalidPublicKey: return "invalid public key in handshake"
        case .badSignature: return "handshake signature does not verify"
        case .wrongResponder(let e, let g): return "responder is \(g), not the node asked for (\(e))"
        case .malformedPayload: return "malformed handshake payload"
        }
    }
}
