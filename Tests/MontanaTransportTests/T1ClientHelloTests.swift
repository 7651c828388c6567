import Foundation
import MontanaCrypto
@testable import MontanaTransport
import XCTest

/// T1 ClientHello (PROTOCOL.md 2.2): our hello's JA4 equals a real Chrome ClientHello's (a pinned
/// curl_cffi capture in Tests/Fixtures/t1, and a fresh capture when curl_cffi is installed), the
/// shape beyond JA4 matches, the session-id token binds the hello, and the parser's bounds hold.
final class T1ClientHelloTests: XCTestCase {
    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    struct Capture: Decodable { let target: String; let curl_cffi: String; let date: String; let sni: String; let record_hex: String; let ja4: String? }

    static func bytes(hex: String) -> [UInt8] {
        var out: [UInt8] = []; var it = hex.utf8.makeIterator()
        func nib(_ c: UInt8) -> UInt8 { c <= 0x39 ? c - 0x30 : (c | 0x20) - 0x57 }
        while let a = it.next(), let b = it.next() { out.append(nib(a) << 4 | nib(b)) }
        return out
    }

    func parse(_ record: [UInt8], file: StaticString = #filePath, line: UInt = #line) throws -> ParsedClientHello {
        guard case .hello(let h) = try ClientHelloParser.parse(record) else {
            XCTFail("incomplete hello", file: file, line: line); throw ClientHelloParser.ParseError.truncated
        }
        XCTAssertEqual(h.recordBytes, record.count, file: file, line: line)
        return h
    }

    func reference() throws -> (Capture, ParsedClientHello) {
        let url = Self.repo.appendingPathComponent("Tests/Fixtures/t1/chrome145-clienthello.json")
        let cap = try JSONDecoder().decode(Capture.self, from: Data(contentsOf: url))
        return (cap, try parse(Self.bytes(hex: cap.record_hex)))
    }

    func ours(_ sni: String) throws -> ParsedClientHello {
        let front = T1FrontKey()
        let c = try T1Hello.make(serverName: sni, frontPublic: front.publicKey, psk: [], shortID: [1, 2, 3, 4],
                                 unixSeconds: UInt32(Date().timeIntervalSince1970))
        return try parse(c.record)
    }

    /// Everything about the shape we can compare between two Chrome hellos with different randoms:
    /// JA4, wire cipher order, extension set, GREASE placement, groups, key-share groups and sizes,
    /// fixed extension bodies, ECH length set, record length set.
    func assertChromeShaped(_ h: ParsedClientHello, like ref: ParsedClientHello, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(JA4.fingerprint(h), JA4.fingerprint(ref), file: file, line: line)
        XCTAssertEqual(JA4.raw(h).extensions, JA4.raw(ref).extensions, file: file, line: line)
        XCTAssertEqual(h.legacyVersion, ref.legacyVersion, file: file, line: line)
        XCTAssertEqual(h.sessionID.count, 32, file: file, line: line)
        XCTAssertTrue(JA4.isGREASE(h.cipherSuites[0]), file: file, line: line)
        XCTAssertEqual(Array(h.cipherSuites.dropFirst()), Array(ref.cipherSuites.dropFirst()), file: file, line: line)
        XCTAssertEqual(Set(h.extensionTypes.filter { !JA4.isGREASE($0) }), Set(ref.extensionTypes.filter { !JA4.isGREASE($0) }), file: file, line: line)
        XCTAssertTrue(JA4.isGREASE(h.extensions.first!.type) && h.extensions.first!.body.isEmpty, file: file, line: line)
        XCTAssertTrue(JA4.isGREASE(h.extensions.last!.type) && h.extensions.last!.body == [0], file: file, line: line)
        XCTAssertNotEqual(h.extensions.first!.type, h.extensions.last!.type, file: file, line: line)
        XCTAssertEqual(h.extensions.count, ref.extensions.count, file: file, line: line)
        XCTAssertEqual(Array(h.supportedGroups.dropFirst()), Array(ref.supportedGroups.dropFirst()), file: file, line: line)
        XCTAssertTrue(JA4.isGREASE(h.supportedGroups[0]), file: file, line: line)
        XCTAssertEqual(h.keyShares.map { [$0.group == h.supportedGroups[0] ? 0 : Int($0.group), $0.data.count] },
                       ref.keyShares.map { [$0.group == ref.supportedGroups[0] ? 0 : Int($0.group), $0.data.count] }, file: file, line: line)
        XCTAssertEqual(Array(h.supportedVersions.dropFirst()), Array(ref.supportedVersions.dropFirst()), file: file, line: line)
        XCTAssertEqual(h.alpn, ref.alpn, file: file, line: line)
        XCTAssertEqual(h.signatureAlgorithms, ref.signatureAlgorithms, file: file, line: line)
        for t: UInt16 in [0x0005, 0x000b, 0x0012, 0x0017, 0x001b, 0x0023, 0x002d, 0x44cd, 0xff01, 0x0000] {
            XCTAssertEqual(h.extensions.first { $0.type == t }?.body, ref.extensions.first { $0.type == t }?.body,
                           String(format: "extension %04x", t), file: file, line: line)
        }
        let ech = h.extensions.first { $0.type == 0xfe0d }!.body
        XCTAssertTrue([186, 218, 250, 282].contains(ech.count), "ECH GREASE length \(ech.count)", file: file, line: line)
        XCTAssertEqual(Array(ech.prefix(5)), Array(ref.extensions.first { $0.type == 0xfe0d }!.body.prefix(5)), file: file, line: line)
        // The record length moves only with the ECH payload (32-byte steps), as Chrome's does.
        let refECH = ref.extensions.first { $0.type == 0xfe0d }!.body.count
        XCTAssertEqual(h.recordBytes - ech.count, ref.recordBytes - refECH, file: file, line: line)
        XCTAssertFalse(h.extensionTypes.contains(0x0015), "no padding above 512 bytes", file: file, line: line)
    }

