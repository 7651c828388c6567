import MontanaCrypto
@testable import MontanaTransport
import NIOCore
import NIOEmbedded
import XCTest

/// The carrier layer's parsers (PROTOCOL.md 2): PT 1.0 stdout lines from a program we do not
/// trust, endpoint params from other members' records, the SOCKS5 credentials of PT 1.0 §3.5,
/// and the Extended ORPort handshake (SafeCookie, USERADDR) on a node's T3 listener.
final class CarrierTests: XCTestCase {
    // MARK: PT stdout lines

    func testParsesObfs4ServerAndClientHandshakes() throws {
        XCTAssertEqual(try PTMessage.parse("VERSION 1"), .version("1"))
        XCTAssertEqual(try PTMessage.parse("SMETHOD obfs4 127.0.0.1:7444 ARGS:cert=AbC+/9x,iat-mode=0"),
                       .smethod(transport: "obfs4", host: "127.0.0.1", port: 7444, args: ["cert": "AbC+/9x", "iat-mode": "0"]))
        XCTAssertEqual(try PTMessage.parse("SMETHOD obfs4 [::1]:7444"), .smethod(transport: "obfs4", host: "::1", port: 7444, args: [:]))
        XCTAssertEqual(try PTMessage.parse("SMETHODS DONE"), .smethodsDone)
        XCTAssertEqual(try PTMessage.parse("CMETHOD obfs4 socks5 127.0.0.1:40123"),
                       .cmethod(transport: "obfs4", proxy: "socks5", host: "127.0.0.1", port: 40123))
        XCTAssertEqual(try PTMessage.parse("CMETHODS DONE"), .cmethodsDone)
        XCTAssertEqual(try PTMessage.parse("ENV-ERROR no TOR_PT_STATE_LOCATION"), .envError("no TOR_PT_STATE_LOCATION"))
        XCTAssertEqual(try PTMessage.parse("SMETHOD-ERROR obfs4 address in use"), .smethodError(transport: "obfs4", message: "address in use"))
        XCTAssertEqual(try PTMessage.parse("VERSION-ERROR no-version"), .versionError("no-version"))
        XCTAssertEqual(try PTMessage.parse("LOG SEVERITY=notice MESSAGE=\"hi\""), .other("LOG SEVERITY=notice MESSAGE=\"hi\""))
    }

    func testArgsEscaping() throws {
        XCTAssertEqual(try PTMessage.parseArgs("a=b\\,c,d=e\\=f,g\\\\=h"), ["a": "b,c", "d": "e=f", "g\\": "h"])
        XCTAssertThrowsError(try PTMessage.parseArgs("a=b\\"))
        XCTAssertThrowsError(try PTMessage.parseArgs("=b"))
        XCTAssertThrowsError(try PTMessage.parseArgs("novalue"))
    }

    func testMaliciousLinesAreRefused() {
        for line in ["SMETHOD obfs4", "SMETHOD obfs4 127.0.0.1", "SMETHOD obfs4 127.0.0.1:0", "SMETHOD obfs4 127.0.0.1:70000",
                     "SMETHOD obfs4 :80", "SMETHOD obfs4 [::1:80", "CMETHOD obfs4 socks5", "SMETHODS NOTDONE", "VERSION",
                     "CMETHOD obfs4 socks5 host:-1"] {
            XCTAssertThrowsError(try PTMessage.parse(line), line)
        }
        let many = (0...PTMessage.maxArgs).map { "k\($0)=v" }.joined(separator: ",")
        XCTAssertThrowsError(try PTMessage.parse("SMETHOD obfs4 127.0.0.1:1 ARGS:\(many)"), "more than 32 ARGS pairs")
    }

    func testLineReaderBoundsLines() {
        var reader = PTLineReader()
        XCTAssertEqual(reader.feed(Array("VERSION 1\r\nSMETH".utf8)), [.line("VERSION 1")])
        XCTAssertEqual(reader.feed(Array("OD obfs4 x\n".utf8)), [.line("SMETHOD obfs4 x")])
        // A line far past the bound: cut at 4096 bytes once, the rest up to the newline dropped.
        let long = [UInt8](repeating: 0x41, count: 3 * PTLineReader.maxLine)
        let out = reader.feed(long + Array("\nDONE\n".utf8))
        XCTAssertEqual(out.count, 2)
        guard case .tooLong(let cut) = out[0] else { return XCTFail("expected tooLong") }
        XCTAssertEqual(cut.utf8.count, PTLineReader.maxLine)
        XCTAssertEqual(out[1], .line("DONE"))
    }

