import Foundation
import XCTest
@testable import MontanaDirectory

/// Reads the real MaxMind-format fixture written by scripts/make-test-mmdb (see that script for
/// its contents) through libmaxminddb.
final class GeoIPMaxMindTests: XCTestCase {
    private func fixture() throws -> String {
        try XCTUnwrap(Bundle.module.path(forResource: "test-country", ofType: "mmdb", inDirectory: "Resources"))
    }

    func test_looksUpCountriesInTheFixture() throws {
        let db = try MaxMindGeoIP(path: fixture())
        XCTAssertEqual(db.databaseType, "Montana-Test-Country")
        XCTAssertEqual(db.country(forLiteral: "127.1.0.1"), "DE")
        XCTAssertEqual(db.country(forLiteral: "127.1.255.254"), "DE")
        XCTAssertEqual(db.country(forLiteral: "127.1.2.3"), "AT", "the more specific /24")
        XCTAssertEqual(db.country(forLiteral: "127.2.9.9"), "NL")
        XCTAssertEqual(db.country(forLiteral: "2001:db8::1"), "FR")
        XCTAssertEqual(db.country(forLiteral: "2001:db8:ffff:ffff::1"), "FR")
        XCTAssertEqual(db.country(forLiteral: "::ffff:127.2.0.1"), "NL", "IPv4-mapped IPv6 finds the IPv4 entry")
        XCTAssertEqual(db.country(for: [127, 2, 0, 1]), "NL")
    }

    func test_readsTheAutonomousSystemWhereTheDatabaseHasIt() throws {
        let db = try MaxMindGeoIP(path: fixture())
        XCTAssertEqual(db.asn(for: [127, 6, 1, 1]), 44244)
        XCTAssertEqual(db.country(for: [127, 6, 1, 1]), "IR")
        XCTAssertNil(db.asn(for: [127, 1, 0, 1]), "a country-only entry has no ASN")
        XCTAssertNil(db.asn(for: [127, 9, 0, 1]), "not in the database")
    }

    func test_unknownAndUnusableEntriesAreNil() throws {
        let db = try MaxMindGeoIP(path: fixture())
        XCTAssertNil(db.country(forLiteral: "127.9.0.1"), "not in the database")
        XCTAssertNil(db.country(forLiteral: "2001:db9::1"))
        XCTAssertNil(db.country(forLiteral: "127.3.0.1"), "registered_country only")
        XCTAssertNil(db.country(forLiteral: "127.4.0.1"), "ZZ is not an assigned code")
        XCTAssertEqual(db.country(forLiteral: "127.5.0.1"), "DE", "lower case is normalised")
        XCTAssertNil(db.country(for: [1, 2, 3]))
        XCTAssertNil(db.country(for: []))
    }

    func test_openChoosesByExtension() throws {
        let db = try GeoIP.open(path: fixture())
        XCTAssertTrue(db is MaxMindGeoIP)
        XCTAssertEqual(db.country(forLiteral: "127.2.0.1"), "NL")
    }

    func test_badFilesAreErrorsNamingTheFile() throws {
        let dir = try temporaryDirectory()
        let garbage = dir + "/garbage.mmdb"
        try Data(repeating: 0x41, count: 4096).write(to: URL(fileURLWithPath: garbage))
        XCTAssertThrowsError(try GeoIP.open(path: garbage)) { error in
            guard case .database(let path, _) = error as? GeoIPError else { return XCTFail("\(error)") }
            XCTAssertEqual(path, garbage)
            XCTAssertTrue("\(error)".hasPrefix("\(garbage): not a usable MaxMind database"), "\(error)")
        }
        // A truncated copy of the real file.
        let truncated = dir + "/truncated.mmdb"
        let real = try Data(contentsOf: URL(fileURLWithPath: fixture()))
        try real.prefix(real.count / 2).write(to: URL(fileURLWithPath: truncated))
        XCTAssertThrowsError(try GeoIP.open(path: truncated))
        XCTAssertThrowsError(try GeoIP.open(path: dir + "/missing.mmdb")) { error in
            XCTAssertTrue("\(error)".hasPrefix("\(dir)/missing.mmdb: cannot open"), "\(error)")
        }
    }

    func test_concurrentLookupsAgree() throws {
        let db = try MaxMindGeoIP(path: fixture())
        let wrong = NSLock()
        nonisolated(unsafe) var mismatches = 0
        DispatchQueue.concurrentPerform(iterations: 8) { worker in
            for i in 0..<2000 {
                let expected = i % 2 == 0 ? "DE" : "NL"
                let address: [UInt8] = [127, i % 2 == 0 ? 1 : 2, UInt8(worker), UInt8(i % 256)]
                let got = address[1] == 1 && address[2] == 2 ? "AT" : expected
                if db.country(for: address) != got {
                    wrong.lock(); mismatches += 1; wrong.unlock()
                }
            }
        }
        XCTAssertEqual(mismatches, 0)
    }
}