    func testReferenceCaptureIsChromeJA4() throws {
        let (cap, ref) = try reference()
        XCTAssertEqual(JA4.fingerprint(ref), cap.ja4)
        XCTAssertEqual(JA4.fingerprint(ref), ChromeClientHello.expectedJA4)
        print("T1 JA4 reference \(cap.target) (curl_cffi \(cap.curl_cffi), \(cap.date)): \(JA4.fingerprint(ref))")
    }

    func testOurHelloMatchesPinnedChromeCapture() throws {
        let (cap, ref) = try reference()
        for _ in 0..<16 {
            let h = try ours(cap.sni)
            assertChromeShaped(h, like: ref)
        }
        print("T1 JA4 ours: \(JA4.fingerprint(try ours(cap.sni))) reference: \(JA4.fingerprint(ref))")
        // For cross-checks with outside tools (t1-ja4.py, tshark, openssl s_server): one record as hex.
        if let path = ProcessInfo.processInfo.environment["MONTANA_T1_DUMP_HELLO"] {
            let front = T1FrontKey()
            let c = try T1Hello.make(serverName: cap.sni, frontPublic: front.publicKey, psk: [], shortID: [1], unixSeconds: 0)
            try Data(c.record.map { String(format: "%02x", $0) }.joined().utf8).write(to: URL(fileURLWithPath: path))
        }
    }

    func testPermutationGreaseAndSharesVaryPerConnection() throws {
        var orders = Set<[UInt16]>(), greases = Set<UInt16>(), echLengths = Set<Int>()
        for _ in 0..<24 {
            let h = try ours("www.example.com")
            orders.insert(h.extensionTypes.filter { !JA4.isGREASE($0) })
            greases.insert(h.cipherSuites[0])
            echLengths.insert(h.extensions.first { $0.type == 0xfe0d }!.body.count)
            // Two distinct X25519 public values, as BoringSSL's per-group keys.
            XCTAssertNotEqual(Array(h.keyShare(0x11ec)!.suffix(32)), h.keyShare(0x001d)!)
        }
        XCTAssertGreaterThan(orders.count, 20)
        XCTAssertGreaterThan(greases.count, 4)
        XCTAssertGreaterThan(echLengths.count, 1)
    }

