import Foundation
import MontanaCrypto
import MontanaWire
import XCTest
@testable import MontanaDirectory

final class SubscriptionDocumentTests: XCTestCase {
    private let now: UInt64 = 1_800_000_000

    private func document(account: SubscriptionAccount? = nil, links count: Int = 2)
        throws -> (SubscriptionDocument, AllianceDocument, AllianceSecret) {
        let (alliance, secret) = try SubscriptionFixture.alliance()
        let links = try (0..<count).map { i in try SubscriptionFixture.link(alliance, port: UInt16(7000 + i), label: "front \(i)") }
        let doc = try SubscriptionDocument.create(alliance: alliance, links: links, title: "Friends of Montana", account: account,
                                                  update: SubscriptionUpdate(url: "http://sub.example.net:8080/sub?k=1", intervalHours: 6),
                                                  now: now)
        return (doc, alliance, secret)
    }

    /// `doc`'s JSON with `edit` applied, decoded again; returns the error text.
    private func problem(_ doc: SubscriptionDocument, _ edit: (inout [String: Any]) throws -> Void) throws -> String? {
        var object = try SubscriptionFixture.object(doc.encoded())
        try edit(&object)
        do {
            _ = try SubscriptionDocument.decode(try SubscriptionFixture.bytes(object), source: "sub.json")
            return nil
        } catch {
            return "\(error)"
        }
    }

    func test_roundTripThroughFile() throws {
        // A document with a pass of its own alliance.
        let (alliance, allianceSecret) = try SubscriptionFixture.alliance()
        let own = try PassFile.issue(secret: allianceSecret, accountID: [UInt8](repeating: 3, count: 32), days: 10, quotaBytes: 1 << 30, now: now)
        let links = [try SubscriptionFixture.link(alliance, label: "a"), try SubscriptionFixture.link(alliance, host: "2001:db8::5", port: 443, label: nil)]
        let doc = try SubscriptionDocument.create(alliance: alliance, links: links, account: SubscriptionAccount(pass: own), now: now)
        XCTAssertEqual(doc.title, "Test Alliance", "the title defaults to the alliance name")
        XCTAssertEqual(doc.issuedAt, now)
        XCTAssertEqual(doc.update, SubscriptionUpdate(url: nil, intervalHours: 12))
        XCTAssertEqual(doc.links, links)
        XCTAssertEqual(doc.account?.pass, own)
        let path = try temporaryDirectory() + "/sub.json"
        try doc.write(to: path)
        XCTAssertEqual(try SubscriptionFixture.mode(path), 0o644, "no bearer seed: public")
        XCTAssertEqual(try SubscriptionDocument.load(path: path), doc)

        let object = try SubscriptionFixture.object(doc.encoded())
        XCTAssertEqual(object["format"] as? String, "montana-subscription-v1")
        let front = try XCTUnwrap((object["bootstrap"] as? [[String: Any]])?.first)
        XCTAssertEqual(front["link"] as? String, links[0].text)
        XCTAssertEqual(front["node_id"] as? String, links[0].nodeID.hex)
        XCTAssertEqual(front["kem_pk"] as? String, Hex.encode(links[0].kemPublicKey))
        XCTAssertEqual(front["key_mode"] as? String, "universal")
        XCTAssertTrue(front["own_t1"] is NSNull)
        XCTAssertEqual((front["endpoints"] as? [[String: Any]])?.first?["port"] as? Int, 7443)
        let account = try XCTUnwrap(object["account"] as? [String: Any])
        XCTAssertTrue(account["bearer_seed"] is NSNull)
        XCTAssertEqual((account["pass"] as? [String: Any])?["format"] as? String, "montana-pass-v1")
        XCTAssertTrue((object["update"] as? [String: Any])?["url"] is NSNull)
    }

    func test_linksOfOneNodeBecomeOneFrontWithItsEndpoints() throws {
        let (alliance, _) = try SubscriptionFixture.alliance()
        let first = try SubscriptionFixture.link(alliance, port: 7443)
        var second = first
        second.host = "::1"
        second.port = 8443
        second.profile = 1
        let doc = try SubscriptionDocument.create(alliance: alliance, links: [first, second, first], now: now)
        XCTAssertEqual(doc.bootstrap.count, 1)
        XCTAssertEqual(doc.bootstrap[0].link, first)
        XCTAssertEqual(doc.bootstrap[0].endpoints, [Endpoint(profile: 0, host: "127.0.0.1", port: 7443), Endpoint(profile: 1, host: "::1", port: 8443)])
    }

