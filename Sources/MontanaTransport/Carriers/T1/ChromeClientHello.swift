/// A TLS 1.3 ClientHello byte-shaped like a pinned Chrome release (PROTOCOL.md 2.2, T1-RESEARCH.md 3.1).
///
/// Pinned profile: Chrome 133–145 as reproduced by curl_cffi 0.17.0 `chrome145` (BoringSSL),
/// JA4 `t13d1516h2_8daaf6152771_d8a2da3f94cd`; the reference capture is
/// `Tests/Fixtures/t1/chrome145-clienthello.json` and `scripts/t1-chrome-capture.py` re-pins it
/// (docs/OPERATIONS.md "Re-pinning the T1 ClientHello").
///
/// Layout (everything Chrome varies per connection varies here the same way):
/// - record 0x16 0x0301, handshake 0x01, legacy_version 0x0303, 32-byte random, 32-byte session id
///   (the T1 token), compression `00`;
/// - cipher suites: GREASE, then the 15 of `cipherSuites`;
/// - extensions: a GREASE extension (empty) first, the 16 of `ExtensionType.chromeSet` in a fresh
///   random order (Chrome's permutation), a second, different GREASE extension (body `00`) last;
/// - GREASE values 0x?A?A, independent for ciphers, groups (the same value repeated as the 1-byte
///   key share) and supported_versions, the two GREASE extensions differing;
/// - supported_groups GREASE, X25519MLKEM768 (0x11EC), x25519, secp256r1, secp384r1; key shares
///   GREASE (1 byte `00`), 0x11EC (1216 = ML-KEM-768 key ‖ X25519), x25519 (32);
/// - ECH GREASE: outer, HKDF-SHA256/AES-128-GCM, random config id, 32-byte enc, payload of
///   144/176/208/240 random bytes (extension length 186/218/250/282);
/// - no padding extension: with the post-quantum share the hello is ~1.7 KB, above BoringSSL's
///   256–511-byte padding window, exactly as in Chrome.
public enum ChromeClientHello {
    public static let profileName = "chrome145"
    public static let expectedJA4 = "t13d1516h2_8daaf6152771_d8a2da3f94cd"

    public static let cipherSuites: [UInt16] = [
        0x1301, 0x1302, 0x1303, 0xc02b, 0xc02f, 0xc02c, 0xc030, 0xcca9, 0xcca8, 0xc013, 0xc014,
        0x009c, 0x009d, 0x002f, 0x0035,
    ]
    public static let signatureAlgorithms: [UInt16] = [0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601]
    public static let groups: [UInt16] = [0x11ec, 0x001d, 0x0017, 0x0018]
    public static let alpn = ["h2", "http/1.1"]
    public static let alpsCodepoint: UInt16 = 0x44cd
    public static let echPayloadLengths = [144, 176, 208, 240]
    public static let mlkemPublicLength = 1184
    /// Offset of the session id inside the handshake message (4 header + 2 version + 32 random + 1 length).
    public static let sessionIDOffsetInHandshake = 39
    /// The same offset inside the record (5-byte record header first).
    public static let sessionIDOffsetInRecord = 44

    public enum ExtensionType {
        public static let serverName: UInt16 = 0x0000
        public static let statusRequest: UInt16 = 0x0005
        public static let supportedGroups: UInt16 = 0x000a
        public static let ecPointFormats: UInt16 = 0x000b
        public static let signatureAlgorithms: UInt16 = 0x000d
        public static let alpn: UInt16 = 0x0010
        public static let sct: UInt16 = 0x0012
        public static let padding: UInt16 = 0x0015
        public static let extendedMasterSecret: UInt16 = 0x0017
        public static let compressCertificate: UInt16 = 0x001b
        public static let sessionTicket: UInt16 = 0x0023
        public static let supportedVersions: UInt16 = 0x002b
        public static let pskKeyExchangeModes: UInt16 = 0x002d
        public static let keyShare: UInt16 = 0x0033
        public static let alps: UInt16 = 0x44cd
        public static let ech: UInt16 = 0xfe0d
        public static let renegotiationInfo: UInt16 = 0xff01
    }

    public enum BuildError: Error, Equatable { case badServerName, badInput }

    public struct Built: Sendable {
        /// The whole TLS record (header + handshake message), ready for the wire.
        public var record: [UInt8]
        public var random: [UInt8]
        /// The handshake message alone (what the token's AAD covers, with the session id zeroed).
        public var handshake: [UInt8] { Array(record[5...]) }
        /// Writes `sessionID` (32 bytes) into the record.
        public mutating func setSessionID(_ sessionID: [UInt8]) {
            precondition(sessionID.count == 32)
            record.replaceSubrange(sessionIDOffsetInRecord..<(sessionIDOffsetInRecord + 32), with: sessionID)
        }
    }

    static func grease<G: RandomNumberGenerator>(_ rng: inout G) -> UInt16 {
        let k = UInt16(UInt8.random(in: 0...15, using: &rng))
        return 0x0a0a | (k << 12) | (k << 4)
    }