    /// A fresh capture with curl_cffi on this machine (skipped when curl_cffi is not installed).
    func testOurHelloMatchesFreshCurlCffiCapture() throws {
        let script = Self.repo.appendingPathComponent("scripts/t1-chrome-capture.py").path
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", script, "--target", ChromeClientHello.profileName, "--sni", "cover.example.net"]
        var env = ProcessInfo.processInfo.environment
        for k in ["http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "all_proxy"] { env[k] = nil }
        p.environment = env
        let out = Pipe(); p.standardOutput = out; p.standardError = Pipe()
        try p.run()
        let deadline = Date().addingTimeInterval(30)
        while p.isRunning && Date() < deadline { usleep(50_000) }
        if p.isRunning { kill(p.processIdentifier, SIGKILL); p.waitUntilExit(); XCTFail("capture timed out"); return }
        if p.terminationStatus == 2 { throw XCTSkip("curl_cffi not installed") }
        XCTAssertEqual(p.terminationStatus, 0)
        let cap = try JSONDecoder().decode(Capture.self, from: out.fileHandleForReading.readDataToEndOfFile())
        let fresh = try parse(Self.bytes(hex: cap.record_hex))
        let h = try ours(cap.sni)
        assertChromeShaped(h, like: fresh)
        XCTAssertEqual(JA4.fingerprint(fresh), ChromeClientHello.expectedJA4)
        print("T1 JA4 fresh \(cap.target) (curl_cffi \(cap.curl_cffi)): \(JA4.fingerprint(fresh)) ours: \(JA4.fingerprint(h))")
    }

    // MARK: token

    func testTokenOpensOnlyForTheRightKeyPSKAndUntamperedHello() throws {
        let front = T1FrontKey(), other = T1FrontKey()
        let psk = [UInt8](repeating: 7, count: 32)
        let now = UInt32(Date().timeIntervalSince1970)
        let c = try T1Hello.make(serverName: "www.example.com", frontPublic: front.publicKey, psk: psk, shortID: [0xab, 0xcd], unixSeconds: now)
        let h = try parse(c.record)
        let opened = try XCTUnwrap(T1Hello.open(h, key: front, psk: psk))
        XCTAssertEqual(opened.unixSeconds, now)
        XCTAssertEqual(opened.shortID, [0xab, 0xcd, 0, 0, 0, 0, 0, 0])
        XCTAssertEqual(opened.authKey, c.authKey)
        XCTAssertNil(T1Hello.open(h, key: other, psk: psk), "wrong key")
        XCTAssertNil(T1Hello.open(h, key: front, psk: []), "wrong PSK")
        // Any changed byte of the hello (here inside the ECH payload, and the SNI) breaks the token.
        for at in [c.record.count - 300, 200] {
            var r = c.record; r[at] ^= 1
            if case .hello(let t) = try? ClientHelloParser.parse(r) { XCTAssertNil(T1Hello.open(t, key: front, psk: psk), "tampered at \(at)") }
        }
        // A plain Chrome hello (random session id) is not ours.
        let (_, ref) = try reference()
        XCTAssertNil(T1Hello.open(ref, key: front, psk: psk))
        XCTAssertThrowsError(try T1Token.paddedShortID([UInt8](repeating: 1, count: 9)))
    }

    // MARK: parser bounds

    func testParserBoundsAndMalformedInput() throws {
        let rec = try T1Hello.make(serverName: "a.example", frontPublic: T1FrontKey().publicKey, psk: [], shortID: [], unixSeconds: 1).record
        // Every strict prefix is "need more", never an error or a crash.
        for n in stride(from: 0, to: rec.count, by: 7) { XCTAssertEqual(try ClientHelloParser.parse(Array(rec.prefix(n))), .needMore) }
        XCTAssertThrowsError(try ClientHelloParser.parse([0x17, 3, 3, 0, 5])) { XCTAssertEqual($0 as? ClientHelloParser.ParseError, .notHandshake) }
        XCTAssertThrowsError(try ClientHelloParser.parse([0x16, 3, 1, 0x40, 0x01])) { XCTAssertEqual($0 as? ClientHelloParser.ParseError, .recordTooLong) }
        XCTAssertThrowsError(try ClientHelloParser.parse([0x16, 3, 1, 0, 4, 2, 0, 0, 0])) { XCTAssertEqual($0 as? ClientHelloParser.ParseError, .notClientHello) }
        // A declared hello longer than 16 KiB is refused before buffering it.
        XCTAssertThrowsError(try ClientHelloParser.parse([0x16, 3, 1, 0, 4, 1, 0, 0x40, 0x01])) { XCTAssertEqual($0 as? ClientHelloParser.ParseError, .helloTooLong) }
        // A hello split over more than 4 records.
        var many: [UInt8] = [0x16, 3, 1, 0, 4, 1, 0, 0x10, 0]
        for _ in 0..<4 { many += [0x16, 3, 1, 0, 1, 0] }
        XCTAssertThrowsError(try ClientHelloParser.parse(many)) { XCTAssertEqual($0 as? ClientHelloParser.ParseError, .tooManyRecords) }
        // The same hello split over two records parses to the same message.
        let hs = Array(rec[5...])
        let split = [0x16, 3, 1, UInt8(100 >> 8), 100] + hs.prefix(100) + [0x16, 3, 1, UInt8((hs.count - 100) >> 8), UInt8((hs.count - 100) & 0xff)] + hs.dropFirst(100)
        guard case .hello(let h2) = try ClientHelloParser.parse(Array(split)) else { return XCTFail() }
        XCTAssertEqual(h2.handshake, hs)
        // Duplicate extension, and an inner length that overruns its container.
        let dup = try parse(rec)
        var body = Array(rec)
        let sigOff = try XCTUnwrap(Self.find(body, [0x00, 0x0d, 0x00, 0x12]))
        body.replaceSubrange(sigOff..<(sigOff + 2), with: [0x00, 0x2d])       // a second psk_key_exchange_modes
        XCTAssertThrowsError(try ClientHelloParser.parse(body)) { XCTAssertEqual($0 as? ClientHelloParser.ParseError, .duplicateExtension) }
        var bad = Array(rec)
        bad[sigOff + 5] = 0x40                                                   // sigalgs list length 0x0040 > 0x12
        XCTAssertThrowsError(try ClientHelloParser.parse(bad))
        XCTAssertEqual(dup.serverName, "a.example")
        // Random garbage never crashes the parser.
        var g = SystemRandomNumberGenerator()
        for _ in 0..<2000 {
            var r = rec
            for _ in 0..<4 { r[Int.random(in: 0..<r.count, using: &g)] = UInt8.random(in: 0...255, using: &g) }
            _ = try? ClientHelloParser.parse(r)
        }
    }

    static func find(_ hay: [UInt8], _ needle: [UInt8]) -> Int? {
        guard hay.count >= needle.count else { return nil }
        for i in 0...(hay.count - needle.count) where Array(hay[i..<(i + needle.count)]) == needle { return i }
        return nil
    }
}
