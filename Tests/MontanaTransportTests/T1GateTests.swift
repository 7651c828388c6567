import Foundation
import MontanaCrypto
@testable import MontanaTransport
import XCTest

/// The T1 front's token checks (PROTOCOL.md 2.2): only a fresh, unreplayed token for this front's
/// key, PSK, SNI and a configured short id makes a token holder; everything else gets the cover.
final class T1GateTests: XCTestCase {
    let key = T1FrontKey()
    let psk = [UInt8](repeating: 9, count: 32)
    let now: UInt64 = 1_800_000_000

    func hello(key: T1FrontKey? = nil, psk: [UInt8]? = nil, sni: String = "www.example.com", shortID: [UInt8] = [0x0a, 0x0b],
               at t: UInt64? = nil) throws -> ParsedClientHello {
        let c = try T1Hello.make(serverName: sni, frontPublic: (key ?? self.key).publicKey, psk: psk ?? self.psk,
                                 shortID: shortID, unixSeconds: UInt32(t ?? now))
        guard case .hello(let h) = try ClientHelloParser.parse(c.record) else { throw ClientHelloParser.ParseError.truncated }
        return h
    }

    func gate(capacity: Int = 1024) throws -> T1Gate {
        try T1Gate(key: key, psk: psk, shortIDs: [[0x0a, 0x0b], [1, 2, 3, 4, 5, 6, 7, 8]], serverNames: ["www.example.com"],
                   replayCapacity: capacity)
    }

    func testTokenHolderAdmittedEverythingElseGetsTheCover() throws {
        var g = try gate()
        let good = try hello()
        guard case .token(let opened) = g.check(good, now: now) else { return XCTFail("token holder refused") }
        XCTAssertEqual(opened.shortID, [0x0a, 0x0b, 0, 0, 0, 0, 0, 0])
        XCTAssertEqual(g.check(good, now: now + 1), .cover(.replay), "replayed ClientHello")
        XCTAssertEqual(g.check(try hello(key: T1FrontKey()), now: now), .cover(.noToken), "wrong key")
        XCTAssertEqual(g.check(try hello(psk: []), now: now), .cover(.noToken), "wrong PSK")
        XCTAssertEqual(g.check(try hello(shortID: [0x0a, 0x0c]), now: now), .cover(.unknownShortID))
        XCTAssertEqual(g.check(try hello(at: now - 91), now: now), .cover(.stale))
        XCTAssertEqual(g.check(try hello(at: now + 91), now: now), .cover(.stale))
        if case .cover = g.check(try hello(at: now - 90), now: now) { XCTFail("90 s old is within the window") }
        XCTAssertEqual(g.check(try hello(sni: "other.example.org"), now: now), .cover(.serverName))
        if case .cover = g.check(try hello(sni: "WWW.Example.com"), now: now) { XCTFail("SNI compare is case-insensitive") }
        if case .cover = g.check(try hello(shortID: [1, 2, 3, 4, 5, 6, 7, 8]), now: now) { XCTFail("8-byte short id") }
    }

    func testReplayMemoryIsBoundedAndSharedPerOwner() throws {
        var g = try gate(capacity: 4)
        let a = ReplayOwner(high: 1, low: 0, tag: 4), b = ReplayOwner(high: 2, low: 0, tag: 4)
        for _ in 0..<2 { if case .cover(let r) = g.check(try hello(), now: now, owner: a, ownerLimit: 2) { XCTFail("\(r)") } }
        XCTAssertEqual(g.check(try hello(), now: now, owner: a, ownerLimit: 2), .cover(.replayFull), "owner over its share")
        for _ in 0..<2 { if case .cover(let r) = g.check(try hello(), now: now, owner: b, ownerLimit: 2) { XCTFail("\(r)") } }
        XCTAssertEqual(g.replayCount, 4)
        XCTAssertEqual(g.check(try hello(), now: now, owner: ReplayOwner(high: 3, low: 0, tag: 4), ownerLimit: 2), .cover(.replayFull),
                       "memory full: fail closed (cover), never forget a live random")
        // After the 240 s window the memory empties and admits again.
        if case .cover(let r) = g.check(try hello(at: now + 241), now: now + 241, owner: a, ownerLimit: 2) { XCTFail("\(r)") }
        XCTAssertEqual(g.replayCount, 1)
    }
}
