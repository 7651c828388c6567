import MontanaCrypto
import MontanaWire
import XCTest
@testable import MontanaDirectory

final class MemberLinkTests: XCTestCase {
    private static let kem = (try? KEMKey.generate().publicKey) ?? []
    private let uuid: [UInt8] = Array(0x10...0x1f)
    private let node = NodeID(identityPublicKey: [1, 2, 3])

    private func universal(host: String = "front.example.net", port: UInt16 = 7443, label: String? = "Berlin #1") -> MemberLink {
        MemberLink(alliance: uuid, host: host, port: port, nodeID: node, kemPublicKey: Self.kem, profile: 0, label: label)
    }

    private func rejects(_ text: String, file: StaticString = #filePath, line: UInt = #line) -> MemberLinkError? {
        do {
            _ = try MemberLink.parse(text)
            XCTFail("accepted: \(text.prefix(120))", file: file, line: line)
            return nil
        } catch {
            return error
        }
    }

    func test_universalLinkRoundTrips() throws {
        let link = universal()
        let text = link.text
        XCTAssertTrue(text.hasPrefix("montana://101112131415161718191a1b1c1d1e1f@front.example.net:7443?node=\(node.hex)&kem="), text)
        XCTAssertTrue(text.hasSuffix("&profile=t0&mode=universal#Berlin%20%231"), text)
        let kemText = LinkText.base64URLEncode(Self.kem)
        XCTAssertTrue(text.contains("&kem=\(kemText)&"))
        XCTAssertFalse(kemText.contains("=") || kemText.contains("+") || kemText.contains("/"), "kem is unpadded base64url")
        XCTAssertEqual(try MemberLink.parse(text), link)
        XCTAssertEqual(try MemberLink.parse("  \(text)\n"), link, "pasted links may carry blanks")
        XCTAssertEqual(link.endpoint, Endpoint(profile: 0, host: "front.example.net", port: 7443))
    }

    func test_ownKeyIPv6AndUnicodeLabelRoundTrip() throws {
        let t1 = T1Params(x25519PublicKey: Array(repeating: 0xab, count: 32), shortIDs: [[1, 2], [], [9, 8, 7, 6, 5, 4, 3, 2]],
                          serverName: "cdn.example.org", cover: "[2001:db8::7]:443")
        let link = MemberLink(alliance: uuid, host: "2001:db8::1", port: 443, nodeID: node, kemPublicKey: Self.kem, profile: 1,
                              keyMode: .own, ownT1: t1, label: "Zürich & Genève 🇨🇭")
        let text = link.text
        XCTAssertTrue(text.contains("@[2001:db8::1]:443?"), text)
        XCTAssertTrue(text.contains("&mode=own&t1pk=\(String(repeating: "ab", count: 32))&sid=0102&sid=&sid=0908070605040302&sni=cdn.example.org&cover=%5B2001%3Adb8%3A%3A7%5D%3A443"), text)
        XCTAssertEqual(try MemberLink.parse(text), link)
        XCTAssertEqual(try MemberLink.parse(universal(label: nil).text), universal(label: nil))
        XCTAssertEqual(universal(label: "").text, universal(label: nil).text, "an empty label is no label")
    }

    func test_acceptsDashedUUIDUnknownKeysAndDefaults() throws {
        let minimal = "montana://10111213-1415-1617-1819-1a1b1c1d1e1f@10.0.0.1:1?node=\(node.hex)&kem=\(LinkText.base64URLEncode(Self.kem))&future=1"
        let link = try MemberLink.parse(minimal)
        XCTAssertEqual(link.alliance, uuid)
        XCTAssertEqual(link.profile, 0)
        XCTAssertEqual(link.keyMode, .universal)
        XCTAssertNil(link.label)
        XCTAssertEqual(try MemberLink.parse(minimal.replacingOccurrences(of: "@10.0.0.1:1?", with: "@10.0.0.1:1/?")).host, "10.0.0.1")
    }