    func test_createdDocumentHoldsNoAllianceSecret() throws {
        let bearer = SecureRandom.bytes(32)
        let (alliance, secret) = try SubscriptionFixture.alliance()
        let pass = try PassFile.issue(secret: secret, accountID: try IdentityKey(seed: bearer).accountID, days: 10, quotaBytes: 0, now: now)
        let doc = try SubscriptionDocument.create(alliance: alliance, links: [try SubscriptionFixture.link(alliance)],
                                                  account: SubscriptionAccount(pass: pass, bearerSeed: bearer), now: now)
        let text = String(decoding: doc.encoded(), as: UTF8.self).lowercased()
        for secretHex in [Hex.encode(secret.universalT1.privateKey), Hex.encode(secret.membershipKey.seed), Hex.encode(secret.passIssuerKey.seed)] {
            XCTAssertFalse(text.contains(secretHex), "the document leaks alliance secret material")
            XCTAssertFalse(text.contains(secretHex.prefix(16)), "not even a prefix of it")
        }
        XCTAssertTrue(text.contains(Hex.encode(bearer)), "the bearer seed is in it, by design")
        XCTAssertTrue(doc.holdsSecret)
        let path = try temporaryDirectory() + "/bearer.json"
        try doc.write(to: path)
        XCTAssertEqual(try SubscriptionFixture.mode(path), 0o600, "a document with a bearer seed is secret")
        XCTAssertEqual(try SubscriptionDocument.load(path: path).account?.bearerAccount()?.accountID, try IdentityKey(seed: bearer).accountID)
    }

    func test_errorsNameTheSourceAndTheKey() throws {
        let (doc, _, _) = try document()
        let (other, otherSecret) = try SubscriptionFixture.alliance()
        let foreignLink = try SubscriptionFixture.link(other)
        let foreignPass = try PassFile.issue(secret: otherSecret, accountID: [UInt8](repeating: 9, count: 32), days: 1, quotaBytes: 0, now: now)
        let foreignPassObject = try SubscriptionFixture.object(foreignPass.encoded())

        func bootstrap(_ o: inout [String: Any], _ edit: (inout [String: Any]) -> Void) {
            var list = o["bootstrap"] as? [[String: Any]] ?? []
            edit(&list[0])
            o["bootstrap"] = list
        }
        let cases: [(String, (inout [String: Any]) throws -> Void)] = [
            ("sub.json: format: must be \"montana-subscription-v1\"", { $0["format"] = "v0" }),
            ("sub.json: title: is 0 bytes, must be 1...128", { $0["title"] = "" }),
            ("sub.json: title: is 129 bytes", { $0["title"] = String(repeating: "t", count: 129) }),
            ("sub.json: title: contains a control character", { $0["title"] = "a\u{1b}[2J" }),
            ("sub.json: issued_at: missing", { $0.removeValue(forKey: "issued_at") }),
            ("sub.json: alliance.membership_pk: must be 3904 hex digits", { o in
                var a = o["alliance"] as? [String: Any] ?? [:]; a["membership_pk"] = "00"; o["alliance"] = a }),
            ("sub.json: alliance.name: missing", { o in
                var a = o["alliance"] as? [String: Any] ?? [:]; a.removeValue(forKey: "name"); o["alliance"] = a }),
            ("sub.json: bootstrap: lists no front", { $0["bootstrap"] = [Any]() }),
            ("sub.json: bootstrap[0].link: names alliance", { o in
                bootstrap(&o) { f in f["link"] = foreignLink.text; f["node_id"] = foreignLink.nodeID.hex
                    f["kem_pk"] = Hex.encode(foreignLink.kemPublicKey); f["endpoints"] = [["profile": 0, "host": "127.0.0.1", "port": 7443]]; f["label"] = "front" } }),
            ("sub.json: bootstrap[0].link: member link: kem: not unpadded base64url", { o in
                bootstrap(&o) { f in f["link"] = (f["link"] as? String ?? "").replacingOccurrences(of: "kem=", with: "kem=+") } }),
            ("sub.json: bootstrap[0].node_id: must be 64 hex digits and equal the link's node", { o in
                bootstrap(&o) { f in f["node_id"] = String(repeating: "0", count: 64) } }),
            ("sub.json: bootstrap[0].kem_pk: differs from the link's kem", { o in
                bootstrap(&o) { f in f["kem_pk"] = String(repeating: "0", count: 2432) } }),
            ("sub.json: bootstrap[0].label: differs from the link's label", { o in bootstrap(&o) { f in f["label"] = "other" } }),
            ("sub.json: bootstrap[0].key_mode: differs from the link's mode", { o in bootstrap(&o) { f in f["key_mode"] = "own" } }),
            ("sub.json: bootstrap[0].endpoints: must include the link's endpoint", { o in
                bootstrap(&o) { f in f["endpoints"] = [["profile": 0, "host": "10.9.9.9", "port": 1]] } }),
            ("sub.json: bootstrap[0].endpoints[0].port: must be 1...65535", { o in
                bootstrap(&o) { f in f["endpoints"] = [["profile": 0, "host": "10.9.9.9", "port": 0]] } }),
            ("sub.json: bootstrap[0].endpoints[0].profile: must be 0...4", { o in
                bootstrap(&o) { f in f["endpoints"] = [["profile": 5, "host": "10.9.9.9", "port": 1]] } }),
            ("sub.json: bootstrap[0].endpoints[0].host: \"a b\" is not a host name or address", { o in
                bootstrap(&o) { f in f["endpoints"] = [["profile": 0, "host": "a b", "port": 1]] } }),
            ("sub.json: bootstrap[0].endpoints: more than 16 endpoints", { o in
                bootstrap(&o) { f in f["endpoints"] = (1...17).map { ["profile": 0, "host": "10.0.0.1", "port": $0] } } }),
            ("sub.json: bootstrap[1].link: node", { o in
                var list = o["bootstrap"] as? [[String: Any]] ?? []; list[1] = list[0]; o["bootstrap"] = list }),
            ("sub.json: account.pass.signed: not signed by one of the alliance's pass_issuers", { $0["account"] = ["pass": foreignPassObject] }),
            ("sub.json: account.pass: an account needs a pass or a bearer_seed", { $0["account"] = ["pass": NSNull(), "bearer_seed": NSNull()] }),
            ("sub.json: account.bearer_seed: must be 64 hex digits (32 bytes)", { $0["account"] = ["pass": NSNull(), "bearer_seed": "abcd"] }),
            ("sub.json: update.interval_hours: must be 1...720, found 0", { $0["update"] = ["url": NSNull(), "interval_hours": 0] }),
            ("sub.json: update.interval_hours: must be 1...720, found 721", { $0["update"] = ["url": NSNull(), "interval_hours": 721] }),
            ("sub.json: update.url: must start with http:// or https://", { $0["update"] = ["url": "ftp://x/", "interval_hours": 1] }),
            ("sub.json: update.url: has no host", { $0["update"] = ["url": "http:///sub", "interval_hours": 1] }),
            ("sub.json: update: missing", { $0.removeValue(forKey: "update") }),
        ]
        for (expected, edit) in cases {
            let message = try problem(doc, edit)
            XCTAssertTrue(message?.hasPrefix(expected) ?? false, "\(message ?? "accepted") — expected \(expected)")
        }
        XCTAssertNil(try problem(doc) { $0["account"] = NSNull() }, "no account is fine")
    }

