import Crypto
import Foundation

/// T1's own keys after the cover's real TLS 1.3 handshake (PROTOCOL.md 2.2 "tag, proof, switch";
/// T1-RESEARCH.md 4.5–4.7). All HKDF/HMAC are SHA-256; records are TLS 1.3-shaped
/// (`TLS13.RecordCipher` with ChaCha20-Poly1305), so a T1 frame is an ordinary `17 03 03` record.
///
///     mask     = HMAC(K_auth, "montana-t1 srv" ‖ ServerHello.random)[0..<16]
///                XOR-ed by the front into the first 16 bytes of the cover's first encrypted record
///     PRK0     = HKDF-Extract(salt = ServerHello.random, IKM = K_auth ‖ the client's Finished record as sent)
///     c0 / s0  = HKDF-Expand(PRK0, "montana-t1 c0" / "montana-t1 s0", 32)     -- InnerHello / InnerReply
///     InnerHello (client, under c0) = 01 ‖ 00, then padding
///     InnerReply (front, under s0)  = 01 ‖ e_s (X25519, 32) ‖ ML-KEM-768 ciphertext (1088) to the
///                                     client's own key from its 0x11EC share
///     PRK      = HKDF-Extract(salt = SHA-256(CH ‖ SH ‖ InnerHello ‖ InnerReply),
///                             IKM = K_auth ‖ X25519(e, e_s) ‖ ML-KEM shared secret)
///     c ap / s ap = HKDF-Expand(PRK, "montana-t1 c ap" / "montana-t1 s ap", 32)
///
/// `e` is the client's standalone X25519 share (the one that keys the token). Forward secrecy
/// comes from `e`/`e_s`, post-quantum confidentiality from ML-KEM; no carrier byte travels under
/// c0/s0. This layer is camouflage only: the session inside it is Noise_PQ XX end to end.
public enum T1Switch {
    public static let innerVersion: UInt8 = 1
    public static let replyLength = 1 + 32 + 1088
    public static let suite = TLS13.Suite.chacha20Poly1305SHA256

    public enum SwitchError: Error, Equatable { case badKey, badReply }

    public static func mask(authKey: [UInt8], serverRandom: [UInt8]) -> [UInt8] {
        let mac = HMAC<SHA256>.authenticationCode(for: Array("montana-t1 srv".utf8) + serverRandom, using: SymmetricKey(data: authKey))
        return Array(Array(mac)[0..<16])
    }

    /// XORs `mask` into the first 16 bytes of `payload` (the record's ciphertext); false when shorter.
    public static func apply(mask: [UInt8], to payload: inout [UInt8]) -> Bool {
        guard payload.count >= 16, mask.count == 16 else { return false }
        for i in 0..<16 { payload[i] ^= mask[i] }
        return true
    }

    private static func expand(_ prk: SymmetricKey, _ label: String) -> [UInt8] {
        HKDF<SHA256>.expand(pseudoRandomKey: prk, info: Array(label.utf8), outputByteCount: 32).withUnsafeBytes { Array($0) }
    }

    public static func stage0(authKey: [UInt8], serverRandom: [UInt8], clientFinishedRecord: [UInt8])
        -> (client: TLS13.RecordCipher, server: TLS13.RecordCipher) {
        let prk = SymmetricKey(data: HKDF<SHA256>.extract(inputKeyMaterial: SymmetricKey(data: authKey + clientFinishedRecord), salt: serverRandom))
        return (TLS13.RecordCipher(suite: suite, trafficSecret: expand(prk, "montana-t1 c0")),
                TLS13.RecordCipher(suite: suite, trafficSecret: expand(prk, "montana-t1 s0")))
    }

    public static func traffic(authKey: [UInt8], transcript: [UInt8], x25519: [UInt8], mlkem: [UInt8])
        -> (client: TLS13.RecordCipher, server: TLS13.RecordCipher) {
        let salt = Array(SHA256.hash(data: transcript))
        let prk = SymmetricKey(data: HKDF<SHA256>.extract(inputKeyMaterial: SymmetricKey(data: authKey + x25519 + mlkem), salt: salt))
        return (TLS13.RecordCipher(suite: suite, trafficSecret: expand(prk, "montana-t1 c ap")),
                TLS13.RecordCipher(suite: suite, trafficSecret: expand(prk, "montana-t1 s ap")))
    }

    /// Front: the InnerReply plaintext and the two shared secrets, for the client's X25519 share
    /// and its ML-KEM-768 encapsulation key (the first 1184 bytes of its 0x11EC share).
    public static func reply(clientX25519: [UInt8], clientMLKEM: [UInt8]) throws -> (plain: [UInt8], x25519: [UInt8], mlkem: [UInt8]) {
        guard let peer = try? Curve25519.KeyAgreement.PublicKey(rawRepresentation: clientX25519),
              let kem = try? MLKEM768.PublicKey(rawRepresentation: clientMLKEM) else { throw SwitchError.badKey }
        let es = Curve25519.KeyAgreement.PrivateKey()
        guard let dh = try? es.sharedSecretFromKeyAgreement(with: peer), !T1Token.isAllZero(dh),
              let enc = try? kem.encapsulate() else { throw SwitchError.badKey }
        let plain = [innerVersion] + Array(es.publicKey.rawRepresentation) + Array(enc.encapsulated)
        return (plain, dh.withUnsafeBytes { Array($0) }, enc.sharedSecret.withUnsafeBytes { Array($0) })
    }

    /// Client: the two shared secrets from an InnerReply.
    public static func accept(reply: [UInt8], shares: T1KeyShares) throws -> (x25519: [UInt8], mlkem: [UInt8]) {
        guard reply.count == replyLength, reply[0] == innerVersion,
              let es = try? Curve25519.KeyAgreement.PublicKey(rawRepresentation: reply[1..<33]),
              let dh = try? shares.x25519.sharedSecretFromKeyAgreement(with: es), !T1Token.isAllZero(dh),
              let ss = try? shares.mlkem.decapsulate(reply[33...]) else { throw SwitchError.badReply }
        return (dh.withUnsafeBytes { Array($0) }, ss.withUnsafeBytes { Array($0) })
    }

    /// The client's TLS key exchange with the cover for the group the ServerHello chose:
    /// 0x001d X25519 with the standalone share; 0x11EC X25519MLKEM768 (ML-KEM secret ‖ X25519
    /// secret, the hybrid share's own X25519 key). Nil for any other group or a bad share.
    public static func coverSharedSecret(group: UInt16, serverShare: [UInt8], shares: T1KeyShares) -> [UInt8]? {
        switch group {
        case 0x001d:
            guard let pub = try? Curve25519.KeyAgreement.PublicKey(rawRepresentation: serverShare),
                  let dh = try? shares.x25519.sharedSecretFromKeyAgreement(with: pub), !T1Token.isAllZero(dh) else { return nil }
            return dh.withUnsafeBytes { Array($0) }
        case 0x11ec:
            guard serverShare.count == 1088 + 32,
                  let ss = try? shares.mlkem.decapsulate(serverShare[0..<1088]),
                  let pub = try? Curve25519.KeyAgreement.PublicKey(rawRepresentation: serverShare[1088...]),
                  let dh = try? shares.hybridX25519.sharedSecretFromKeyAgreement(with: pub), !T1Token.isAllZero(dh) else { return nil }
            return ss.withUnsafeBytes { Array($0) } + dh.withUnsafeBytes { Array($0) }
        default:
            return nil
        }
    }
}