    // MARK: endpoint params

    func testEndpointParams() throws {
        XCTAssertEqual(try CarrierEndpoint.parseParams("cert=abc+/&iat-mode=0"), ["cert": "abc+/", "iat-mode": "0"])
        XCTAssertEqual(try CarrierEndpoint.parseParams(""), [:])
        XCTAssertEqual(CarrierEndpoint.encodeParams(["iat-mode": "1", "cert": "x"]), "cert=x&iat-mode=1")
        XCTAssertThrowsError(try CarrierEndpoint.parseParams("cert"))
        XCTAssertThrowsError(try CarrierEndpoint.parseParams("a=1&a=2"))
        XCTAssertThrowsError(try CarrierEndpoint.parseParams("bad key=1"))
        XCTAssertThrowsError(try CarrierEndpoint.parseParams("k=\u{1}"))
        XCTAssertThrowsError(try CarrierEndpoint.parseParams(String(repeating: "a", count: CarrierEndpoint.maxParamsBytes + 1)))
        let seventeen = (0...CarrierEndpoint.maxParams).map { "k\($0)=v" }.joined(separator: "&")
        XCTAssertEqual(Array(try CarrierEndpoint.parseParams((0..<CarrierEndpoint.maxParams).map { "k\($0)=v" }.joined(separator: "&")).keys).count, 16)
        XCTAssertThrowsError(try CarrierEndpoint.parseParams(seventeen)) { XCTAssertEqual($0 as? CarrierEndpoint.ParamsError, .tooMany(17)) }
        XCTAssertEqual(CarrierProfile(name: "T3"), .t3)
        XCTAssertNil(CarrierProfile(name: "t9"))
    }

    func testObfs4ArgumentsAndSOCKSCredentials() throws {
        let cert = String(repeating: "A", count: 70)
        let e = CarrierEndpoint(profile: .t3, host: "192.0.2.1", port: 7444, params: ["cert": cert, "iat-mode": "1"])
        let args = try Obfs4Connector.arguments(e)
        let short = SOCKS5CarrierHandler.credentials(args)
        XCTAssertEqual(String(decoding: short.username, as: UTF8.self), "cert=\(cert);iat-mode=1")
        XCTAssertEqual(short.password, [0], "a single NUL password when it fits (PT 1.0 3.5)")
        XCTAssertThrowsError(try Obfs4Connector.arguments(CarrierEndpoint(profile: .t3, host: "h", port: 1)))
        XCTAssertThrowsError(try Obfs4Connector.arguments(CarrierEndpoint(profile: .t3, host: "h", port: 1, params: ["cert": "x", "iat-mode": "7"])))
        // Longer than 255 bytes: split over username and password; escaping of ; = \.
        let long = SOCKS5CarrierHandler.credentials(["cert": String(repeating: "B", count: 300), "x": "a;b=c\\"])
        XCTAssertEqual(long.username.count, 255)
        XCTAssertEqual(String(decoding: long.username + long.password, as: UTF8.self), "cert=\(String(repeating: "B", count: 300));x=a\\;b\\=c\\\\")
    }

    // MARK: Extended ORPort