    func test_bearerSeedAndPassMustBeTheSameAccount() throws {
        let (alliance, secret) = try SubscriptionFixture.alliance()
        let pass = try PassFile.issue(secret: secret, accountID: [UInt8](repeating: 1, count: 32), days: 1, quotaBytes: 0, now: now)
        XCTAssertThrowsError(try SubscriptionDocument.create(alliance: alliance, links: [try SubscriptionFixture.link(alliance)],
                                                             account: SubscriptionAccount(pass: pass, bearerSeed: SecureRandom.bytes(32)), now: now)) {
            XCTAssertTrue("\($0)".contains("account.pass: is for account 010101010101…, not the bearer account"), "\($0)")
        }
    }

    func test_boundsOnSizeAndFronts() throws {
        let (alliance, _) = try SubscriptionFixture.alliance()
        let kem = try KEMKey.generate().publicKey
        let links = try (0...SubscriptionDocument.maxBootstrap).map { _ in try SubscriptionFixture.link(alliance, kem: kem) }
        XCTAssertThrowsError(try SubscriptionDocument.create(alliance: alliance, links: links, now: now)) {
            XCTAssertEqual("\($0)", "(new subscription): bootstrap: has 65 fronts, limit 64")
        }
        XCTAssertNoThrow(try SubscriptionDocument.create(alliance: alliance, links: Array(links.prefix(64)), now: now))
        XCTAssertThrowsError(try SubscriptionDocument.decode([UInt8](repeating: 0x20, count: SubscriptionDocument.maxBytes + 1), source: "big.json")) {
            XCTAssertEqual($0 as? SubscriptionFileError, .invalid(file: "big.json", key: "(file)", problem: "is 1048577 bytes, limit 1048576"))
        }
        XCTAssertThrowsError(try SubscriptionDocument.create(alliance: alliance, links: [], now: now)) {
            XCTAssertTrue("\($0)".contains("bootstrap: lists no front"), "\($0)")
        }
    }

    func test_updatePath() {
        XCTAssertEqual(SubscriptionUpdate(url: "http://h:1/sub?x=1#f").path, "/sub")
        XCTAssertEqual(SubscriptionUpdate(url: "http://h").path, "/")
        XCTAssertEqual(SubscriptionUpdate(url: "https://h/a/b").path, "/a/b")
        XCTAssertNil(SubscriptionUpdate(url: nil).path)
    }
}
