/// A strict, bounded ClientHello parser for the T1 front and for fingerprint tests (PROTOCOL.md 2.2).
///
/// Bounds (a remote peer feeds this): each TLS record's payload ≤ 16,384 bytes (RFC 8446 5.1);
/// the whole ClientHello handshake message ≤ `maxHandshakeLength` (16,384 bytes) and may span at
/// most `maxRecords` (4) records; ≤ 64 extensions, no duplicates; the session id ≤ 32 bytes;
/// every inner length must fit its container exactly. Anything else is `ParseError`, which the
/// front treats as "not ours": the connection stays a splice to the cover.
public struct ParsedClientHello: Sendable, Equatable {
    public var legacyVersion: UInt16
    public var random: [UInt8]
    public var sessionID: [UInt8]
    public var cipherSuites: [UInt16]
    public var extensions: [(type: UInt16, body: [UInt8])]
    public var serverName: String?
    public var alpn: [String]
    public var signatureAlgorithms: [UInt16]
    public var supportedVersions: [UInt16]
    public var supportedGroups: [UInt16]
    public var keyShares: [(group: UInt16, data: [UInt8])]
    /// The reassembled handshake message (type, 24-bit length, body).
    public var handshake: [UInt8]
    /// The record bytes the hello occupied on the wire.
    public var recordBytes: Int
    /// Offset of the session id bytes inside `handshake`.
    public var sessionIDOffset: Int

    /// The handshake message with the session id zeroed: the T1 token's AAD.
    public var handshakeWithZeroSessionID: [UInt8] {
        var h = handshake
        for i in sessionIDOffset..<(sessionIDOffset + sessionID.count) { h[i] = 0 }
        return h
    }

    public var extensionTypes: [UInt16] { extensions.map(\.type) }

    public func keyShare(_ group: UInt16) -> [UInt8]? { keyShares.first { $0.group == group }?.data }

    public static func == (a: ParsedClientHello, b: ParsedClientHello) -> Bool { a.handshake == b.handshake }
}

public enum ClientHelloParser {
    public static let maxRecordPayload = 16_384
    public static let maxHandshakeLength = 16_384
    public static let maxRecords = 4
    public static let maxExtensions = 64

    public enum ParseError: Error, Equatable {
        case notHandshake, badRecordVersion, recordTooLong, notClientHello, helloTooLong, tooManyRecords
        case truncated, trailingBytes, badLength, duplicateExtension, tooManyExtensions, badExtension(UInt16)
    }

    public enum Outcome: Sendable, Equatable {
        /// More bytes are needed (the prefix is consistent so far).
        case needMore
        case hello(ParsedClientHello)
    }

    /// Parses the ClientHello at the start of `bytes` (the client's first bytes on the wire).
    public static func parse(_ bytes: [UInt8]) throws -> Outcome {
        var handshake: [UInt8] = []
        var off = 0
        var records = 0
        var expected: Int? = nil
        while true {
            if let e = expected, handshake.count >= e { break }
            guard records < maxRecords else { throw ParseError.tooManyRecords }
            guard bytes.count >= off + 5 else { return try checkPrefix(bytes, off) }
            guard bytes[off] == 0x16 else { throw ParseError.notHandshake }
            guard bytes[off + 1] == 0x03, bytes[off + 2] <= 0x04 else { throw ParseError.badRecordVersion }
            let len = Int(bytes[off + 3]) << 8 | Int(bytes[off + 4])
            guard len > 0 else { throw ParseError.badLength }
            guard len <= maxRecordPayload else { throw ParseError.recordTooLong }
            if records == 0, bytes.count >= off + 6, bytes[off + 5] != 0x01 { throw ParseError.notClientHello }
            guard bytes.count >= off + 5 + len else { return .needMore }
            handshake += bytes[(off + 5)..<(off + 5 + len)]
            off += 5 + len
            records += 1
            if expected == nil, handshake.count >= 4 {
                guard handshake[0] == 0x01 else { throw ParseError.notClientHello }
                let n = Int(handshake[1]) << 16 | Int(handshake[2]) << 8 | Int(handshake[3])
                guard n + 4 <= maxHandshakeLength else { throw ParseError.helloTooLong }
                expected = n + 4
            }
        }
        guard let e = expected, handshake.count == e else { throw ParseError.trailingBytes }
        var hello = try parseHandshake(handshake)
        hello.recordBytes = off
        return .hello(hello)
    }

    private static func checkPrefix(_ b: [UInt8], _ off: Int) throws -> Outcome {
        if b.count > off, b[off] != 0x16 { throw ParseError.notHandshake }
        if b.count > off + 1, b[off + 1] != 0x03 { throw ParseError.badRecordVersion }
        return .needMore
    }