    func test_badBase64IsRefused() {
        let good = universal().text
        let kem = LinkText.base64URLEncode(Self.kem)
        let standard = Data(Self.kem).base64EncodedString()
        XCTAssertEqual(rejects(good.replacingOccurrences(of: kem, with: standard)), .invalid("kem", problem: "not unpadded base64url"),
                       "standard base64 (+ / =) is not base64url")
        XCTAssertEqual(rejects(good.replacingOccurrences(of: kem, with: kem + "==")), .invalid("kem", problem: "not unpadded base64url"))
        XCTAssertEqual(rejects(good.replacingOccurrences(of: kem, with: "!!" + kem.dropFirst(2))), .invalid("kem", problem: "not unpadded base64url"))
        XCTAssertEqual(rejects(good.replacingOccurrences(of: kem, with: kem + "AAA")), .invalid("kem", problem: "not unpadded base64url"), "a length of 4n+1 is no base64")
        // 1216 bytes end in one byte: two characters, the second with 4 unused low bits. Setting
        // one gives a second spelling of the same key, which must be refused.
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
        var chars = Array(kem)
        let value = alphabet.firstIndex(of: chars[chars.count - 1]) ?? 0
        XCTAssertEqual(value % 16, 0)
        chars[chars.count - 1] = alphabet[value + 1]
        XCTAssertNil(LinkText.base64URLDecode(String(chars)))
        XCTAssertEqual(rejects(good.replacingOccurrences(of: kem, with: String(chars))), .invalid("kem", problem: "not unpadded base64url"))
    }

    func test_wrongKeySizesAreRefused() {
        let short = MemberLink(alliance: uuid, host: "h", port: 1, nodeID: node, kemPublicKey: Array(Self.kem.prefix(1215))).text
        XCTAssertEqual(rejects(short), .invalid("kem", problem: "is 1215 bytes, an X-Wing public key is 1216"))
        let long = MemberLink(alliance: uuid, host: "h", port: 1, nodeID: node, kemPublicKey: Self.kem + [0]).text
        XCTAssertEqual(rejects(long), .invalid("kem", problem: "is 1217 bytes, an X-Wing public key is 1216"))
        let good = universal().text
        XCTAssertEqual(rejects(good.replacingOccurrences(of: node.hex, with: String(node.hex.dropLast(2)))),
                       .invalid("node", problem: "must be 64 hex digits (a 32-byte node id)"))
        XCTAssertEqual(rejects(good.replacingOccurrences(of: "101112131415161718191a1b1c1d1e1f@", with: "1011@")),
                       .invalid("alliance", problem: "must be the alliance UUID: 32 hex digits"))
        let own = "&mode=own&t1pk=" + String(repeating: "ab", count: 31)
        XCTAssertEqual(rejects(good.replacingOccurrences(of: "&mode=universal", with: own)),
                       .invalid("t1pk", problem: "must be 64 hex digits (an X25519 public key)"))
        XCTAssertEqual(rejects(good.replacingOccurrences(of: "&mode=universal", with: "&mode=own&t1pk=\(String(repeating: "ab", count: 32))&sid=010203040506070809")),
                       .invalid("sid", problem: "must be hex of at most 8 bytes"))
        let sids = (0...MemberLink.maxShortIDs).map { _ in "&sid=01" }.joined()
        XCTAssertEqual(rejects(good.replacingOccurrences(of: "&mode=universal", with: "&mode=own&t1pk=\(String(repeating: "ab", count: 32))\(sids)")),
                       .invalid("sid", problem: "more than 16 short ids"))
    }

    func test_overlongLinkIsRefusedBeforeParsing() {
        let base = universal(label: nil).text
        let text = base + "&pad=" + String(repeating: "x", count: 5000 - base.count - 5)
        XCTAssertEqual(text.count, 5000)
        XCTAssertEqual(rejects(text), .tooLong(length: 5000, limit: 4096))
        let atLimit = base + "&pad=" + String(repeating: "x", count: MemberLink.maxLength - base.count - 5)
        XCTAssertEqual(atLimit.utf8.count, MemberLink.maxLength)
        XCTAssertNoThrow(try MemberLink.parse(atLimit))
    }