    /// Builds the hello with a zeroed session id. `x25519Public` is 32 bytes, `hybridPublic` 1216
    /// (ML-KEM-768 key ‖ a separate X25519 key).
    public static func build<G: RandomNumberGenerator>(serverName: String, x25519Public: [UInt8], hybridPublic: [UInt8],
                                                       using rng: inout G) throws -> Built {
        let host = Array(serverName.utf8)
        guard !host.isEmpty, host.count <= 255, host.allSatisfy({ $0 > 0x20 && $0 < 0x7f }) else { throw BuildError.badServerName }
        guard x25519Public.count == 32, hybridPublic.count == mlkemPublicLength + 32 else { throw BuildError.badInput }
        let random = (0..<32).map { _ in UInt8.random(in: 0...255, using: &rng) }
        let greaseCipher = grease(&rng), greaseGroup = grease(&rng), greaseVersion = grease(&rng)
        let greaseExt1 = grease(&rng)
        var greaseExt2 = grease(&rng)
        if greaseExt2 == greaseExt1 { greaseExt2 ^= 0x1010 }

        var w = ByteWriter()
        // The 16 extensions Chrome shuffles.
        var exts: [(UInt16, [UInt8])] = []
        do { var b = ByteWriter(); b.u16(UInt16(host.count + 3)); b.u8(0); b.u16(UInt16(host.count)); b.bytes(host)
             exts.append((ExtensionType.serverName, b.out)) }
        exts.append((ExtensionType.extendedMasterSecret, []))
        exts.append((ExtensionType.renegotiationInfo, [0]))
        do { var b = ByteWriter(); let g = [greaseGroup] + groups; b.u16(UInt16(g.count * 2)); g.forEach { b.u16($0) }
             exts.append((ExtensionType.supportedGroups, b.out)) }
        exts.append((ExtensionType.ecPointFormats, [1, 0]))
        exts.append((ExtensionType.sessionTicket, []))
        do { var b = ByteWriter(); var list = ByteWriter(); for p in alpn { list.u8(UInt8(p.utf8.count)); list.bytes(Array(p.utf8)) }
             b.u16(UInt16(list.out.count)); b.bytes(list.out); exts.append((ExtensionType.alpn, b.out)) }
        exts.append((ExtensionType.statusRequest, [1, 0, 0, 0, 0]))
        do { var b = ByteWriter(); b.u16(UInt16(signatureAlgorithms.count * 2)); signatureAlgorithms.forEach { b.u16($0) }
             exts.append((ExtensionType.signatureAlgorithms, b.out)) }
        exts.append((ExtensionType.sct, []))
        do { var shares = ByteWriter()
             shares.u16(greaseGroup); shares.u16(1); shares.u8(0)
             shares.u16(0x11ec); shares.u16(UInt16(mlkemPublicLength + 32)); shares.bytes(hybridPublic)
             shares.u16(0x001d); shares.u16(32); shares.bytes(x25519Public)
             var b = ByteWriter(); b.u16(UInt16(shares.out.count)); b.bytes(shares.out)
             exts.append((ExtensionType.keyShare, b.out)) }
        exts.append((ExtensionType.pskKeyExchangeModes, [1, 1]))
        do { var b = ByteWriter(); b.u8(6); b.u16(greaseVersion); b.u16(0x0304); b.u16(0x0303)
             exts.append((ExtensionType.supportedVersions, b.out)) }
        exts.append((ExtensionType.compressCertificate, [2, 0, 2]))
        exts.append((ExtensionType.alps, [0, 3, 2, 0x68, 0x32]))
        do { var b = ByteWriter()
             b.u8(0); b.u16(0x0001); b.u16(0x0001)                       // outer; HKDF-SHA256, AES-128-GCM
             b.u8(UInt8.random(in: 0...255, using: &rng))                // config id
             b.u16(32); b.bytes((0..<32).map { _ in UInt8.random(in: 0...255, using: &rng) })
             let n = echPayloadLengths.randomElement(using: &rng)!
             b.u16(UInt16(n)); b.bytes((0..<n).map { _ in UInt8.random(in: 0...255, using: &rng) })
             exts.append((ExtensionType.ech, b.out)) }
        exts.shuffle(using: &rng)

        var extBlock = ByteWriter()
        extBlock.u16(greaseExt1); extBlock.u16(0)
        for (t, body) in exts { extBlock.u16(t); extBlock.u16(UInt16(body.count)); extBlock.bytes(body) }
        extBlock.u16(greaseExt2); extBlock.u16(1); extBlock.u8(0)

        var body = ByteWriter()
        body.u16(0x0303); body.bytes(random)
        body.u8(32); body.bytes([UInt8](repeating: 0, count: 32))
        body.u16(UInt16((cipherSuites.count + 1) * 2)); body.u16(greaseCipher); cipherSuites.forEach { body.u16($0) }
        body.u8(1); body.u8(0)
        body.u16(UInt16(extBlock.out.count)); body.bytes(extBlock.out)

        let n = body.out.count
        w.u8(0x16); w.u16(0x0301); w.u16(UInt16(n + 4))
        w.u8(0x01); w.u8(UInt8(n >> 16)); w.u8(UInt8((n >> 8) & 0xff)); w.u8(UInt8(n & 0xff))
        w.bytes(body.out)
        return Built(record: w.out, random: random)
    }
}

struct ByteWriter {
    var out: [UInt8] = []
    mutating func u8(_ v: UInt8) { out.append(v) }
    mutating func u16(_ v: UInt16) { out.append(UInt8(v >> 8)); out.append(UInt8(v & 0xff)) }
    mutating func bytes(_ b: [UInt8]) { out += b }
}