    struct Reader {
        let b: [UInt8]; var i: Int; let end: Int
        init(_ b: [UInt8], _ from: Int = 0, _ to: Int? = nil) { self.b = b; i = from; end = to ?? b.count }
        var remaining: Int { end - i }
        mutating func u8() throws -> UInt8 { guard i < end else { throw ParseError.truncated }; defer { i += 1 }; return b[i] }
        mutating func u16() throws -> UInt16 { UInt16(try u8()) << 8 | UInt16(try u8()) }
        mutating func take(_ n: Int) throws -> [UInt8] {
            guard n >= 0, n <= remaining else { throw ParseError.truncated }
            defer { i += n }; return Array(b[i..<(i + n)])
        }
        mutating func vec8() throws -> [UInt8] { try take(Int(try u8())) }
        mutating func vec16() throws -> [UInt8] { try take(Int(try u16())) }
    }

    static func u16List(_ body: [UInt8], _ t: UInt16, lengthBytes: Int = 2) throws -> [UInt16] {
        var r = Reader(body)
        let n = lengthBytes == 1 ? Int(try r.u8()) : Int(try r.u16())
        guard n % 2 == 0, n == r.remaining else { throw ParseError.badExtension(t) }
        var out: [UInt16] = []
        while r.remaining > 0 { out.append(try r.u16()) }
        return out
    }

    static func parseHandshake(_ h: [UInt8]) throws -> ParsedClientHello {
        var r = Reader(h, 4)
        let version = try r.u16()
        let random = try r.take(32)
        let sidLen = Int(try r.u8())
        guard sidLen <= 32 else { throw ParseError.badLength }
        let sidOffset = r.i
        let sid = try r.take(sidLen)
        let cs = try r.vec16()
        guard !cs.isEmpty, cs.count % 2 == 0 else { throw ParseError.badLength }
        let ciphers = stride(from: 0, to: cs.count, by: 2).map { UInt16(cs[$0]) << 8 | UInt16(cs[$0 + 1]) }
        let comp = try r.vec8()
        guard !comp.isEmpty else { throw ParseError.badLength }
        var hello = ParsedClientHello(legacyVersion: version, random: random, sessionID: sid, cipherSuites: ciphers,
                                      extensions: [], serverName: nil, alpn: [], signatureAlgorithms: [],
                                      supportedVersions: [], supportedGroups: [], keyShares: [], handshake: h,
                                      recordBytes: 0, sessionIDOffset: sidOffset)
        guard r.remaining > 0 else { return hello }       // no extensions (not TLS 1.3, never ours)
        let extLen = Int(try r.u16())
        guard extLen == r.remaining else { throw ParseError.trailingBytes }
        var seen = Set<UInt16>()
        while r.remaining > 0 {
            let t = try r.u16()
            let body = try r.vec16()
            guard seen.insert(t).inserted else { throw ParseError.duplicateExtension }
            guard seen.count <= maxExtensions else { throw ParseError.tooManyExtensions }
            hello.extensions.append((t, body))
            switch t {
            case 0x0000:
                var e = Reader(body)
                let list = try e.vec16()
                guard e.remaining == 0 else { throw ParseError.badExtension(t) }
                var l = Reader(list)
                while l.remaining > 0 {
                    let kind = try l.u8(); let name = try l.vec16()
                    if kind == 0, hello.serverName == nil {
                        guard !name.isEmpty, name.allSatisfy({ $0 > 0x20 && $0 < 0x7f }) else { throw ParseError.badExtension(t) }
                        hello.serverName = String(decoding: name, as: UTF8.self)
                    }
                }
            case 0x0010:
                var e = Reader(body)
                let list = try e.vec16()
                guard e.remaining == 0 else { throw ParseError.badExtension(t) }
                var l = Reader(list)
                while l.remaining > 0 {
                    let p = try l.vec8()
                    guard !p.isEmpty else { throw ParseError.badExtension(t) }
                    hello.alpn.append(String(decoding: p, as: UTF8.self))
                }
            case 0x000d: hello.signatureAlgorithms = try u16List(body, t)
            case 0x000a: hello.supportedGroups = try u16List(body, t)
            case 0x002b: hello.supportedVersions = try u16List(body, t, lengthBytes: 1)
            case 0x0033:
                var e = Reader(body)
                let list = try e.vec16()
                guard e.remaining == 0 else { throw ParseError.badExtension(t) }
                var l = Reader(list)
                while l.remaining > 0 {
                    let g = try l.u16(); let d = try l.vec16()
                    hello.keyShares.append((g, d))
                }
            default: break
            }
        }
        return hello
    }
}