    func test_missingPartsAreNamed() {
        let good = universal(label: nil).text
        let kemPart = "&kem=" + LinkText.base64URLEncode(Self.kem)
        XCTAssertEqual(rejects(good.replacingOccurrences(of: "node=\(node.hex)&", with: "")), .missing("node"))
        XCTAssertEqual(rejects(good.replacingOccurrences(of: kemPart, with: "")), .missing("kem"))
        XCTAssertEqual(rejects("montana://101112131415161718191a1b1c1d1e1f@h:1"), .missing("node"))
        XCTAssertEqual(rejects(good.replacingOccurrences(of: "101112131415161718191a1b1c1d1e1f@", with: "")), .missing("alliance"))
        XCTAssertEqual(rejects(good.replacingOccurrences(of: ":7443?", with: "?")), .missing("port"))
        XCTAssertEqual(rejects(good.replacingOccurrences(of: "&mode=universal", with: "&mode=own")), .missing("t1pk (mode=own)"))
        XCTAssertEqual(rejects("https://example.com/"), .notAMemberLink)
        XCTAssertEqual(rejects(""), .notAMemberLink)
        XCTAssertEqual(rejects("montana://"), .notAMemberLink)
    }

    func test_hostilePartsAreRefused() {
        let good = universal(label: nil).text
        let cases: [(String, MemberLinkError)] = [
            (good.replacingOccurrences(of: ":7443?", with: ":0?"), .invalid("port", problem: "must be a number 1...65535")),
            (good.replacingOccurrences(of: ":7443?", with: ":65536?"), .invalid("port", problem: "must be a number 1...65535")),
            (good.replacingOccurrences(of: ":7443?", with: ":+80?"), .invalid("port", problem: "must be a number 1...65535")),
            (good.replacingOccurrences(of: "front.example.net", with: "2001:db8::1"), .invalid("host", problem: "an IPv6 address must be written in brackets")),
            (good.replacingOccurrences(of: "front.example.net", with: "[front.example.net]"), .invalid("host", problem: "\"front.example.net\" in brackets is not an IPv6 address")),
            (good.replacingOccurrences(of: "front.example.net", with: "[::1"), .invalid("host", problem: "unclosed [")),
            (good.replacingOccurrences(of: "front.example.net", with: "bad host"), .invalid("host", problem: "\"bad host\" is not a host name or address")),
            (good.replacingOccurrences(of: "front.example.net", with: String(repeating: "a", count: 254)), .invalid("host", problem: "must be 1...253 bytes")),
            (good.replacingOccurrences(of: "profile=t0", with: "profile=t5"), .invalid("profile", problem: "must be t0...t4")),
            (good.replacingOccurrences(of: "mode=universal", with: "mode=shared"), .invalid("mode", problem: "\"shared\" is neither universal nor own")),
            (good + "&t1pk=00", .invalid("t1pk", problem: "only allowed with mode=own")),
            (good + "&node=\(node.hex)", .invalid("node", problem: "given twice")),
            (good + "&profile=%zz", .invalid("\"profile\"", problem: "bad percent-encoding or not UTF-8")),
            (good + "#%ff", .invalid("label", problem: "bad percent-encoding or not UTF-8")),
            (good + "#%1b%5B31m", .invalid("label", problem: "contains a control character")),
            (good + "#" + String(repeating: "a", count: 65), .invalid("label", problem: "is 65 bytes, limit 64")),
            (good.replacingOccurrences(of: "?node", with: "/x?node"), .invalid("path", problem: "a member link has no path")),
        ]
        for (text, expected) in cases {
            XCTAssertEqual(rejects(text), expected, String(text.prefix(100)))
        }
    }

    func test_errorDescriptionsNameThePart() {
        XCTAssertEqual(MemberLinkError.missing("node").description, "member link: node: missing")
        XCTAssertEqual(MemberLinkError.tooLong(length: 5000, limit: 4096).description, "member link: is 5000 characters, limit 4096")
    }

    func test_percentEncodingRoundTripsAnyText() {
        for text in ["", "a b", "100%", "#&=?/", "ünïcødé", "\u{7f}"] {
            XCTAssertEqual(LinkText.percentDecode(LinkText.percentEncode(text)), text)
        }
        XCTAssertNil(LinkText.percentDecode("%"))
        XCTAssertNil(LinkText.percentDecode("%4"))
        XCTAssertEqual(LinkText.percentDecode("a+b"), "a+b")
    }
}
