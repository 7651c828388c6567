import Foundation
import MontanaCrypto
import MontanaWire
import XCTest
@testable import MontanaDirectory

final class SubscriptionPassFileTests: XCTestCase {
    private let now: UInt64 = 1_800_000_000

    func test_issuedPassVerifiesWithTheAlliancesIssuerKeys() throws {
        let (alliance, secret) = try SubscriptionFixture.alliance()
        let account = try IdentityKey.generate()
        let file = try PassFile.issue(secret: secret, accountID: account.accountID, days: 30, quotaBytes: 5 << 30, now: now)
        XCTAssertEqual(file.notBefore, now - 300, "valid from 5 minutes before issue (clock skew)")
        XCTAssertEqual(file.notAfter, now + 30 * 86_400)
        XCTAssertEqual(file.quotaBytes, 5 << 30)
        XCTAssertEqual(file.issuer, secret.passIssuerKey.nodeID.bytes)

        let pass = try PassSigner.verify(file.signedBytes, issuers: alliance.passIssuerKeys, accountID: account.accountID, now: now)
        XCTAssertEqual(pass, file.pass)
        XCTAssertEqual(try file.verify(issuers: alliance.passIssuerKeys, now: now + 86_400), file.pass)
        XCTAssertTrue(file.isSigned(byOneOf: alliance.passIssuerKeys))

        XCTAssertThrowsError(try file.verify(issuers: alliance.passIssuerKeys, now: now + 31 * 86_400)) {
            XCTAssertEqual($0 as? SignedObjectError, .expired)
        }
        XCTAssertThrowsError(try file.verify(issuers: alliance.passIssuerKeys, now: now - 301)) {
            XCTAssertEqual($0 as? SignedObjectError, .notYetValid)
        }
        let (other, _) = try SubscriptionFixture.alliance()
        XCTAssertThrowsError(try file.verify(issuers: other.passIssuerKeys, now: now)) {
            XCTAssertEqual($0 as? SignedObjectError, .unknownIssuer)
        }
        XCTAssertFalse(file.isSigned(byOneOf: other.passIssuerKeys))
        XCTAssertThrowsError(try PassSigner.verify(file.signedBytes, issuers: alliance.passIssuerKeys, accountID: try IdentityKey.generate().accountID, now: now)) {
            XCTAssertEqual($0 as? SignedObjectError, .wrongAccount)
        }
    }

    func test_issueBounds() throws {
        let (_, secret) = try SubscriptionFixture.alliance()
        let id = [UInt8](repeating: 7, count: 32)
        XCTAssertThrowsError(try PassFile.issue(secret: secret, accountID: id, days: 0, quotaBytes: 0, now: now)) {
            XCTAssertTrue("\($0)".contains("days: must be 1...3660, got 0"), "\($0)")
        }
        XCTAssertThrowsError(try PassFile.issue(secret: secret, accountID: id, days: 3661, quotaBytes: 0, now: now))
        XCTAssertNoThrow(try PassFile.issue(secret: secret, accountID: id, days: 3660, quotaBytes: 0, now: now))
        XCTAssertThrowsError(try PassFile.issue(secret: secret, accountID: Array(id.prefix(31)), days: 1, quotaBytes: 0, now: now)) {
            XCTAssertTrue("\($0)".contains("account_id: must be 32 bytes, got 31"), "\($0)")
        }
        XCTAssertThrowsError(try PassFile.issue(secret: secret, accountID: id, days: 1, quotaBytes: 0, now: .max - 10)) {
            XCTAssertTrue("\($0)".contains("overflows"), "\($0)")
        }
        XCTAssertEqual(try PassFile.issue(secret: secret, accountID: id, days: 1, quotaBytes: 0, now: 100).notBefore, 0,
                       "a clock near 0 does not wrap")
    }

    func test_writeAndLoadRoundTripWithMode0600() throws {
        let (_, secret) = try SubscriptionFixture.alliance()
        let file = try PassFile.issue(secret: secret, accountID: [UInt8](repeating: 1, count: 32), days: 7, quotaBytes: 0, now: now)
        let path = try temporaryDirectory() + "/pass.json"
        try file.write(to: path)
        XCTAssertEqual(try SubscriptionFixture.mode(path), 0o600)
        XCTAssertEqual(try PassFile.load(path: path), file)
        let object = try SubscriptionFixture.object(Array(try Data(contentsOf: URL(fileURLWithPath: path))))
        XCTAssertEqual(object["format"] as? String, "montana-pass-v1")
        XCTAssertEqual(object["account_id"] as? String, String(repeating: "01", count: 32))
        XCTAssertEqual((object["not_after"] as? NSNumber)?.uint64Value, now + 7 * 86_400)
        XCTAssertEqual(object["signed"] as? String, Hex.encode(file.signedBytes))
        try file.write(to: path)  // rewriting replaces the file
        XCTAssertEqual(try PassFile.load(path: path), file)
    }

    func test_fieldsThatDisagreeWithTheSignedPassAreRefused() throws {
        let (_, secret) = try SubscriptionFixture.alliance()
        let file = try PassFile.issue(secret: secret, accountID: [UInt8](repeating: 1, count: 32), days: 7, quotaBytes: 10, now: now)
        let base = try SubscriptionFixture.object(file.encoded())
        let edits: [(String, Any, String)] = [
            ("quota_bytes", 11, "pass.json: quota_bytes: differs from the signed pass"),
            ("not_after", now + 99 * 86_400, "pass.json: not_after: differs from the signed pass"),
            ("account_id", String(repeating: "02", count: 32), "pass.json: account_id: differs from the signed pass"),
            ("account_id", "0102", "pass.json: account_id: must be 64 hex digits (32 bytes)"),
            ("format", "montana-pass-v2", "pass.json: format: must be \"montana-pass-v1\", found \"montana-pass-v2\""),
            ("signed", "00", "pass.json: signed: not a signed account pass"),
            ("signed", String(repeating: "00", count: PassFile.maxSignedBytes + 1), "pass.json: signed: must be hex of at most 8192 bytes"),
            ("not_before", -1, "pass.json: not_before: must be an integer 0...18446744073709551615"),
            ("not_after", 1.5, "pass.json: not_after: must be an integer"),
            ("quota_bytes", "ten", "pass.json: quota_bytes: must be an integer"),
        ]
        for (key, value, expected) in edits {
            var object = base
            object[key] = value
            XCTAssertThrowsError(try PassFile.decode(try SubscriptionFixture.bytes(object), file: "pass.json")) {
                XCTAssertTrue("\($0)".hasPrefix(expected), "\($0) for \(key)")
            }
        }
        var missing = base
        missing.removeValue(forKey: "issuer")
        XCTAssertThrowsError(try PassFile.decode(try SubscriptionFixture.bytes(missing), file: "pass.json")) {
            XCTAssertEqual($0 as? SubscriptionFileError, .invalid(file: "pass.json", key: "issuer", problem: "missing"))
        }
        XCTAssertThrowsError(try PassFile.decode(Array("{nope".utf8), file: "pass.json")) {
            XCTAssertEqual($0 as? SubscriptionFileError, .invalid(file: "pass.json", key: "(file)", problem: "not valid JSON"))
        }
    }

    func test_oversizedPassFileIsRefused() throws {
        XCTAssertThrowsError(try PassFile.decode([UInt8](repeating: 0x20, count: PassFile.maxFileBytes + 1), file: "p.json")) {
            XCTAssertEqual($0 as? SubscriptionFileError, .invalid(file: "p.json", key: "(file)", problem: "is 65537 bytes, limit 65536"))
        }
    }
}