    func testExtendedORPortSafeCookieAndUserAddr() throws {
        let cookie = ExtORPortAuth.randomBytes(32)
        let handed = NIOLockedValueBoxShim<SocketAddress?>(nil)
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(ExtendedORPortHandler(cookie: cookie) { _, remote in handed.value = remote })
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        XCTAssertEqual(try readAll(channel), [0x01, 0x00], "offers SafeCookie only")
        let clientNonce = ExtORPortAuth.randomBytes(32)
        try channel.writeInbound(buffer([0x01] + clientNonce))
        let answer = try readAll(channel)
        XCTAssertEqual(answer.count, 64)
        let serverNonce = Array(answer[32...])
        XCTAssertEqual(Array(answer[..<32]), ExtORPortAuth.serverHash(cookie: cookie, clientNonce: clientNonce, serverNonce: serverNonce))
        try channel.writeInbound(buffer(ExtORPortAuth.clientHash(cookie: cookie, clientNonce: clientNonce, serverNonce: serverNonce)))
        XCTAssertEqual(try readAll(channel), [0x01])
        let addr = Array("198.51.100.7:40000".utf8)
        var commands: [UInt8] = [0x00, 0x01, 0x00, UInt8(addr.count)] + addr
        commands += [0x00, 0x02, 0x00, 0x05] + Array("obfs4".utf8)
        commands += [0x00, 0x00, 0x00, 0x00] + Array("preface".utf8)
        try channel.writeInbound(buffer(commands))
        XCTAssertEqual(try readAll(channel), [0x10, 0x00, 0x00, 0x00], "OKAY")
        XCTAssertEqual(handed.value, try SocketAddress(ipAddress: "198.51.100.7", port: 40000))
        // The bytes behind DONE go on to the next handler (the preface handler in a node).
        let rest = try channel.readInbound(as: ByteBuffer.self)
        XCTAssertEqual(rest.map { String(buffer: $0) }, "preface")
        _ = try? channel.finish()
    }

    func testExtendedORPortRefusesWrongCookieAndOversizedCommands() throws {
        let cookie = ExtORPortAuth.randomBytes(32)
        // A wrong client hash: answered 0 and closed.
        let bad = EmbeddedChannel()
        try bad.pipeline.syncOperations.addHandler(ExtendedORPortHandler(cookie: cookie) { _, _ in XCTFail("must not hand over") })
        try bad.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        _ = try readAll(bad)
        try bad.writeInbound(buffer([0x01] + ExtORPortAuth.randomBytes(32)))
        _ = try readAll(bad)
        try bad.writeInbound(buffer(ExtORPortAuth.randomBytes(32)))
        XCTAssertEqual(try readAll(bad), [0x00])
        XCTAssertFalse(bad.isActive)
        // A command body over 1024 bytes after a good authentication: closed.
        let big = EmbeddedChannel()
        try big.pipeline.syncOperations.addHandler(ExtendedORPortHandler(cookie: cookie) { _, _ in XCTFail("must not hand over") })
        try big.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        _ = try readAll(big)
        let nonce = ExtORPortAuth.randomBytes(32)
        try big.writeInbound(buffer([0x01] + nonce))
        let answer = try readAll(big)
        try big.writeInbound(buffer(ExtORPortAuth.clientHash(cookie: cookie, clientNonce: nonce, serverNonce: Array(answer[32...]))))
        XCTAssertEqual(try readAll(big), [0x01])
        try big.writeInbound(buffer([0x00, 0x01, 0x04, 0x01]))
        XCTAssertFalse(big.isActive)
        // More than 16 commands: closed.
        let chatty = EmbeddedChannel()
        try chatty.pipeline.syncOperations.addHandler(ExtendedORPortHandler(cookie: cookie) { _, _ in XCTFail("must not hand over") })
        try chatty.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        _ = try readAll(chatty)
        try chatty.writeInbound(buffer([0x01] + nonce))
        let a2 = try readAll(chatty)
        try chatty.writeInbound(buffer(ExtORPortAuth.clientHash(cookie: cookie, clientNonce: nonce, serverNonce: Array(a2[32...]))))
        _ = try readAll(chatty)
        try chatty.writeInbound(buffer(Array([[UInt8]](repeating: [0x00, 0x02, 0x00, 0x00], count: 17).joined())))
        XCTAssertFalse(chatty.isActive)
    }

    private func buffer(_ bytes: [UInt8]) -> ByteBuffer { ByteBufferAllocator().buffer(bytes: bytes) }

    private func readAll(_ channel: EmbeddedChannel) throws -> [UInt8] {
        var out: [UInt8] = []
        while let b = try channel.readOutbound(as: ByteBuffer.self) { out += Array(b.readableBytesView) }
        return out
    }
}

/// A box the handler's @Sendable callback can set from the embedded channel's thread.
final class NIOLockedValueBoxShim<T>: @unchecked Sendable {
    var value: T
    init(_ value: T) { self.value = value }
}
