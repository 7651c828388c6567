import Crypto
import Foundation

/// The client's ephemeral key shares for a T1 ClientHello (PROTOCOL.md 2.2): a real ML-KEM-768
/// encapsulation key (the X25519MLKEM768 share is `mlkem_pk (1184) ‖ x25519 (32)`, as Chrome
/// sends it) and a standalone X25519 share whose private half keys the session-id token.
public struct T1KeyShares: @unchecked Sendable {
    public let x25519: Curve25519.KeyAgreement.PrivateKey
    public let mlkem: MLKEM768.PrivateKey
    /// The hybrid share's own X25519 key: BoringSSL generates one key per offered group, so the two
    /// X25519 public values in a Chrome hello differ (equal ones would be a fingerprint).
    public let hybridX25519: Curve25519.KeyAgreement.PrivateKey
    public init() throws {
        x25519 = Curve25519.KeyAgreement.PrivateKey()
        hybridX25519 = Curve25519.KeyAgreement.PrivateKey()
        mlkem = try MLKEM768.PrivateKey()
    }
    public var x25519Public: [UInt8] { Array(x25519.publicKey.rawRepresentation) }
    public var mlkemPublic: [UInt8] { Array(mlkem.publicKey.rawRepresentation) }
    /// 1216 bytes: ML-KEM-768 encapsulation key ‖ the X25519 public key.
    public var hybridPublic: [UInt8] { mlkemPublic + Array(hybridX25519.publicKey.rawRepresentation) }
}

/// The T1 session-id token (PROTOCOL.md 2.2, T1-RESEARCH.md 4.4).
///
///     dh     = X25519(client x25519 share, front T1 key)      -- all-zero result rejected
///     PRK    = HKDF-Extract(salt = ClientHello.random, IKM = dh ‖ PSK)
///     K_tok  = HKDF-Expand(PRK, "montana-t1 tok", 32); N_tok = HKDF-Expand(PRK, "montana-t1 nonce", 12)
///     K_auth = HKDF-Expand(PRK, "montana-t1 auth", 32)        -- keys the server tag / proof record
///     plain  = ver (1) = 1 ‖ flags (1) = 0 ‖ unix seconds (4, BE) ‖ short id (8, zero-padded) ‖ 0 (2)
///     session_id = AES-256-GCM(K_tok, N_tok, plain, aad = ClientHello handshake message with
///                  the session id zeroed)                  -- 16 ciphertext ‖ 16 tag = 32 bytes
public enum T1Token {
    public static let version: UInt8 = 1
    public static let plainLength = 16
    public static let sessionIDLength = 32
    public static let maxShortIDLength = 8

    public enum TokenError: Error, Equatable { case badKey, badShortID, badInput }

    public struct Opened: Sendable, Equatable {
        public let unixSeconds: UInt32
        public let shortID: [UInt8]          // always 8 bytes (zero-padded)
        public let flags: UInt8
        public let authKey: [UInt8]          // K_auth, 32 bytes
    }

    struct Keys { let tok: SymmetricKey; let nonce: [UInt8]; let auth: [UInt8] }

    static func keys(dh: SharedSecret, random: [UInt8], psk: [UInt8]) -> Keys {
        var ikm = dh.withUnsafeBytes { Array($0) }
        ikm += psk
        let prk = HKDF<SHA256>.extract(inputKeyMaterial: SymmetricKey(data: ikm), salt: random)
        func expand(_ label: String, _ n: Int) -> [UInt8] {
            HKDF<SHA256>.expand(pseudoRandomKey: prk, info: Array(label.utf8), outputByteCount: n)
                .withUnsafeBytes { Array($0) }
        }
        return Keys(tok: SymmetricKey(data: expand("montana-t1 tok", 32)), nonce: expand("montana-t1 nonce", 12),
                    auth: expand("montana-t1 auth", 32))
    }

    /// Pads a short id (≤ 8 bytes) to 8 bytes.
    public static func paddedShortID(_ id: [UInt8]) throws -> [UInt8] {
        guard id.count <= maxShortIDLength else { throw TokenError.badShortID }
        return id + [UInt8](repeating: 0, count: maxShortIDLength - id.count)
    }

    /// Client side: the 32-byte session id for a ClientHello whose handshake message (with a
    /// zeroed session id) is `aad`, plus K_auth.
    public static func seal(client: Curve25519.KeyAgreement.PrivateKey, frontPublic: [UInt8], psk: [UInt8],
                            random: [UInt8], unixSeconds: UInt32, shortID: [UInt8], aad: [UInt8]) throws
        -> (sessionID: [UInt8], authKey: [UInt8]) {
        guard random.count == 32 else { throw TokenError.badInput }
        guard let pub = try? Curve25519.KeyAgreement.PublicKey(rawRepresentation: frontPublic),
              let dh = try? client.sharedSecretFromKeyAgreement(with: pub), !isAllZero(dh) else { throw TokenError.badKey }
        let k = keys(dh: dh, random: random, psk: psk)
        var plain: [UInt8] = [version, 0]
        plain += withUnsafeBytes(of: unixSeconds.bigEndian) { Array($0) }
        plain += try paddedShortID(shortID)
        plain += [0, 0]
        let box = try AES.GCM.seal(plain, using: k.tok, nonce: try AES.GCM.Nonce(data: k.nonce), authenticating: aad)
        return (Array(box.ciphertext) + Array(box.tag), k.auth)
    }

    /// Front side: opens the token with the front's T1 private key and the client's X25519 share.
    /// Nil on any failure (wrong key, tampered hello, wrong PSK, unknown version).
    public static func open(front: Curve25519.KeyAgreement.PrivateKey, clientShare: [UInt8], psk: [UInt8],
                            random: [UInt8], sessionID: [UInt8], aad: [UInt8]) -> Opened? {
        guard random.count == 32, sessionID.count == sessionIDLength,
              let pub = try? Curve25519.KeyAgreement.PublicKey(rawRepresentation: clientShare),
              let dh = try? front.sharedSecretFromKeyAgreement(with: pub), !isAllZero(dh) else { return nil }
        let k = keys(dh: dh, random: random, psk: psk)
        guard let nonce = try? AES.GCM.Nonce(data: k.nonce),
              let box = try? AES.GCM.SealedBox(nonce: nonce, ciphertext: sessionID[0..<16], tag: sessionID[16..<32]),
              let plain = try? AES.GCM.open(box, using: k.tok, authenticating: aad) else { return nil }
        let p = Array(plain)
        guard p.count == plainLength, p[0] == version else { return nil }
        let t = p[2..<6].reduce(UInt32(0)) { ($0 << 8) | UInt32($1) }
        return Opened(unixSeconds: t, shortID: Array(p[6..<14]), flags: p[1], authKey: k.auth)
    }

    static func isAllZero(_ s: SharedSecret) -> Bool {
        s.withUnsafeBytes { b in b.reduce(UInt8(0)) { $0 | $1 } == 0 }
    }
}

/// A front's T1 X25519 key (universal or own, PROTOCOL.md 1 key type `t1`).
public struct T1FrontKey: @unchecked Sendable {
    public let privateKey: Curve25519.KeyAgreement.PrivateKey
    public init(rawPrivate: [UInt8]) throws {
        guard rawPrivate.count == 32 else { throw T1Token.TokenError.badKey }
        privateKey = try Curve25519.KeyAgreement.PrivateKey(rawRepresentation: rawPrivate)
    }
    public init() { privateKey = Curve25519.KeyAgreement.PrivateKey() }
    public var publicKey: [UInt8] { Array(privateKey.publicKey.rawRepresentation) }
}
